"""Training-step benchmark: deltaprop vs hand-written NumPy vs PyTorch, alternated in one process.

    python benchmarks/run.py            # full run (a few minutes)
    python benchmarks/run.py --quick    # under a minute, noisier
    python benchmarks/run.py --only mlp,lenet --impls numpy,torch

Workloads (float32, 2 BLAS threads, SGD momentum 0.9):
  mlp     784-256-256-10 ReLU MLP, cross entropy, MNIST batch 128    -> samples/s
  lenet   LeNet-5 (conv-relu-pool x2, fc 400-120-84-10), batch 64    -> samples/s
  tiny    2-16-16-1 tanh MLP, MSE, full batch of 100 points          -> steps/s
  add     (a + b).sum().backward() on 2x2 tensors                    -> µs per op
  matmul  (a @ b).sum().backward() on 256x256 tensors                -> µs per op

Each workload's implementations are timed round-robin in this process (see _common.compare).
Memory: "ΔRSS" is measured in a fresh child process per (workload, implementation): the peak RSS
while building the model and running a few steps, above the RSS after imports, data loading and
a BLAS warm-up call. "step allocs" is tracemalloc's peak during two steps (NumPy buffers are
visible to it, PyTorch's allocator is not).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import _common as C  # first: pins BLAS threads before NumPy loads
import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str  # "samples/s", "steps/s" (higher is better) or "µs/op" (lower is better)
    items: int  # samples per call, for samples/s
    build: Callable[[object, dict], Callable[[], object]]  # (impl module, data) -> one call
    data: Callable[[], dict]


def _mnist(batch: int, flat: bool) -> Callable[[], dict]:
    return lambda: {"batches": C.mnist_batches(batch, flat=flat)}


def _pair(shape: tuple[int, int]) -> Callable[[], dict]:
    def make() -> dict:
        rng = np.random.default_rng(0)
        return {
            "a": rng.standard_normal(shape, np.float32),
            "b": rng.standard_normal(shape, np.float32),
        }

    return make


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "mlp",
            "MLP 784-256-256-10, batch 128",
            "samples/s",
            128,
            lambda m, d: m.make_mlp_step(d["batches"], C.LR, C.MOMENTUM),
            _mnist(128, flat=True),
        ),
        Workload(
            "lenet",
            "LeNet-5, batch 64",
            "samples/s",
            64,
            lambda m, d: m.make_lenet_step(d["batches"], C.LR, C.MOMENTUM),
            _mnist(64, flat=False),
        ),
        Workload(
            "tiny",
            "tiny MLP 2-16-16-1, 100 points",
            "steps/s",
            1,
            lambda m, d: m.make_tiny_step(d["x"], d["y"], C.LR, C.MOMENTUM),
            lambda: dict(zip(("x", "y"), C.tiny_regression_data())),
        ),
        Workload(
            "add1",
            "one add 2x2, fwd+bwd(g)",
            "µs/op",
            1,
            lambda m, d: m.make_add_single_op(d["a"], d["b"]),
            _pair((2, 2)),
        ),
        Workload(
            "add",
            "add+sum 2x2, fwd+bwd",
            "µs/op",
            1,
            lambda m, d: m.make_add_op(d["a"], d["b"]),
            _pair((2, 2)),
        ),
        Workload(
            "matmul",
            "matmul 256x256, fwd+bwd",
            "µs/op",
            1,
            lambda m, d: m.make_matmul_op(d["a"], d["b"]),
            _pair((256, 256)),
        ),
    ]
}


def mlp_step_flops(batch: int = 128, sizes=(784, 256, 256, 10)) -> int:
    """FLOPs of the GEMMs of one MLP training step (2*M*N*K each): per layer one forward and
    one weight-gradient GEMM, plus an input-gradient GEMM for every layer but the first
    (the data needs no gradient) -- 8 GEMMs for three layers. Elementwise work is not counted."""
    flops = 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        gemms = 2 if i == 0 else 3
        flops += gemms * 2 * batch * n_in * n_out
    return flops


def metric(w: Workload, seconds: float) -> float:
    """The workload's figure from seconds per call."""
    if w.unit == "µs/op":
        return seconds * 1e6
    return w.items / seconds


# ---------------------------------------------------------------------------------------------
# Memory, measured in a child process per (workload, implementation)
# ---------------------------------------------------------------------------------------------


def mem_child(workload: str, impl: str, steps: int, tune_malloc: bool) -> None:
    """Child-process entry: print {"delta_mib": ..., "exact": bool} as one JSON line."""
    if tune_malloc:
        C.load_malloc_module().tune_malloc()
    impls, unavailable = C.load_impls([impl])
    if impl not in impls:
        print(json.dumps({"error": unavailable[impl]}))
        return
    w = WORKLOADS[workload]
    data = w.data()
    # One-time library buffers (BLAS workspaces, thread pools) are not the workload's memory.
    np.ones((256, 256), np.float32) @ np.ones((256, 256), np.float32)
    if impl == "torch":
        torch = sys.modules["torch"]
        torch.ones(256, 256) @ torch.ones(256, 256)
        torch.ones(2, requires_grad=True).sum().backward()  # starts the autograd engine
    gc.collect()
    exact = C.reset_peak_rss()
    base = C.current_rss_mib()
    fn = w.build(impls[impl], data)
    for _ in range(steps):
        fn()
    peak = C.hwm_rss_mib() if exact else C.peak_rss_mib()
    print(json.dumps({"delta_mib": peak - base, "exact": exact}))


def measure_memory(workload: str, impl: str, steps: int, tune_malloc: bool) -> str:
    cmd = [sys.executable, __file__, "--mem-child", workload, impl, "--mem-steps", str(steps)]
    if tune_malloc:
        cmd.append("--tune-malloc")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return "error"
    if "error" in out:
        return "error"
    return f"{out['delta_mib']:.1f}" + ("" if out["exact"] else " (≥)")


# ---------------------------------------------------------------------------------------------
# Targets: eager and compiled next to the references, every ratio from this run
# ---------------------------------------------------------------------------------------------

# (workload, implementation compared with, minimum speed ratio, which deltaprop column)
TARGETS = {
    "mlp": [("numpy", 0.95, "compiled")],
    "lenet": [("torch", 1.0, "compiled")],
    "tiny": [("torch", 3.0, "deltaprop"), ("numpy", 0.9, "compiled")],
    "add1": [("numpy", 1 / 8, "deltaprop")],  # <= 8x the bare NumPy add (and <= 10 µs)
}


def _figure(results: dict, wname: str, impl: str, key: str) -> float | None:
    return results.get(f"{wname}/{impl}", {}).get(key)


def summary(results: dict, names: list[str]) -> str:
    """Eager and compiled side by side, with the targets and whether this run meets them."""
    rows = []
    for wname in names:
        w = WORKLOADS[wname]
        sec = {
            i: _figure(results, wname, i, "seconds_per_call")
            for i in ("deltaprop", "compiled", "numpy", "torch")
        }
        goals = []
        for ref, minimum, col in TARGETS.get(wname, []):
            a, b = sec[col], sec[ref]
            got = b / a if a and b else None
            ok = got is not None and got >= minimum
            if wname == "add1" and a is not None:
                ok = ok and a * 1e6 <= 10.0
            label = "eager" if col == "deltaprop" else "compiled"
            shown = "-" if got is None else f"{got:.2f}"
            goals.append(f"{label} vs {ref} >= {minimum:.3g}: {shown} {'yes' if ok else 'NO'}")
        cells = [w.title]
        for i in ("deltaprop", "compiled"):
            s = sec[i]
            if not s:
                cells.append("-")
            elif w.unit == "µs/op":
                cells.append(f"{s * 1e6:.2f} µs")
            else:
                cells.append(f"{C.fmt_rate(w.items / s)} {w.unit}")
        for ref in ("numpy", "torch"):
            for i in ("deltaprop", "compiled"):
                a, b = sec[i], sec[ref]
                cells.append(f"{b / a:.2f}" if a and b else "-")
        for i in ("deltaprop", "compiled"):
            h = _figure(results, wname, i, "held_peak_mib")
            cells.append("-" if h is None else f"{h:.2f}")
        cells.append("; ".join(goals) or "-")
        rows.append(cells)
    headers = ["workload", "eager", "compiled", "eager / NumPy", "compiled / NumPy",
               "eager / PyTorch", "compiled / PyTorch", "held MiB eager", "held MiB compiled",
               "targets (this run)"]  # fmt: skip
    return "Eager and compiled (speed ratios: above 1 is faster than the reference)\n\n" + (
        C.markdown_table(headers, rows)
    )


# ---------------------------------------------------------------------------------------------
# Main run
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short timings (under a minute)")
    parser.add_argument("--only", help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument(
        "--impls",
        default="deltaprop,compiled,numpy,torch",
        help="comma-separated: deltaprop (eager), compiled (dp.compile), numpy, torch",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the child-process ΔRSS")
    parser.add_argument(
        "--tune-malloc", action="store_true", help="apply deltaprop._malloc.tune_malloc() first"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--mem-child", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS
    )
    parser.add_argument("--mem-steps", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.mem_child:
        mem_child(*args.mem_child, args.mem_steps, args.tune_malloc)
        return 0

    names = args.only.split(",") if args.only else list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            parser.error(f"unknown workload {n!r}; choose from {', '.join(WORKLOADS)}")
    impl_names = args.impls.split(",")
    timing = (
        dict(warmup_s=0.2, block_s=0.1, repeats=5)
        if args.quick
        else dict(warmup_s=1.0, block_s=0.5, repeats=7)
    )
    mem_steps = 3 if args.quick else 10

    malloc_note = "glibc malloc: defaults"
    if args.tune_malloc:
        applied = C.load_malloc_module().tune_malloc()
        malloc_note = f"glibc malloc: tune_malloc() {'applied' if applied else 'not applicable'}"

    impls, unavailable = C.load_impls(impl_names)
    if "deltaprop" in impls and not args.tune_malloc:
        import deltaprop._malloc  # importing deltaprop applies tune_malloc() unless opted out

        if deltaprop._malloc.tuned():
            malloc_note = (
                "glibc malloc: tune_malloc() applied by `import deltaprop` (process-wide: "
                "every implementation runs with it; DELTAPROP_TUNE_MALLOC=0 turns it off)"
            )
    print("# deltaprop benchmark" + (" (--quick)" if args.quick else ""))
    print()
    for line in C.machine_lines([malloc_note]):
        print(f"- {line}")
    gemm_n = 1024 if args.quick else 2048
    peak = C.gemm_peak_gflops(gemm_n)
    print(f"- float32 GEMM peak ({gemm_n}^3, NumPy): {peak:.0f} GFLOP/s", end="")
    if "torch" in impls:
        print(f"; PyTorch: {impls['torch'].gemm_peak_gflops(gemm_n):.0f} GFLOP/s", end="")
    print()
    for name, why in unavailable.items():
        print(f"- {name}: unavailable ({why})")
    print(flush=True)

    rows, results, notes = [], {}, []
    for wname in names:
        w = WORKLOADS[wname]
        data = w.data()
        fns = {}
        for iname, module in impls.items():
            try:
                fn = w.build(module, data)
                fn()  # fail here, not inside the timing loop
                fns[iname] = fn
            except Exception as e:  # noqa: BLE001 - an unfinished framework: report and go on
                notes.append(f"{iname} / {wname}: {type(e).__name__}: {e}")
        if not fns:
            continue
        timed = C.compare(fns, **timing)
        base = {k: timed[k].median for k in ("numpy", "torch") if k in timed}
        for iname, r in timed.items():
            traced = held = "n/a"
            if iname != "torch":
                traced = f"{C.traced_peak_mib(fns[iname], 2):.1f}"
                held_mib = C.held_peak_mib(functools.partial(w.build, impls[iname], data))
                held = f"{held_mib:.2f}"
                results.setdefault(f"{wname}/{iname}", {})["held_peak_mib"] = held_mib
            # --quick skips the child processes for the two single-op workloads (seconds each).
            skip_mem = args.no_memory or (args.quick and w.unit == "µs/op")
            mem = "-" if skip_mem else measure_memory(wname, iname, mem_steps, args.tune_malloc)
            speed = {k: f"{t / r.median:.2f}" for k, t in base.items()}
            rows.append(
                [
                    w.title,
                    iname,
                    f"{C.fmt_rate(metric(w, r.median))} {w.unit}",
                    speed.get("numpy", "-"),
                    speed.get("torch", "-"),
                    f"{100 * r.spread:.0f}%",
                    mem,
                    traced,
                    held,
                ]
            )
            results.setdefault(f"{wname}/{iname}", {}).update(
                seconds_per_call=r.median,
                samples=r.samples,
                metric=metric(w, r.median),
                unit=w.unit,
                noise=r.spread,
            )
        print(f"[{wname} done]", file=sys.stderr, flush=True)

    headers = [
        "workload",
        "impl",
        "throughput",
        "speed vs NumPy",
        "speed vs PyTorch",
        "noise",
        "ΔRSS MiB",
        "step allocs MiB",
        "held at peak MiB",
    ]
    print(C.markdown_table(headers, rows))
    print()
    print(
        "speed vs X = X's time per step / this time per step (above 1: faster than X). "
        "noise = (max - min) / median over the timed blocks. step allocs = peak allocated "
        "during two steps above what was held before them; held at peak = everything the step "
        "holds at its highest point (model, optimizer state, buffers, working set; tracemalloc)."
    )
    print()
    print(summary(results, names))
    if "mlp" in names:
        flops = mlp_step_flops()
        print()
        print(
            f"MLP step: {flops / 1e6:.1f} MFLOP in its 8 GEMMs "
            "(3 forward, 3 weight-gradient, 2 input-gradient)."
        )
        for iname in impls:
            key = f"mlp/{iname}"
            if key in results:
                gflops = flops / results[key]["seconds_per_call"] / 1e9
                print(
                    f"- {iname}: {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of the GEMM peak"
                )
    extra = getattr(impls.get("deltaprop"), "notes", [])
    if notes or extra:
        print()
        print("Notes:")
        for n in notes + extra:
            print(f"- {n}")
    print()
    print(f"Peak RSS of this process (all workloads, ru_maxrss): {C.peak_rss_mib():.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "gemm_peak_gflops": peak,
                    "results": results,
                    "unavailable": unavailable,
                    "notes": notes,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
