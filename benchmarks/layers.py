"""Single layers, forward + backward: deltaprop's functional API vs PyTorch, in µs per call.

    python benchmarks/layers.py [--quick]

Every input (and weight) requires grad; the output is reduced with ``.sum()`` and back-propagated
(cross entropy is a scalar already), so one call = forward + every input gradient.
  conv2d 1->6      x (64, 1, 28, 28), w (6, 1, 5, 5), padding 2   (LeNet's first layer)
  conv2d 6->16     x (64, 6, 14, 14), w (16, 6, 5, 5), padding 0  (LeNet's second layer)
  max_pool2d 2x2   x (64, 6, 28, 28)
  layer_norm       x (128, 256), normalised over the last axis, weight and bias (256,)
  cross_entropy    logits (128, 10), integer targets
"""

from __future__ import annotations

import argparse
import sys

import _common as C  # first: pins BLAS threads before NumPy loads
import numpy as np


def layer_cases(rng: np.random.Generator) -> dict[str, tuple[str, dict[str, np.ndarray], dict]]:
    """name -> (kind, arrays, keyword arguments) of every benchmarked layer call."""

    def f32(*shape):
        return rng.standard_normal(shape, np.float32)

    return {
        "conv2d 1->6 5x5 pad 2, 64x28x28": (
            "conv2d",
            {"x": f32(64, 1, 28, 28), "w": f32(6, 1, 5, 5), "b": f32(6)},
            {"padding": 2},
        ),
        "conv2d 6->16 5x5, 64x14x14": (
            "conv2d",
            {"x": f32(64, 6, 14, 14), "w": f32(16, 6, 5, 5), "b": f32(16)},
            {"padding": 0},
        ),
        "max_pool2d 2x2, 64x6x28x28": ("max_pool2d", {"x": f32(64, 6, 28, 28)}, {}),
        "layer_norm (128, 256)": (
            "layer_norm",
            {"x": f32(128, 256), "w": f32(256), "b": f32(256)},
            {},
        ),
        "cross_entropy (128, 10)": (
            "cross_entropy",
            {"x": f32(128, 10), "target": rng.integers(0, 10, 128)},
            {},
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    timing = (
        dict(warmup_s=0.2, block_s=0.1, repeats=5)
        if args.quick
        else dict(warmup_s=0.5, block_s=0.3, repeats=7)
    )

    impls, unavailable = C.load_impls(["deltaprop", "torch"])
    for line in C.machine_lines():
        print(f"- {line}")
    for name, why in unavailable.items():
        print(f"- {name}: unavailable ({why})")
    print()

    rows, errors = [], []
    for label, (kind, arrays, kwargs) in layer_cases(np.random.default_rng(0)).items():
        fns = {}
        for name, module in impls.items():
            try:
                fn = module.make_layer_op(kind, arrays, **kwargs)
                fn()
                fns[name] = fn
            except Exception as e:  # noqa: BLE001 - an unfinished framework: report and go on
                errors.append(f"{name} / {label}: {type(e).__name__}: {e}")
        if not fns:
            continue
        timed = C.compare(fns, **timing)
        us = {k: r.median * 1e6 for k, r in timed.items()}
        ratio = (
            f"{us['torch'] / us['deltaprop']:.2f}" if {"torch", "deltaprop"} <= us.keys() else "-"
        )
        rows.append(
            [label, *(f"{us[k]:.0f}" if k in us else "-" for k in ("deltaprop", "torch")), ratio]
        )
    print(
        C.markdown_table(
            ["layer (fwd+bwd)", "deltaprop µs", "PyTorch µs", "deltaprop speed vs PyTorch"], rows
        )
    )
    for e in errors:
        print(f"- {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
