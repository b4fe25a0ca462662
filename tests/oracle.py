"""One oracle helper for every op's test: run the same function on deltaprop and PyTorch.

``compare(dp_fn, torch_fn, arrays)`` runs both on the same seeded float64 inputs and checks the
forward value, shape and dtype, and the gradient of every float input (the output is projected
on a fixed random vector, so one backward covers the whole Jacobian-vector product).
``raises_both`` checks that both frameworks reject the same bad input.

Tests that need torch use the ``needs_torch`` marker and are skipped, with a visible reason,
when torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import deltaprop as dp

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(
    torch is None, reason="PyTorch not installed: comparison skipped (pip install torch==2.13.0)"
)


def rand(*shape: int, seed: int = 0, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Seeded float64 uniform values."""
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _outputs(y: Any) -> list:
    if isinstance(y, (tuple, list)):
        return [o for o in y if o is not None]
    return [y]


def compare(
    dp_fn: Callable[..., Any],
    torch_fn: Callable[..., Any],
    arrays: Sequence[Any],
    *,
    grad: Sequence[bool] | None = None,
    atol: float = 1e-7,
    rtol: float = 1e-6,
    seed: int = 1,
    dtype: Any = np.float64,
) -> list:
    """Compare values and gradients of ``dp_fn(*tensors)`` and ``torch_fn(*tensors)``.

    ``arrays`` are numpy arrays (floats become ``dtype`` and require grad unless ``grad`` says
    otherwise; integer/bool arrays are passed as index tensors) or plain Python values passed
    through. Returns the deltaprop outputs.
    """
    assert torch is not None
    dp_in, th_in, diff = [], [], []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "f":
                a = a.astype(dtype)
                rg = True if grad is None else grad[i]
                dp_in.append(dp.tensor(a, dtype=a.dtype, requires_grad=rg))
                th_in.append(torch.tensor(a, requires_grad=rg))
                if rg:
                    diff.append(i)
            else:
                dp_in.append(dp.tensor(a, dtype=a.dtype))
                th_in.append(torch.tensor(a))
        else:
            dp_in.append(a)
            th_in.append(a)
    dy = _outputs(dp_fn(*dp_in))
    ty = _outputs(torch_fn(*th_in))
    assert len(dy) == len(ty), f"{len(dy)} outputs vs torch's {len(ty)}"
    for k, (d, t) in enumerate(zip(dy, ty)):
        tv = t.detach().numpy()
        assert d.shape == tuple(t.shape), f"output {k}: shape {d.shape} vs torch {tuple(t.shape)}"
        assert d.dtype == tv.dtype, f"output {k}: dtype {d.dtype} vs torch {tv.dtype}"
        np.testing.assert_allclose(d.data, tv, atol=atol, rtol=rtol, err_msg=f"output {k} value")
    if not diff:
        return dy
    rng = np.random.default_rng(seed)
    pairs = [(d, t) for d, t in zip(dy, ty) if t.requires_grad]
    assert all(d.requires_grad for d, _ in pairs)
    assert pairs, "no differentiable output"
    rs = [rng.standard_normal(d.shape).astype(d.dtype) for d, _ in pairs]
    dp_loss = None
    th_loss = None
    for (d, t), r in zip(pairs, rs):
        dl = (d * dp.tensor(r, dtype=r.dtype)).sum()
        tl = (t * torch.tensor(r)).sum()
        dp_loss = dl if dp_loss is None else dp_loss + dl
        th_loss = tl if th_loss is None else th_loss + tl
    dp_loss.backward()
    th_loss.backward()
    for i in diff:
        tg = th_in[i].grad
        dg = dp_in[i].grad
        if tg is None:
            assert dg is None or np.allclose(dg.data, 0), f"input {i}: grad where torch has none"
            continue
        assert dg is not None, f"input {i}: no gradient, torch has one"
        assert dg.shape == dp_in[i].shape, f"input {i}: grad shape {dg.shape}"
        assert dg.dtype == dp_in[i].dtype, f"input {i}: grad dtype {dg.dtype}"
        np.testing.assert_allclose(
            dg.data, tg.numpy(), atol=atol, rtol=rtol, err_msg=f"gradient of input {i}"
        )
    return dy


def raises_both(
    dp_fn: Callable[[], Any],
    torch_fn: Callable[[], Any],
    dp_exc: Any = (ValueError, TypeError, IndexError, RuntimeError),
    match: str | None = None,
) -> str:
    """Both frameworks reject the input; deltaprop's message is returned for further checks."""
    assert torch is not None
    with pytest.raises(Exception):  # noqa: B017 - torch's exception types vary by op
        torch_fn()
    with pytest.raises(dp_exc, match=match) as info:
        dp_fn()
    return str(info.value)
