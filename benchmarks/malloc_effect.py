"""Effect of ``deltaprop._malloc.tune_malloc()`` on a NumPy training step (separate processes).

    python benchmarks/malloc_effect.py [--quick] [--workload lenet|mlp] [--impl numpy|deltaprop]

Runs the step in child processes, alternately with glibc's default malloc settings and with
``tune_malloc()`` applied before anything is allocated, several rounds each. Each child warms up,
then times steps for a fixed wall-clock time and reports samples/s, minor page faults per step
(``ru_minflt``: pages the kernel had to map and zero), user and system CPU time per step (the
system part is mostly those page faults; CPU times are less skewed than wall time when other
work shares the machine) and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import _common as C  # first: pins BLAS threads before NumPy loads

BATCH = {"lenet": 64, "mlp": 128}


def child(config: str, workload: str, impl: str, seconds: float) -> None:
    applied = C.load_malloc_module().tune_malloc() if config == "tuned" else False
    impls, unavailable = C.load_impls([impl])
    if impl not in impls:
        print(json.dumps({"error": unavailable[impl]}))
        return
    module = impls[impl]
    if workload == "lenet":
        step = module.make_lenet_step(C.mnist_batches(64, flat=False), C.LR, C.MOMENTUM)
    else:
        step = module.make_mlp_step(C.mnist_batches(128, flat=True), C.LR, C.MOMENTUM)
    t_end = time.perf_counter() + min(1.0, seconds / 3)
    while time.perf_counter() < t_end:  # warm-up
        step()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "applied": applied,
        "per_s": n * BATCH[workload] / elapsed,
        "faults_per_step": (r1.ru_minflt - r0.ru_minflt) / n,
        # CPU time of all the process's threads per step: user (arithmetic, BLAS threads
        # spinning) and system (mostly the kernel mapping and zeroing fresh pages). Less skewed
        # than wall time when other work shares the machine.
        "user_ms": (r1.ru_utime - r0.ru_utime) / n * 1e3,
        "sys_ms": (r1.ru_stime - r0.ru_stime) / n * 1e3,
        "peak_mib": C.peak_rss_mib(),
    }
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workload", default="lenet", choices=tuple(BATCH))
    parser.add_argument("--impl", default="numpy", choices=("numpy", "deltaprop"))
    parser.add_argument("--rounds", type=int, help="alternations (default 4; --quick 2)")
    parser.add_argument(
        "--seconds", type=float, help="timed seconds per child (default 4; --quick 2)"
    )
    parser.add_argument("--child", choices=("default", "tuned"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 4)
    seconds = args.seconds or (2.0 if args.quick else 4.0)

    if args.child:
        child(args.child, args.workload, args.impl, seconds)
        return 0

    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    for r in range(rounds):
        order = ("default", "tuned") if r % 2 == 0 else ("tuned", "default")
        for config in order:
            cmd = [sys.executable, __file__, "--child", config, "--workload", args.workload]
            cmd += ["--impl", args.impl, "--seconds", str(seconds)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            try:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                print(f"child failed:\n{proc.stderr.strip()[-2000:]}")
                return 1
            if "error" in out:
                print(f"{args.impl}: unavailable ({out['error']})")
                return 0
            runs[config].append(out)

    print(
        f"{args.impl} {args.workload} step (batch {BATCH[args.workload]}), "
        f"{rounds} runs of {seconds:g} s per setting"
    )
    print()
    rows, median = [], {}
    for config, outs in runs.items():
        median[config] = statistics.median(o["per_s"] for o in outs)
        label = "tune_malloc()" + ("" if all(o["applied"] for o in outs) else " (NOT applied)")
        med = {k: statistics.median(o[k] for o in outs) for k in outs[0] if k != "applied"}
        rows.append(
            [
                "glibc defaults" if config == "default" else label,
                f"{median[config]:,.0f}",
                f"{max(o['per_s'] for o in outs):,.0f}",
                f"{med['faults_per_step']:,.1f}",
                f"{med['user_ms']:.2f}",
                f"{med['sys_ms']:.2f}",
                f"{max(o['peak_mib'] for o in outs):.0f}",
            ]
        )
    headers = ["malloc", "median samples/s", "best samples/s", "minor faults / step"]
    headers += ["user ms / step", "sys ms / step", "peak RSS MiB"]
    print(C.markdown_table(headers, rows))
    print()
    for config, outs in runs.items():
        print(f"{config} runs (samples/s): " + ", ".join(f"{o['per_s']:,.0f}" for o in outs))
    print()
    print(f"tuned / default: {median['tuned'] / median['default']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
