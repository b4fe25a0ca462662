"""Memory-growth check: run many training steps and watch the RSS (and Python object count).

    python benchmarks/memory.py                      # 10,000 tiny-MLP steps, every implementation
    python benchmarks/memory.py --quick              # 1,000 steps
    python benchmarks/memory.py --steps 2000 --workload mlp --impls deltaprop

Each implementation runs in its own child process (RSS is process-wide), sampling the current RSS
and ``len(gc.get_objects())`` at regular intervals. A leak -- an autograd graph kept alive by a
reference, gradients accumulating in a list -- shows as steady growth after the first sample;
allocator noise shows as a bounded wobble. Growth is measured from the first sample (taken after
a tenth of the run, so warm-up allocations are excluded) to the last; more than 2 MiB (or 1% of
the RSS, if larger) or 500 objects counts as growth. ``--fail-on-growth`` makes the exit status 1
when an implementation grows.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import _common as C  # first: pins BLAS threads before NumPy loads
import numpy as np

RSS_TOLERANCE_MIB = 2.0  # RSS growth below this (or below 1% of the RSS) is allocator noise
OBJECTS_TOLERANCE = 500  # Python objects


def build_step(workload: str, module):
    if workload == "tiny":
        x, y = C.tiny_regression_data()
        return module.make_tiny_step(x, y, C.LR, C.MOMENTUM)
    if workload == "mlp":
        return module.make_mlp_step(C.mnist_batches(128, flat=True), C.LR, C.MOMENTUM)
    if workload == "lenet":
        return module.make_lenet_step(C.mnist_batches(64, flat=False), C.LR, C.MOMENTUM)
    raise ValueError(workload)


def child(impl: str, workload: str, steps: int, samples: int) -> None:
    """Run in a fresh process; print one JSON line: {"trace": [[step, rss, objects], ...]}."""
    impls, unavailable = C.load_impls([impl])
    if impl not in impls:
        print(json.dumps({"error": unavailable[impl]}))
        return
    step = build_step(workload, impls[impl])
    every = max(1, steps // samples)
    # Preallocated, so that the record itself adds no Python objects as the run goes on.
    trace = np.zeros((steps // every, 3))
    for i in range(1, steps + 1):
        step()
        if i % every == 0:
            trace[i // every - 1] = i, C.current_rss_mib(), len(gc.get_objects())
    print(json.dumps({"trace": trace.tolist(), "peak_mib": C.peak_rss_mib()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 steps unless --steps says otherwise"
    )
    parser.add_argument("--steps", type=int, help="training steps (default 10,000; --quick 1,000)")
    parser.add_argument("--samples", type=int, default=10, help="RSS samples over the run")
    parser.add_argument("--workload", default="tiny", choices=("tiny", "mlp", "lenet"))
    parser.add_argument("--impls", default="deltaprop,numpy,torch")
    parser.add_argument("--fail-on-growth", action="store_true")
    parser.add_argument("--child", metavar="IMPL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (1000 if args.quick else 10_000)

    if args.child:
        child(args.child, args.workload, steps, args.samples)
        return 0

    print(
        f"{steps:,} {args.workload} training steps per implementation, "
        f"RSS sampled {args.samples} times"
    )
    print()
    grew = False
    for impl in args.impls.split(","):
        cmd = [sys.executable, __file__, "--child", impl, "--workload", args.workload]
        cmd += ["--steps", str(steps), "--samples", str(args.samples)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            out = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            print(f"## {impl}: failed\n\n```\n{proc.stderr.strip()[-2000:]}\n```\n")
            grew = True
            continue
        if "error" in out:
            print(f"## {impl}: unavailable ({out['error']})\n")
            continue
        trace = out["trace"]
        rows = [[f"{s:,.0f}", f"{rss:.1f}", f"{objs:,.0f}"] for s, rss, objs in trace]
        d_rss = trace[-1][1] - trace[0][1]
        d_objs = trace[-1][2] - trace[0][2]
        rss_tolerance = max(RSS_TOLERANCE_MIB, 0.01 * trace[0][1])
        leak = d_rss > rss_tolerance or d_objs > OBJECTS_TOLERANCE
        grew |= leak
        verdict = "GROWTH" if leak else "flat"
        span = f"step {trace[0][0]:,.0f} to {trace[-1][0]:,.0f}"
        print(
            f"## {impl}: {verdict} (RSS {d_rss:+.1f} MiB, objects {d_objs:+,.0f} from {span}; "
            f"peak RSS {out['peak_mib']:.0f} MiB)"
        )
        print()
        print(C.markdown_table(["step", "RSS MiB", "Python objects"], rows))
        print()
    return 1 if (grew and args.fail_on_growth) else 0


if __name__ == "__main__":
    sys.exit(main())
