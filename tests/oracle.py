"""One oracle helper for every op's test: run the same function on deltaprop and PyTorch.

``compare(dp_fn, torch_fn, arrays)`` runs both on the same seeded float64 inputs and checks the
forward value, shape and dtype, and the gradient of every float input (the output is projected
on a fixed random vector, so one backward covers the whole Jacobian-vector product).
``raises_both`` checks that both frameworks reject the same bad input.

Without PyTorch, ``compare`` checks ``dp_fn`` against what needs no second framework: every
fused op of its graph against its composed twin (forward values), ``dp.gradcheck`` (analytic
gradients against central differences, in float64) and the recorded backward (which runs the
twins, ``create_graph=True``) against the plain one; ``raises_both`` checks deltaprop's half. The
comparisons with PyTorch that could not run are counted and reported at the end of the run.
Tests that cannot run at all without torch use the ``needs_torch`` marker and are skipped, with
a visible reason. ``DELTAPROP_TEST_WITHOUT_TORCH=1`` hides an installed torch (see conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.autograd import graph_functions

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
    smooth: bool = True,
) -> list:
    """Compare values and gradients of ``dp_fn(*tensors)`` and ``torch_fn(*tensors)``.

    ``arrays`` are numpy arrays (floats become ``dtype`` and require grad unless ``grad`` says
    otherwise; integer/bool arrays are passed as index tensors) or plain Python values passed
    through. Returns the deltaprop outputs. ``smooth=False`` marks inputs at points where the
    function is not differentiable (ties, clamps, saturation): without torch, only the forward
    checks run there.
    """
    if torch is None:
        return check_without_torch(
            dp_fn, arrays, grad=grad, atol=atol, rtol=rtol, dtype=dtype, smooth=smooth
        )
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
    if torch is None:
        NOT_RUN["raises_both"] += 1
    else:
        with pytest.raises(Exception):  # noqa: B017 - torch's exception types vary by op
            torch_fn()
    with pytest.raises(dp_exc, match=match) as info:
        dp_fn()
    return str(info.value)


# ----------------------------------------------------------------------------------------------
# without PyTorch
# ----------------------------------------------------------------------------------------------

NOT_RUN = {"compare": 0, "raises_both": 0}  # PyTorch comparisons that could not run


def check_without_torch(
    dp_fn: Callable[..., Any],
    arrays: Sequence[Any],
    *,
    grad: Sequence[bool] | None = None,
    atol: float = 1e-7,
    rtol: float = 1e-6,
    dtype: Any = np.float64,
    smooth: bool = True,
) -> list:
    """``compare``'s checks that need no PyTorch (see the module docstring).

    The forward runs in ``dtype``; its fused ops are compared with their twins (in that dtype's
    precision). Gradients are checked in float64: ``dp.gradcheck`` and the recorded backward
    (twins) against the plain backward.
    """
    NOT_RUN["compare"] += 1
    tol = {"atol": atol, "rtol": rtol}
    if np.dtype(dtype) != np.float64:
        tol = {"atol": max(atol, 1e-5), "rtol": max(rtol, 1e-4)}
    dp_in, diff = [], []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            rg = True if grad is None else grad[i]
            dp_in.append(dp.tensor(a.astype(dtype), dtype=dtype, requires_grad=rg))
            if rg:
                diff.append(i)
        elif isinstance(a, np.ndarray):
            dp_in.append(dp.tensor(a, dtype=a.dtype))
        else:
            dp_in.append(a)
    dy = _outputs(dp_fn(*dp_in))
    for fn in graph_functions(dy):
        if fn.twin is not None:
            with dp.no_grad():
                twin = fn.twin(*fn.inputs)
            np.testing.assert_allclose(
                fn._y, twin.data, **tol, err_msg=f"{fn.name}: fused forward vs its twin"
            )
    if not diff:
        return dy
    xs = [
        dp.tensor(a.astype(np.float64), dtype=dp.float64, requires_grad=True) if i in diff else t
        for i, (a, t) in enumerate(zip(arrays, dp_in))
    ]
    finite = all(np.isfinite(o.data).all() for o in dy)  # (NaN outputs: nothing to check)
    if smooth and finite:  # element by element for small inputs, along random directions else
        fast = sum(xs[i].numel() for i in diff) > 64
        assert dp.gradcheck(dp_fn, xs, atol=1e-5, rtol=1e-4, fast_mode=fast)
    outs = [o for o in _outputs(dp_fn(*xs)) if o.requires_grad]
    assert outs, "no differentiable output"
    rng = np.random.default_rng(1)
    gos = [dp.tensor(rng.standard_normal(o.shape), dtype=dp.float64) for o in outs]
    wrt = [xs[i] for i in diff]
    plain = dp.autograd.grad(outs, wrt, gos, retain_graph=True, allow_unused=True)
    recorded = dp.autograd.grad(outs, wrt, gos, create_graph=True, allow_unused=True)
    for i, p, r in zip(diff, plain, recorded):
        if p is None or r is None:
            assert p is None or np.allclose(p.data, 0), f"input {i}: no recorded gradient"
            continue
        if not (smooth and finite and np.isfinite(p.data).all()):
            continue  # ties, clamps, NaN/inf where the function saturates: no reference value
        np.testing.assert_allclose(
            r.data, p.data, atol=1e-9, rtol=1e-7, err_msg=f"input {i}: recorded vs plain backward"
        )
    return dy
