"""What the ONNX export tests share: an exported model's bytes (checked by ``onnx.checker``), an
ONNX Runtime session on the CPU, deltaprop's eval output and the comparison of the two.

Import it after ``pytest.importorskip("onnx")`` and ``pytest.importorskip("onnxruntime")``, so
that a test module without them is skipped with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import deltaprop as dp
from deltaprop import nn

RTOL = 1e-5


def session(model: bytes | str | Path) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU for a model's bytes or its file."""
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def export_bytes(model, args, **kwargs) -> bytes:
    buf = io.BytesIO()
    dp.onnx.export(model, args, buf, **kwargs)
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return data


def assert_close(got: np.ndarray, ref: np.ndarray, rtol: float = RTOL) -> None:
    """Relative agreement: elementwise rtol, with an absolute floor of rtol times the largest
    magnitude (float32 sums in another order differ in the last bits near zero)."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = max(float(np.abs(ref).max()), 1.0) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


def eval_output(model, x: np.ndarray):
    if isinstance(model, nn.Module):
        model.eval()
    with dp.no_grad():
        out = model(*[dp.tensor(a) for a in (x if isinstance(x, tuple) else (x,))])
    return [o.data for o in (out if isinstance(out, (tuple, list)) else (out,))]


def check_batches(model, make, batches=(3, 7), rtol=RTOL, **kwargs) -> bytes:
    """Export at the first batch size with a dynamic batch axis; compare at all of them."""
    first = make(batches[0])
    n_in = len(first) if isinstance(first, tuple) else 1
    names = ["input"] if n_in == 1 else [f"input_{i}" for i in range(n_in)]
    axes = {name: {0: "batch"} for name in names}
    data = export_bytes(model, first, dynamic_axes=axes, **kwargs)
    sess = session(data)
    for n in batches:
        x = make(n)
        xs = x if isinstance(x, tuple) else (x,)
        got = sess.run(None, dict(zip(names, xs)))
        ref = eval_output(model, x)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert g.ndim == 0 or g.shape[0] == n  # (a reduced loss is a scalar)
            assert_close(g, r, rtol)
    return data
