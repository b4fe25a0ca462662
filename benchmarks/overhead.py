"""Per-op framework overhead: deltaprop vs raw NumPy vs PyTorch, in µs per op.

    python benchmarks/overhead.py [--quick]

Two ops, each forward only (graph recorded, inputs require grad) and forward + backward:
  add     a + b on 2x2 float32 tensors, backward with a given gradient (one op), and
          (a + b).sum() with a scalar backward (two ops): almost pure Python / dispatch overhead
  matmul  (a @ b).sum() on 256x256 float32 tensors: three GEMMs, the overhead should vanish

"extra µs" is the time above raw NumPy doing the same arithmetic (for the backward: the upstream
ones, the gradients, accumulated into existing buffers): what the framework's bookkeeping costs.
"""

from __future__ import annotations

import argparse
import sys

import _common as C  # first: pins BLAS threads before NumPy loads
import numpy as np

OPS = {
    # name: (shape, builder attribute)
    "add 2x2, fwd": ((2, 2), "make_add_forward"),
    "one add 2x2, fwd+bwd(g)": ((2, 2), "make_add_single_op"),
    "add+sum 2x2, fwd+bwd": ((2, 2), "make_add_op"),
    "matmul 256x256, fwd": ((256, 256), "make_matmul_forward"),
    "matmul 256x256, fwd+bwd": ((256, 256), "make_matmul_op"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--impls", default="deltaprop,numpy,torch")
    args = parser.parse_args(argv)
    timing = (
        dict(warmup_s=0.2, block_s=0.1, repeats=5)
        if args.quick
        else dict(warmup_s=0.5, block_s=0.3, repeats=9)
    )

    impls, unavailable = C.load_impls(args.impls.split(","))
    for line in C.machine_lines():
        print(f"- {line}")
    for name, why in unavailable.items():
        print(f"- {name}: unavailable ({why})")
    print()

    rng = np.random.default_rng(0)
    rows, errors = [], []
    for op, (shape, attr) in OPS.items():
        a = rng.standard_normal(shape, np.float32)
        b = rng.standard_normal(shape, np.float32)
        fns = {}
        for name, module in impls.items():
            try:
                fn = getattr(module, attr)(a, b)
                fn()
                fns[name] = fn
            except Exception as e:  # noqa: BLE001 - an unfinished framework: report and go on
                errors.append(f"{name} / {op}: {type(e).__name__}: {e}")
        if not fns:
            continue
        timed = C.compare(fns, **timing)
        base = {k: timed[k].median for k in ("numpy", "torch") if k in timed}
        for name, r in timed.items():
            extra = f"{(r.median - base['numpy']) * 1e6:.1f}" if "numpy" in base else "-"
            rows.append(
                [
                    op,
                    name,
                    f"{r.median * 1e6:.2f}",
                    *(
                        f"{base[k] / r.median:.2f}" if k in base else "-"
                        for k in ("numpy", "torch")
                    ),
                    extra,
                    f"{100 * r.spread:.0f}%",
                ]
            )
    print(
        C.markdown_table(
            ["op", "impl", "µs/op", "speed vs NumPy", "speed vs PyTorch", "extra µs", "noise"], rows
        )
    )
    for e in errors:
        print(f"- {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
