"""Interleaved A/B rounds of one workload's steps: fastest and median round per implementation.

    python benchmarks/ab.py mlp                 # deltaprop, compiled, numpy; 20 rounds
    python benchmarks/ab.py tiny --rounds 30 --impls deltaprop,compiled,numpy,torch

Each round times a few steps of every implementation back to back, so a burst of load from
other processes hits all of them alike; on a busy machine the *fastest* round is the figure
least disturbed by that load, the median the one ``run.py`` reports. Speeds are relative to the
first reference available (numpy, else torch): above 1 is faster.
"""

from __future__ import annotations

import argparse

import _common as C  # first: pins BLAS threads before NumPy loads
import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(run.WORKLOADS))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="steps per implementation a round")
    parser.add_argument("--impls", default="deltaprop,compiled,numpy")
    args = parser.parse_args(argv)
    impls, unavailable = C.load_impls(args.impls.split(","))
    for name, why in unavailable.items():
        print(f"{name}: unavailable ({why})")
    w = run.WORKLOADS[args.workload]
    data = w.data()
    fns = {name: w.build(module, data) for name, module in impls.items()}
    for fn in fns.values():  # warm-up (a compiled step records during its first calls)
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            times[name].append(C.time_block(fn, args.steps))
    ref = next((r for r in ("numpy", "torch") if r in times), None)
    print(f"{w.title}: {args.rounds} rounds of {args.steps} steps, {C.BLAS_THREADS} BLAS threads,")
    print(C.load_line())
    print()
    head = f"speed vs {ref or '-'} (fastest / median)"
    print(f"| impl | fastest round | median round | {head} |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        ts = sorted(ts)
        best, med = ts[0], ts[len(ts) // 2]
        rel = "-"
        if ref is not None:
            rts = sorted(times[ref])
            rel = f"{rts[0] / best:.2f} / {rts[len(rts) // 2] / med:.2f}"
        print(f"| {name} | {best * 1e6:,.1f} µs | {med * 1e6:,.1f} µs | {rel} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
