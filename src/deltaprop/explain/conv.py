"""Convolution and pooling on tiny inputs, shown as matrices.

The layers run on the engine (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``). For display,
the explainer unrolls the engine's inputs:

* im2col: each receptive field becomes one row of ``cols`` (N*H'*W' x C*kh*kw), the kernels the
  columns of ``Wmat`` (C*kh*kw x K); the convolution is the GEMM ``net = cols @ Wmat + b``;
* backward: ``dW = cols^T @ dY``, ``db = sum of dY``, and ``dX = col2im(dY @ Wmat^T)``: each row
  of ``dcols`` is scattered back onto its receptive field, where overlapping windows add up;
* max pooling: the argmax of each window, where the whole upstream gradient goes;
* average pooling: each upstream gradient divided by the window size, to every input of the
  window.

Every displayed result is compared with the engine's own value or gradient (``net``, ``W.grad``,
``b.grad``, the input's ``.grad``); a disagreement raises ``RuntimeError``.
"""

from __future__ import annotations

import numpy as np

from deltaprop.explain.records import ConvDisplay, LayerRecord, PoolDisplay
from deltaprop.ops.common import conv_output_size


def agree(
    what: str, shown: np.ndarray, engine: np.ndarray | None, scale: np.ndarray | None = None
) -> None:
    """Raise ``RuntimeError`` unless a displayed array equals the engine's within rounding.

    ``scale`` is the magnitude of the terms each entry sums (``|A| @ |B|`` for a product
    ``A @ B``): sums of large terms that cancel may differ by rounding of that size, depending
    on the order of the additions.
    """
    if engine is None:
        return
    if shown.shape != engine.shape:
        raise RuntimeError(
            f"explain: the displayed {what} has shape {shown.shape}, the engine's {engine.shape}; "
            "please report this with the spec file"
        )
    rtol, atol = (1e-9, 1e-12) if engine.dtype == np.float64 else (1e-4, 1e-6)
    size = np.abs(engine) if scale is None else np.maximum(np.abs(engine), scale)
    with np.errstate(invalid="ignore"):
        close = np.abs(shown - engine) <= atol + rtol * size
    close |= np.isnan(shown) & np.isnan(engine)
    close |= np.isinf(shown) & (shown == engine)
    if not np.all(close):
        raise RuntimeError(
            f"explain: the displayed {what} disagrees with the engine's value "
            f"(values {shown.ravel()[:8]} and {engine.ravel()[:8]}); "
            "please report this with the spec file"
        )


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Rows = receptive fields: (N*H'*W', C*kh*kw), rows ordered (n, r, c), columns (c, i, j)."""
    n, c, h, w = x.shape
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
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
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    d = dcols.reshape(n, ho, wo, c, kh, kw)
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=dcols.dtype)
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
    size = np.abs(cols) @ np.abs(wmat) + (np.abs(b) if b is not None else 0)
    agree("GEMM cols @ Wmat + b", gemm, rec.net.transpose(0, 2, 3, 1).reshape(-1, kk), size)
    dy = rec.delta.transpose(0, 2, 3, 1).reshape(-1, kk)
    dw = cols.T @ dy
    size = (np.abs(cols).T @ np.abs(dy)).T.reshape(w.shape)
    agree("weight gradient cols^T @ dY", dw.T.reshape(w.shape), rec.weight_grad, size)
    db = dy.sum(axis=0)
    if b is not None:
        agree("bias gradient (sum of dY)", db, rec.bias_grad, np.abs(dy).sum(axis=0))
    dcols = dy @ wmat.T
    dx = col2im(dcols, x.shape, kh, kw, s, p)
    size = col2im(np.abs(dy) @ np.abs(wmat).T, x.shape, kh, kw, s, p)
    agree("input gradient col2im(dY @ Wmat^T)", dx, rec.input_grad, size)
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
    """Where each window's gradient goes (max: the first maximal element; avg: every element,
    divided by kh*kw), checked against the engine's pooled values and input gradient."""
    x = rec.input
    kh, kw = rec.kernel_size
    sh, sw = rec.stride
    p = rec.padding
    is_max = rec.type == "maxpool2d"
    fill = -np.inf if is_max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill) if p else x
    n, c, ho, wo = rec.net.shape
    mask = np.zeros(x.shape, dtype=x.dtype) if is_max else None
    dx = np.zeros(x.shape, dtype=x.dtype)
    share = 1.0 if is_max else 1.0 / (kh * kw)
    pooled = np.empty(rec.net.shape, dtype=np.float64)
    routes = []
    for a in range(n):
        for ch in range(c):
            for r in range(ho):
                for q in range(wo):
                    win = xp[a, ch, r * sh : r * sh + kh, q * sw : q * sw + kw]
                    g = float(rec.delta[a, ch, r, q])
                    if is_max:
                        i, j = np.unravel_index(int(np.argmax(win)), win.shape)
                        cells = [(int(r * sh + i - p), int(q * sw + j - p))]
                        mask[a, ch, cells[0][0], cells[0][1]] = 1
                        pooled[a, ch, r, q] = win[i, j]
                    else:
                        cells = [
                            (r * sh + i - p, q * sw + j - p)
                            for i in range(kh)
                            for j in range(kw)
                            if 0 <= r * sh + i - p < x.shape[2] and 0 <= q * sw + j - p < x.shape[3]
                        ]
                        pooled[a, ch, r, q] = win.sum() * share
                    for yy, xx in cells:
                        dx[a, ch, yy, xx] += g * share
                    routes.append(((a, ch, r, q), cells, g))
    what = "the max of each window" if is_max else "the mean of each window"
    agree(f"pooled values ({what})", pooled.astype(x.dtype), rec.net, np.max(np.abs(x)))
    agree(
        "input gradient routed through the pooling", dx, rec.input_grad, np.max(np.abs(rec.delta))
    )
    return PoolDisplay("max" if is_max else "avg", mask, routes, dx, share)
