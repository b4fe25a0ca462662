"""Run under mpirun by tests/test_distributed_mpi.py: ``mpirun -n N python ddp_worker.py CASE``.

Each case checks its claims on every rank and prints ``PASS <case> <check>`` lines; a failed
check raises, which aborts the whole job (non-zero exit status).
"""

from __future__ import annotations

import copy
import os
import signal
import sys
import time

import numpy as np

import deltaprop as dp
import deltaprop.distributed as dist
from deltaprop import nn
from deltaprop.nn import functional as F
from deltaprop.nn.parallel import DistributedDataParallel as DDP


def say(rank: int, text: str) -> None:
    print(f"PASS rank{rank} {text}", flush=True)


def gather_equal(rank: int, arrays: list[np.ndarray]) -> None:
    """Every rank holds bit-identical arrays."""
    flat = np.concatenate([a.reshape(-1).astype(np.float64) for a in arrays])
    everyone = [dp.zeros(flat.size, dtype=np.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, dp.from_numpy(flat))
    for r, other in enumerate(everyone):
        if not np.array_equal(other.numpy(), flat):
            raise AssertionError(f"rank {rank} and rank {r} hold different parameters")


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 12), nn.ReLU(),
                         nn.Linear(12, 3))  # fmt: skip


def convnet() -> nn.Module:
    # No bias before a batch norm (as usual): its gradient is exactly zero in exact arithmetic,
    # so both runs would only see rounding noise there, which Adam divides by its own size.
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 4 * 4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3),
    )  # fmt: skip


def optimizer(name: str, params):
    if name == "sgd":
        return dp.optim.SGD(params, lr=0.1, momentum=0.9)
    return dp.optim.Adam(params, lr=0.01)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def same_numbers(rank: int, world: int, model_name: str, opt_name: str, **ddp_kwargs) -> None:
    """N ranks with batch b == one process with batch N*b, after several steps."""
    b, steps = 5, 4
    rng = np.random.default_rng(1234)  # the same data on every rank: each takes its share
    shape = (6,) if model_name == "mlp" else (2, 8, 8)
    xs = rng.standard_normal((steps, world * b, *shape))
    ys = rng.integers(0, 3, size=(steps, world * b))
    dp.manual_seed(7)
    reference = (mlp() if model_name == "mlp" else convnet()).double()
    local = copy.deepcopy(reference)
    if model_name == "conv":
        local = nn.SyncBatchNorm.convert_sync_batchnorm(local)
    # rank r starts from different weights: the broadcast from rank 0 must fix that
    for p in local.parameters():
        p.data += rank
    model = DDP(local, **ddp_kwargs)
    opt_ref = optimizer(opt_name, reference.parameters())
    opt = optimizer(opt_name, model.parameters())
    mine = slice(rank * b, (rank + 1) * b)
    for step in range(steps):
        opt_ref.zero_grad()
        F.cross_entropy(reference(dp.tensor(xs[step])), dp.tensor(ys[step])).backward()
        opt_ref.step()
        opt.zero_grad()
        F.cross_entropy(model(dp.tensor(xs[step][mine])), dp.tensor(ys[step][mine])).backward()
        opt.step()
    want = reference.state_dict()
    got = model.module.state_dict()
    worst = 0.0
    for key, value in want.items():
        a, w = got[key].numpy(), value.numpy()
        if a.dtype.kind == "f":
            worst = max(worst, rel_err(a, w))
        elif not np.array_equal(a, w):
            raise AssertionError(f"{key}: {a} != {w}")
    if not worst < 1e-10:
        raise AssertionError(f"{model_name}/{opt_name}: relative error {worst:.3g} >= 1e-10")
    gather_equal(rank, [v.numpy() for v in got.values()])
    say(rank, f"same_numbers {model_name} {opt_name} {sorted(ddp_kwargs.items())} "
              f"rel_err={worst:.2e} identical_on_all_ranks")  # fmt: skip


def no_sync_accumulation(rank: int, world: int) -> None:
    """Two micro-batches (the first inside no_sync) == one process with both, all ranks."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, world * 4, 6))
    y = rng.integers(0, 3, size=(2, world * 4))
    dp.manual_seed(3)
    reference = mlp().double()
    model = DDP(copy.deepcopy(reference), bucket_cap_mb=0.001)
    loss_sum = 0
    for k in range(2):
        loss_sum = loss_sum + F.cross_entropy(reference(dp.tensor(x[k])), dp.tensor(y[k]))
    (loss_sum / 2).backward()
    mine = slice(rank * 4, (rank + 1) * 4)
    with model.no_sync():
        (F.cross_entropy(model(dp.tensor(x[0][mine])), dp.tensor(y[0][mine])) / 2).backward()
    local_only = [p.grad.numpy().copy() for p in model.parameters()]
    (F.cross_entropy(model(dp.tensor(x[1][mine])), dp.tensor(y[1][mine])) / 2).backward()
    for p, q, before in zip(model.parameters(), reference.parameters(), local_only):
        if not rel_err(p.grad.numpy(), q.grad.numpy()) < 1e-10:
            raise AssertionError("no_sync: accumulated gradient is not the global mean")
        if world > 1 and np.array_equal(before, q.grad.numpy()):
            raise AssertionError("no_sync: the gradient was already averaged inside no_sync")
    say(rank, "no_sync accumulation")


def unused_parameters(rank: int, world: int) -> None:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)

    dp.manual_seed(0)
    model = DDP(Net().double())
    model(dp.ones(2, 3, dtype=np.float64)).sum().backward()
    try:
        model(dp.ones(2, 3, dtype=np.float64))
    except RuntimeError as e:
        assert "unused.weight" in str(e) and "find_unused_parameters" in str(e), e
    else:
        raise AssertionError("no error for a parameter without gradient")
    model = DDP(Net().double(), find_unused_parameters=True)
    for _ in range(2):
        model.zero_grad()
        model(dp.ones(2, 3, dtype=np.float64)).sum().backward()
    assert model.module.unused.weight.grad is None
    np.testing.assert_allclose(model.module.used.weight.grad.numpy(), 2.0)
    say(rank, "unused parameters: error without find_unused_parameters, handled with it")


def collectives(rank: int, world: int) -> None:
    t = dp.tensor(np.array([rank + 1.0, -rank]))
    dist.all_reduce(t)
    assert t.tolist() == [world * (world + 1) / 2, -world * (world - 1) / 2], t
    product = float(np.prod(np.arange(1, world + 1)))
    for op, want in ((dist.ReduceOp.AVG, (world + 1) / 2), (dist.ReduceOp.MAX, world),
                     (dist.ReduceOp.MIN, 1), (dist.ReduceOp.PRODUCT, product)):  # fmt: skip
        t = dp.tensor([rank + 1.0] * 3)
        dist.all_reduce(t, op=op)
        assert t.tolist() == [want] * 3, (op, t)
    t = dp.tensor(np.arange(6.0).reshape(2, 3).T * (rank + 1))  # non-contiguous: written back
    dist.all_reduce(t, dist.ReduceOp.MAX)
    assert np.array_equal(t.numpy(), np.arange(6.0).reshape(2, 3).T * world)
    h = dp.tensor([float(rank)], dtype=np.float16)
    dist.all_reduce(h)
    assert h.dtype == np.float16 and h.item() == world * (world - 1) / 2
    t = dp.tensor(np.full((2, 2), rank, dtype=np.int32))
    dist.broadcast(t, src=world - 1)
    assert (t.numpy() == world - 1).all() and t.dtype == np.int32
    out = [dp.zeros(3, dtype=np.int64) for _ in range(world)]
    dist.all_gather(out, dp.tensor([rank, rank * 10, 7]))
    assert [o.tolist() for o in out] == [[r, r * 10, 7] for r in range(world)]
    t = dp.tensor([1.0, 2.0])
    work = dist.all_reduce(t, async_op=True)
    work.wait()
    assert t.tolist() == [world, 2.0 * world] and work.is_completed()
    objs = [None]
    dist.broadcast_object_list(objs if rank else [{"a": 1}], src=0)
    if rank:
        assert objs == [{"a": 1}]
    gathered = [None] * world
    dist.all_gather_object(gathered, ("r", rank))
    assert gathered == [("r", r) for r in range(world)]
    dist.barrier()
    say(rank, "collectives")


def bad_input(rank: int, world: int) -> None:
    """Mismatches across ranks: the same clear error on every rank, and no hang."""
    checks = [
        (lambda: dist.all_reduce(dp.zeros(2 + rank)), "same shape", dp.ShapeError),
        (
            lambda: dist.all_reduce(dp.zeros(2, dtype=np.float64 if rank else np.float32)),
            "same dtype",
            dp.DTypeError,
        ),  # fmt: skip
        (lambda: dist.broadcast(dp.zeros(3), src=rank % 2), "different source ranks", ValueError),
        (
            lambda: dist.all_reduce(
                dp.zeros(2), op=dist.ReduceOp.MAX if rank else dist.ReduceOp.SUM
            ),
            "different reduce operators",
            ValueError,
        ),  # fmt: skip
        (
            lambda: dist.broadcast(dp.zeros(2), src=world + 5 if rank == world - 1 else 0),
            "src must be a rank" if rank == world - 1 else f"rank {world - 1} passed invalid",
            (ValueError, RuntimeError),
        ),  # fmt: skip
        (lambda: dist.all_gather([dp.zeros(1)], dp.zeros(1)), "world_size", ValueError),
        (
            lambda: dist.all_reduce(dp.zeros(2, dtype=np.int64), op=dist.ReduceOp.AVG),
            "floating-point",
            TypeError,
        ),  # fmt: skip
        (lambda: DDP(nn.Linear(3, 2 + rank)), "same model", ValueError),
        (
            lambda: dp.data.DistributedSampler(range(10), num_replicas=world, rank=world),
            "should be in the interval",
            ValueError,
        ),  # fmt: skip
    ]
    for fn, words, kind in checks:
        try:
            fn()
        except kind as e:
            assert words in str(e), f"{words!r} not in {e}"
        else:
            raise AssertionError(f"no error ({words})")
    # the group is still usable afterwards
    t = dp.ones(1)
    dist.all_reduce(t)
    assert t.item() == world
    say(rank, "bad input: clear errors on every rank, group still usable")


def main() -> None:
    case = sys.argv[1]
    if case == "no-init":
        dist.get_rank()  # must raise: not initialised
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if case == "same_numbers":
        for model_name in ("mlp", "conv"):
            for opt_name in ("sgd", "adam"):
                same_numbers(rank, world, model_name, opt_name)
        # several buckets (each started as soon as it is ready) and gradients left in them
        same_numbers(rank, world, "conv", "sgd", bucket_cap_mb=0.001, gradient_as_bucket_view=True)
        same_numbers(rank, world, "mlp", "adam", bucket_cap_mb=0.0005)
        no_sync_accumulation(rank, world)
        unused_parameters(rank, world)
        collectives(rank, world)
        bad_input(rank, world)
    elif case == "raise":
        dist.barrier()
        if rank == world - 1:
            raise RuntimeError("deliberate failure in the test")
        dist.all_reduce(dp.ones(4))  # the others wait here: the job must not hang
    elif case == "sigkill":
        dist.barrier()
        if rank == world - 1:
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(dp.ones(4))
    else:
        raise SystemExit(f"unknown case {case}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
