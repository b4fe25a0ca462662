"""Compiled LeNet-5 step with and without moving each ReLU behind its max pooling: A/B rounds.

    python benchmarks/relu_pool_ab.py                     # 40 rounds, 2 BLAS threads
    DELTAPROP_BENCH_THREADS=1 python benchmarks/relu_pool_ab.py --rounds 60

Two ``dp.compile`` steps of the same model and batches run in alternation, one round at a time
(a pause, one untimed step, then ``--steps`` timed steps each). In "unfused" the program keeps
the kernels it had before the ``ReluMaxPoolKernel`` (the ReLU in place on the convolution's
output, then the pool op itself); in "fused" the pool runs on the convolution's output and the
ReLU on the pooled one. Prints the median and fastest round of each, in ms per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as C  # first: pins BLAS threads before NumPy loads
import deltaprop_impl  # noqa: F401 - puts this checkout's src/ first on the path

from deltaprop.compiler import kernels as K
from deltaprop.compiler import program as P

_select = K.select_kernels
_fuse = [True]


def _select_kernels(rec, sources, outs, plans, pinned):
    """The program's kernels; without fusion, the ReLU/max-pool pairs as they were before."""
    kernels = _select(rec, sources, outs, plans, pinned)
    if not _fuse[0]:
        for j, k in enumerate(kernels):
            if isinstance(k, K.ReluMaxPoolKernel):
                kernels[j] = None
            elif isinstance(k, K.PassKernel):
                kernels[j] = K.ReluKernel(k.x, k.out)
    return kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    args = parser.parse_args(argv)
    impls, unavailable = C.load_impls(["compiled"])
    if unavailable:
        raise SystemExit(f"deltaprop unavailable: {unavailable['compiled']}")
    P.select_kernels = _select_kernels  # the name program.py calls when it builds a program
    batches = C.mnist_batches(64, flat=False, limit=40)
    steps = {}
    for name, fuse in (("unfused", False), ("fused", True)):
        _fuse[0] = fuse
        steps[name] = impls["compiled"].make_lenet_step(batches, C.LR, C.MOMENTUM)
        for _ in range(5):  # record, check and build the program while the flag is set
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for r in range(args.rounds):
        for name in order if r % 2 else order[::-1]:
            time.sleep(C.SETTLE_S)
            steps[name]()
            times[name].append(C.time_block(steps[name], args.steps) * 1e3)
    print("\n".join(C.machine_lines()))
    print(f"compiled LeNet-5 step, {args.rounds} rounds of {args.steps} steps:")
    for name, ts in times.items():
        print(f"- {name}: median {statistics.median(ts):.2f} ms, fastest {min(ts):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
