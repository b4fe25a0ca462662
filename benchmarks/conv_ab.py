"""A/B of two versions of the convolution and pooling ops inside the whole LeNet-5 step.

    git show HEAD~3:src/deltaprop/ops/conv.py > /tmp/conv_before.py
    python benchmarks/conv_ab.py --before-conv /tmp/conv_before.py
    DELTAPROP_BENCH_THREADS=1 python benchmarks/conv_ab.py --before-conv /tmp/conv_before.py \\
        --before-pool /tmp/pool_before.py --rounds 60

The "before" files are older copies of ``src/deltaprop/ops/conv.py`` / ``ops/pool.py`` (from
``git show``). They are loaded as separate modules, and each round swaps every function of the
class bodies of ``Convolution2DFunction`` and ``MaxPool2DFunction`` (``__init__``,
``forward``, ``backward`` and their helper methods) between the two versions before timing a
few steps of each: eager and ``dp.compile``d steps of both versions and PyTorch's step
alternate in one process, so a burst of load from other processes hits them alike. A compiled
step records with the version in force when it is built and replays the same methods, swapped
in before its rounds. Module-level functions are each version's own; module-level settings the
current code reads at call time (e.g. ``CHUNK_BYTES``) are the current file's.
Prints median and fastest round per implementation and the speed relative to PyTorch.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics

import _common as C  # first: pins BLAS threads before NumPy loads
import run

import deltaprop.ops.conv as conv
import deltaprop.ops.pool as pool

_CLASSES = (conv.Convolution2DFunction, pool.MaxPool2DFunction)


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _methods(cls) -> dict:
    """Every function defined in the class body (``__init__``, ``forward``, helpers)."""
    return {n: f for n, f in vars(cls).items() if inspect.isfunction(f)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-conv", help="an older ops/conv.py")
    parser.add_argument("--before-pool", help="an older ops/pool.py")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3, help="steps per implementation a round")
    args = parser.parse_args(argv)
    if not (args.before_conv or args.before_pool):
        parser.error("give --before-conv and/or --before-pool")
    after = {cls: _methods(cls) for cls in _CLASSES}
    before = dict(after)
    if args.before_conv:
        old = _load("conv_before", args.before_conv)
        before[conv.Convolution2DFunction] = _methods(old.Convolution2DFunction)
    if args.before_pool:
        old = _load("pool_before", args.before_pool)
        before[pool.MaxPool2DFunction] = _methods(old.MaxPool2DFunction)
    versions = {"before": before, "after": after}

    def use(version: str) -> None:
        for cls, methods in versions[version].items():
            for name, fn in methods.items():
                setattr(cls, name, fn)

    impls, unavailable = C.load_impls(["deltaprop", "compiled", "torch"])
    for name, why in unavailable.items():
        print(f"{name}: unavailable ({why})")
    w = run.WORKLOADS["lenet"]
    data = w.data()
    fns = {}
    for version in versions:
        use(version)
        for impl in ("deltaprop", "compiled"):
            fn = w.build(impls[impl], data)
            for _ in range(4):  # warm-up; a compiled step records here
                fn()
            fns[(version, impl)] = fn
    use("after")
    if "torch" in impls:
        fn = w.build(impls["torch"], data)
        for _ in range(4):
            fn()
        fns[("torch", "")] = fn
    times: dict = {k: [] for k in fns}
    for _ in range(args.rounds):
        for key, fn in fns.items():
            if key[0] in versions:
                use(key[0])
            times[key].append(C.time_block(fn, args.steps))
    use("after")
    print(f"{w.title}: {args.rounds} rounds of {args.steps} steps, {C.BLAS_THREADS} BLAS threads,")
    print(C.load_line())
    print()
    ref = times.get(("torch", ""))
    print("| version | impl | median step | fastest step | speed vs PyTorch (median / fastest) |")
    print("|---|---|---:|---:|---:|")
    for (version, impl), ts in times.items():
        med, best = statistics.median(ts), min(ts)
        rel = "-"
        if ref:
            rel = f"{statistics.median(ref) / med:.2f} / {min(ref) / best:.2f}"
        print(
            f"| {version} | {impl or 'torch'} | {med * 1e3:.3f} ms | {best * 1e3:.3f} ms | {rel} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
