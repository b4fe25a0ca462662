"""Convolution and max pooling on tiny inputs, shown as matrices.

The layers run on the engine (``deltaprop.nn.functional.conv2d`` / ``max_pool2d``; where those
are not available, the same functions composed of primitive ops: strided slices, ``stack``,
``matmul``, ``max``). For display, the explainer unrolls the engine's inputs:

* im2col: each receptive field becomes one row of ``cols`` (N*H'*W' x C*kh*kw), the kernels the
  columns of ``Wmat`` (C*kh*kw x K); the convolution is the GEMM ``net = cols @ Wmat + b``;
* backward: ``dW = cols^T @ dY``, ``db = sum of dY``, and ``dX = col2im(dY @ Wmat^T)``: each row
  of ``dcols`` is scattered back onto its receptive field, where overlapping windows add up;
* max pooling: the argmax mask of each window, and where each upstream gradient goes.

Every displayed result is compared with the engine's own value or gradient (``net``, ``W.grad``,
``b.grad``, the input's ``.grad``); a disagreement raises ``RuntimeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import deltaprop as dp
from deltaprop.tensor import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from deltaprop.explain.trace import LayerRecord


# ----------------------------------------------------------------------------------------------
# engine forward
# ----------------------------------------------------------------------------------------------


def _functional() -> Any:
    try:
        from deltaprop.nn import functional as F
    except ImportError:
        return None
    return F


def _pad(x: Tensor, p: int, value: float) -> Tensor:
    """``x`` (N, C, H, W) padded by ``p`` on each side with ``value`` (engine ``cat``)."""
    if p == 0:
        return x
    n, c, h, w = x.shape
    side = dp.full((n, c, h, p), value, dtype=x.dtype)
    x = dp.cat([side, x, side], dim=3)
    top = dp.full((n, c, p, w + 2 * p), value, dtype=x.dtype)
    return dp.cat([top, x, top], dim=2)


def _windows(x: Tensor, k: tuple[int, int], s: tuple[int, int]) -> tuple[Tensor, int, int]:
    """(N, C, kh*kw, H', W'): one strided slice per kernel offset, stacked."""
    n, c, h, w = x.shape
    ho = (h - k[0]) // s[0] + 1
    wo = (w - k[1]) // s[1] + 1
    parts = [
        x[:, :, i : i + s[0] * (ho - 1) + 1 : s[0], j : j + s[1] * (wo - 1) + 1 : s[1]]
        for i in range(k[0])
        for j in range(k[1])
    ]
    return dp.stack(parts, dim=2), ho, wo


def conv2d_twin(x: Tensor, w: Tensor, b: Tensor | None, stride: int, padding: int) -> Tensor:
    """conv2d composed of primitive ops: im2col by slices, one matmul, plus bias."""
    kk, c, kh, kw = w.shape
    x = _pad(x, padding, 0.0)
    n = x.shape[0]
    win, ho, wo = _windows(x, (kh, kw), (stride, stride))  # (N, C, kh*kw, H', W')
    cols = win.reshape(n, c * kh * kw, ho * wo).permute(0, 2, 1)  # (N, H'W', C kh kw)
    y = cols @ w.reshape(kk, c * kh * kw).T  # (N, H'W', K)
    y = y.permute(0, 2, 1).reshape(n, kk, ho, wo)
    return y + b.reshape(1, kk, 1, 1) if b is not None else y


def max_pool2d_twin(
    x: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], padding: int
) -> Tensor:
    """max_pool2d composed of primitive ops: windows by slices, ``max`` over each window."""
    x = _pad(x, padding, -np.inf)
    win, _, _ = _windows(x, kernel_size, stride)
    values, _ = win.max(dim=2)
    return values


def conv2d(x: Tensor, w: Tensor, b: Tensor | None, stride: int, padding: int) -> Tensor:
    """The engine's conv2d (``F.conv2d``; its primitive twin where nn is not available)."""
    F = _functional()
    if F is not None and hasattr(F, "conv2d"):
        return F.conv2d(x, w, b, stride=stride, padding=padding)
    return conv2d_twin(x, w, b, stride, padding)


def max_pool2d(
    x: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], padding: int
) -> Tensor:
    """The engine's max_pool2d (``F.max_pool2d``; its primitive twin where nn is not available)."""
    F = _functional()
    if F is not None and hasattr(F, "max_pool2d"):
        return F.max_pool2d(x, kernel_size, stride=stride, padding=padding)
    return max_pool2d_twin(x, kernel_size, stride, padding)


# ----------------------------------------------------------------------------------------------
# displays
# ----------------------------------------------------------------------------------------------


@dataclass
class ConvDisplay:
    """The matrices of one conv layer's step (see the module docstring)."""

    cols: np.ndarray  # (N*H'*W', C*kh*kw)
    row_labels: list[str]  # output position of each row: "(r,c)", "s2 (r,c)" with several samples
    col_labels: list[str]  # kernel entry of each column: "(i,j)", "c2 (i,j)" with several channels
    wmat: np.ndarray  # (C*kh*kw, K)
    gemm: np.ndarray  # cols @ wmat + b, (N*H'*W', K) == net
    dy: np.ndarray  # delta as (N*H'*W', K)
    dw: np.ndarray  # cols^T @ dY, (C*kh*kw, K)
    db: np.ndarray  # (K,)
    dcols: np.ndarray  # dY @ Wmat^T, (N*H'*W', C*kh*kw)
    dx: np.ndarray | None  # col2im(dcols), (N, C, H, W)
    scatter: dict[tuple[int, int, int, int], list[tuple[int, int]]]  # x cell -> (row, col) of dcols


@dataclass
class PoolDisplay:
    """The argmax of each window and where each upstream gradient goes."""

    mask: np.ndarray  # (N, C, H, W), 1 at each window's argmax
    routes: list[tuple[tuple[int, int, int, int], tuple[int, int], float]]
    # ((n, c, out_r, out_c), (in_r, in_c), upstream gradient)
    dx: np.ndarray  # (N, C, H, W)


def _tol(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 1e-9, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-6}


def _agree(what: str, shown: np.ndarray, engine: np.ndarray | None) -> None:
    if engine is None:
        return
    if shown.shape != engine.shape or not np.allclose(shown, engine, **_tol(engine.dtype)):
        raise RuntimeError(
            f"explain: the displayed {what} disagrees with the engine's value "
            f"(shapes {shown.shape} and {engine.shape}, values {shown.ravel()[:8]} and "
            f"{engine.ravel()[:8]}); "
            "please report this with the spec file"
        )


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Rows = receptive fields: (N*H'*W', C*kh*kw), rows ordered (n, r, c), columns (c, i, j)."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    ho = (h - kh) // stride + 1
    wo = (w - kw) // stride + 1
    cols = np.empty((n, ho, wo, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = x[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ].transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, c * kh * kw)


def col2im(
    dcols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int, stride: int, padding: int
) -> np.ndarray:
    """Scatter-add each row of ``dcols`` back onto its receptive field (overlaps add up)."""
    n, c, h, w = x_shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho = (hp - kh) // stride + 1
    wo = (wp - kw) // stride + 1
    d = dcols.reshape(n, ho, wo, c, kh, kw)
    out = np.zeros((n, c, hp, wp), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return out[:, :, padding : padding + h, padding : padding + w]


def conv_display(rec: LayerRecord) -> ConvDisplay:
    """Unroll one conv layer's step and check every matrix product against the engine."""
    x, w, b = rec.input, rec.weights, rec.biases
    kk, c, kh, kw = w.shape
    s, p = rec.stride[0], rec.padding
    n = x.shape[0]
    ho, wo = rec.net.shape[2:]
    cols = im2col(x, kh, kw, s, p)
    wmat = w.reshape(kk, c * kh * kw).T
    gemm = cols @ wmat + b if b is not None else cols @ wmat
    _agree("GEMM cols @ Wmat + b", gemm, rec.net.transpose(0, 2, 3, 1).reshape(-1, kk))
    dy = rec.delta.transpose(0, 2, 3, 1).reshape(-1, kk)
    dw = cols.T @ dy
    _agree("weight gradient cols^T @ dY", dw.T.reshape(w.shape), rec.weight_grad)
    db = dy.sum(axis=0)
    if b is not None:
        _agree("bias gradient (sum of dY)", db, rec.bias_grad)
    dcols = dy @ wmat.T
    dx = col2im(dcols, x.shape, kh, kw, s, p)
    _agree("input gradient col2im(dY @ Wmat^T)", dx, rec.input_grad)
    rows = [
        (f"s{a + 1} " if n > 1 else "") + f"({r + 1},{q + 1})"
        for a in range(n)
        for r in range(ho)
        for q in range(wo)
    ]
    labels = [
        (f"c{ch + 1} " if c > 1 else "") + f"({i + 1},{j + 1})"
        for ch in range(c)
        for i in range(kh)
        for j in range(kw)
    ]
    scatter: dict[tuple[int, int, int, int], list[tuple[int, int]]] = {}
    for a in range(n):
        for r in range(ho):
            for q in range(wo):
                row = (a * ho + r) * wo + q
                for ch in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            yy, xx = r * s + i - p, q * s + j - p
                            if 0 <= yy < x.shape[2] and 0 <= xx < x.shape[3]:
                                col = (ch * kh + i) * kw + j
                                scatter.setdefault((a, ch, yy, xx), []).append((row, col))
    return ConvDisplay(cols, rows, labels, wmat, gemm, dy, dw, db, dcols, dx, scatter)


def pool_display(rec: LayerRecord) -> PoolDisplay:
    """Argmax of each window (the first maximal element) and the routed upstream gradients."""
    x = rec.input
    kh, kw = rec.kernel_size
    sh, sw = rec.stride
    p = rec.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf) if p else x
    n, c, ho, wo = rec.net.shape
    mask = np.zeros(x.shape, dtype=x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype)
    routes = []
    for a in range(n):
        for ch in range(c):
            for r in range(ho):
                for q in range(wo):
                    win = xp[a, ch, r * sh : r * sh + kh, q * sw : q * sw + kw]
                    i, j = np.unravel_index(int(np.argmax(win)), win.shape)
                    yy, xx = r * sh + i - p, q * sw + j - p
                    g = rec.delta[a, ch, r, q]
                    mask[a, ch, yy, xx] = 1
                    dx[a, ch, yy, xx] += g
                    routes.append(((a, ch, r, q), (int(yy), int(xx)), float(g)))
    picked = np.array([x[a, ch, yy, xx] for (a, ch, _, _), (yy, xx), _ in routes], dtype=x.dtype)
    _agree("pooled values (the max of each window)", picked, rec.net.reshape(-1))
    _agree("input gradient routed to the argmax", dx, rec.input_grad)
    return PoolDisplay(mask, routes, dx)
