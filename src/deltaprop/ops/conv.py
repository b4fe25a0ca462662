"""2-D convolution by im2col: every receptive field unrolled into a column, then one GEMM.

Shapes (PyTorch's): input x (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,), output
(N, K, Ho, Wo) with, per spatial axis (padding p_lo + p_hi, dilation d, stride s),

    Ho = floor((H + p_lo + p_hi - d (kh - 1) - 1) / s) + 1

Forward (cross-correlation, as every deep-learning framework computes it)::

    y[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xpad[n, c, s i + d u, s j + d v]

im2col writes the receptive fields as the columns of ``cols`` (C*kh*kw, Ho*Wo*N), the kernels as
the rows of ``W`` (K, C*kh*kw); then ``Y = W @ cols`` is the whole convolution. Backward, with
``G`` the upstream gradient laid out like Y (K, Ho*Wo*N)::

    dL/dW = G @ cols^T                     (K, C*kh*kw)
    dL/db = G summed over batch and positions
    dL/dx = col2im(W^T @ G)                each column scattered back to its receptive field;
                                           overlapping fields add up

Memory layout inside the op (measured in ``benchmarks/conv_layouts.py``), one of two:

* batch innermost: the padded input is held as (C, Hp, Wp, N) and the columns as (C*kh*kw,
  Ho*Wo*N), so each im2col copy and col2im add moves runs of N contiguous values (2-4x faster
  than NCHW slices when output rows are short, as in LeNet's second layer); the columns are
  unrolled a few output rows at a time (chunks of about ``CHUNK_BYTES``); the output and dL/dx
  are transposed back to NCHW in cache-sized tiles.
* NCHW (batch outermost): columns (N, C*kh*kw, Ho*Wo), unrolled a chunk of the batch at a time,
  and one GEMM per sample (a batched matmul) whose output is NCHW already: no transposes, which
  wins for wide output rows and for small batches. With a bias (and one group) the columns get
  a last row of ones and the kernels the bias as a last column (``[W | b] @ [cols; 1]``), so
  the GEMM adds the bias and the weight-gradient GEMM ``G @ [cols; 1]^T`` yields ``dL/db`` as
  its last column: no separate pass over the output, and no sum over the batch and spatial
  axes of G (NumPy's reduction over axes (0, 2, 3) took 0.2 ms for LeNet's first layer).

In both, each chunk of columns is unrolled into one reused buffer (about the L2 cache) and
multiplied while it is in cache; the columns are never kept: the op saves the padded input and
unrolls it again, chunk by chunk, for dL/dW (LeNet-5 no longer holds its 9 MB of columns from
forward to backward, and its training step got 5-8% faster, ``docs/benchmarks.md``). im2col is
one copy of a strided view of every receptive field; col2im loops in Python over the kernel
offsets, never positions or samples. In the batch-innermost layout dL/dx's columns ``W^T @ G``
are made and added back a few output rows at a time as well (``COL2IM_BYTES``), so that they
too never exist whole. :func:`choose_layout` picks the layout by output row length and batch
size.

``Convolution2DFunction.twin`` is the same convolution composed of primitive ops (slices, stack,
matmul): the teaching version, the second oracle of the tests, and what the engine
differentiates for higher-order gradients.

>>> import deltaprop as dp
>>> x = dp.ones(1, 1, 3, 3)
>>> w = dp.ones(1, 1, 2, 2, requires_grad=True)
>>> y = conv2d(x, w)                   # every 2x2 window sums to 4
>>> y.shape, float(y.sum())
((1, 1, 2, 2), 16.0)
>>> y.sum().backward()
>>> w.grad.shape
(1, 1, 2, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from deltaprop.errors import ShapeError
from deltaprop.ops.common import as_tensor, conv_output_size, int_pair, pad2d, window_slices
from deltaprop.tensor import Function, Tensor, is_grad_enabled

__all__ = [
    "conv2d",
    "Convolution2DFunction",
    "choose_layout",
    "BATCH_INNER",
    "BATCH_OUTER",
]

# Bytes of unrolled columns per chunk (of the batch in NCHW, of output rows batch innermost).
# 256 KiB to 4 MiB measured alike in the LeNet-5 step (benchmarks/conv_ab.py).
CHUNK_BYTES = 1 << 20
# Bytes of the input gradient's columns per chunk (batch-innermost layout).
COL2IM_BYTES = 2 << 20

# Positions per tile when moving the batch axis from innermost back to outermost.
_TILE = 128

# Internal layouts of the padded input and the unrolled columns (see choose_layout).
BATCH_INNER = "batch_inner"  # (C, H, W, N): 2-D GEMMs over all positions of the batch
BATCH_OUTER = "batch_outer"  # NCHW as given: one GEMM per sample (batched matmul)


def choose_layout(n: int, wo: int) -> str:
    """Batch innermost for short output rows and a batch at least as long, else NCHW.

    Batch innermost makes each im2col copy and col2im add move runs of N contiguous values
    instead of runs of Wo, but the output and dL/dx must be transposed back to NCHW. Measured
    (``benchmarks/conv_layouts.py --layouts``, batch 1 to 256): batch innermost won for Wo = 10
    and 16 from batch 16 up; NCHW won for Wo >= 28 at every batch size and for batch 1.
    """
    return BATCH_INNER if wo < 24 and n >= wo else BATCH_OUTER


def _batch_first(src: np.ndarray, out: np.ndarray, add: Any = None) -> None:
    """``out[n, a, h, w] = src[a, h, w, n] (+ add[a])``: from batch innermost back to NCHW.

    A plain transposed copy of a large array reads one cache line per element; copying tiles of
    about 128 positions (the whole batch) keeps each tile in L1 and ran 2-8x faster.
    """
    a_len, h_len, w_len, _ = src.shape
    rows = max(1, _TILE // w_len)
    for a in range(a_len):
        for h in range(0, h_len, rows):
            tile = src[a, h : h + rows].transpose(2, 0, 1)
            if add is None:
                out[:, a, h : h + rows] = tile
            else:
                np.add(tile, add[a], out=out[:, a, h : h + rows])


def _row_blocks(rows: int, per_row: int, dtype: Any, budget: int):
    """(start, stop, flat buffer of ``(stop - start) * per_row`` elements) over ``rows`` output
    rows in blocks of about ``budget`` bytes, every block a view of one reused buffer."""
    step = max(1, budget // max(1, per_row * np.dtype(dtype).itemsize))
    buf = np.empty(min(rows, step) * per_row, dtype=dtype)
    for r in range(0, rows, step):
        e = min(rows, r + step)
        yield r, e, buf[: (e - r) * per_row]


# ----------------------------------------------------------------------------------------------
# the op
# ----------------------------------------------------------------------------------------------


class Convolution2DFunction(Function):
    """y = conv2d(x, w) + b by im2col (see the module docstring for the formulas).

    Forward:  cols = im2col(xpad) (C*kh*kw, positions);  Y = W (K, C*kh*kw) @ cols + b.
    Backward: dW = G @ cols^T,  db = sum of G over positions,  dx = col2im(W^T @ G),
    per group when ``groups`` > 1 (block-diagonal W). Inputs: (x, w) or (x, w, b), x 4-D.

    Two internal layouts (``layout``, chosen by :func:`choose_layout` unless given):
    ``BATCH_INNER`` holds the padded input as (C, Hp, Wp, N) and the columns as (C*kh*kw,
    Ho*Wo*N), unrolled a few output rows at a time; ``BATCH_OUTER`` keeps NCHW, columns (N,
    C*kh*kw, Ho*Wo) unrolled a chunk of the batch at a time, and one GEMM per sample (a batched
    matmul), whose output is NCHW already.
    """

    def __init__(
        self,
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        dilation: tuple[int, int],
        groups: int = 1,
        save_cols: bool = True,
        layout: str | None = None,
    ) -> None:
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.save_cols, self.layout = groups, save_cols, layout

    def _out_hw(self, h: int, w: int, kh: int, kw: int) -> tuple[int, int]:
        pt, pb, pl, pr = self.padding
        return (
            conv_output_size(h, kh, self.stride[0], (pt, pb), self.dilation[0]),
            conv_output_size(w, kw, self.stride[1], (pl, pr), self.dilation[1]),
        )

    def _windows(
        self, xp: np.ndarray, axis: int, kernel: tuple[int, int], out_hw, writeable: bool = False
    ) -> np.ndarray:
        """A view of every receptive field of ``xp``, whose (H, W) axes are ``axis`` and
        ``axis + 1``: those two become (kh, kw, Ho, Wo), element ``[u, v, i, j]`` being
        ``xp[s i + d u, s j + d v]``. One copy of this view is the whole im2col (the same
        values as one strided slice per kernel offset, without kh*kw separate copies). Read-only
        unless ``writeable``: the fields overlap, so only one kernel offset's part ``[u, v]``
        at a time may be written (col2im adds into it offset by offset)."""
        rs, cs = xp.strides[axis], xp.strides[axis + 1]
        (sh, sw), (dh, dw) = self.stride, self.dilation
        shape = xp.shape[:axis] + tuple(kernel) + tuple(out_hw) + xp.shape[axis + 2 :]
        strides = xp.strides[:axis] + (dh * rs, dw * cs, sh * rs, sw * cs) + xp.strides[axis + 2 :]
        return as_strided(xp, shape, strides, writeable=writeable)

    def forward(self, x, w, b=None):
        n, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        g, m = self.groups, cg * kh * kw  # m: rows of one group's columns
        pt, pb, pl, pr = self.padding
        ho, wo = self._out_hw(h, wd, kh, kw)
        if self.layout is None:
            self.layout = choose_layout(n, wo)
        w3 = w.reshape(g, k // g, m)
        out = np.empty((n, k, ho, wo), dtype=x.dtype)
        if self.layout == BATCH_INNER:
            xp = (np.zeros if any(self.padding) else np.empty)(
                (c, h + pt + pb, wd + pl + pr, n), dtype=x.dtype
            )
            xp[:, pt : pt + h, pl : pl + wd] = x.transpose(1, 2, 3, 0)
            y = np.empty((g, k // g, ho * wo * n), dtype=x.dtype)
            for s, e, cols in self._row_chunks(xp, (kh, kw), (ho, wo), g):
                np.matmul(w3, cols, out=y[:, :, s:e])
            _batch_first(y.reshape(k, ho, wo, n), out, b)
        else:
            xp = x
            if any(self.padding):
                xp = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=x.dtype)
                xp[:, :, pt : pt + h, pl : pl + wd] = x
            # with a bias (one group), the columns get a last row of ones and the kernels the
            # bias as a last column: the GEMM adds the bias, and dL/dW's GEMM yields dL/db
            self.bias_row = b is not None and g == 1
            if self.bias_row:
                w3 = np.concatenate((w3, b.reshape(1, k, 1)), axis=2)
            out4 = out.reshape(n, g, k // g, ho * wo)
            for s, e, cols in self._column_chunks(xp, (kh, kw), (ho, wo), g):
                np.matmul(w3, cols, out=out4[s:e])
            if b is not None and not self.bias_row:
                out += b.reshape(k, 1, 1)
        self.xp = xp if self.save_cols else None  # dL/dW unrolls it again, chunk by chunk
        return out

    def _row_chunks(self, xp, kernel, out_hw, g):
        """(start, stop, columns (G, rows, stop - start)) over the positions (Ho, Wo, N) of the
        batch-innermost layout in chunks of whole output rows of about CHUNK_BYTES, each
        unrolled into one reused buffer."""
        c, n = xp.shape[0], xp.shape[3]
        (kh, kw), (ho, wo) = kernel, out_hw
        windows = self._windows(xp, 1, kernel, out_hw)  # (C, kh, kw, Ho, Wo, N)
        for r, e, flat in _row_blocks(ho, c * kh * kw * wo * n, xp.dtype, CHUNK_BYTES):
            cols = flat.reshape(c, kh, kw, e - r, wo, n)
            np.copyto(cols, windows[:, :, :, r:e])
            yield r * wo * n, e * wo * n, cols.reshape(g, c // g * kh * kw, (e - r) * wo * n)

    def _column_chunks(self, xp, kernel, out_hw, g):
        """(start, stop, columns (stop - start, G, rows, Ho*Wo)) over the batch in chunks of
        about CHUNK_BYTES, the columns of each unrolled into one reused buffer."""
        n, c = xp.shape[:2]
        (kh, kw), (ho, wo) = kernel, out_hw
        m = c // g * kh * kw
        rows = m + self.bias_row
        step = max(1, CHUNK_BYTES // (g * rows * ho * wo * xp.itemsize))
        buf = np.empty((min(n, step), g, rows, ho * wo), dtype=xp.dtype)
        if self.bias_row:
            buf[:, 0, m] = 1
        fields = buf[:, :, :m].reshape(len(buf), c, kh, kw, ho, wo)  # a view: splits axes only
        windows = self._windows(xp, 2, kernel, out_hw)
        for s in range(0, n, step):
            e = min(n, s + step)
            np.copyto(fields[: e - s], windows[s:e])
            yield s, e, buf[: e - s]

    def backward(self, gy):
        x, w = self.inputs[0].data, self.inputs[1].data
        n, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        g, m = self.groups, cg * kh * kw
        ho, wo = gy.shape[2], gy.shape[3]
        pt, pb, pl, pr = self.padding
        inner = self.layout == BATCH_INNER
        if inner:  # the upstream gradient laid out as Y: (G, K/G, Ho*Wo*N)
            gk = np.ascontiguousarray(gy.transpose(1, 2, 3, 0)).reshape(g, k // g, -1)
        else:  # (N, G, K/G, Ho*Wo)
            gk = gy.reshape(n, g, k // g, ho * wo)
        gx = gw = gb = None
        if self.needs_grad[1]:
            saved = self.xp
            if saved is None:  # forward ran without saving it (weight did not need grad then)
                raise RuntimeError("conv2d: the padded input was not saved for dL/dweight")
            if inner:  # (cols @ G^T)^T summed over chunks: the faster orientation here
                gwt = np.zeros((g, m, k // g), dtype=x.dtype)
                for s, e, cols in self._row_chunks(saved, (kh, kw), (ho, wo), g):
                    gwt += np.matmul(cols, gk[:, :, s:e].transpose(0, 2, 1))
                gw = gwt.transpose(0, 2, 1)
            else:  # per sample, summed over the batch, chunk by chunk
                for s, e, cols in self._column_chunks(saved, (kh, kw), (ho, wo), g):
                    part = np.matmul(gk[s:e], cols.transpose(0, 1, 3, 2)).sum(axis=0)
                    gw = part if gw is None else np.add(gw, part, out=gw)
                if gw is None:  # an empty batch
                    gw = np.zeros((g, k // g, m + self.bias_row), dtype=x.dtype)
                if self.bias_row:  # the last column: dL/db = G @ ones
                    if len(self.needs_grad) > 2 and self.needs_grad[2]:
                        gb = gw[0, :, m].copy()
                    gw = gw[:, :, :m]
            gw = gw.reshape(w.shape)
        if len(self.needs_grad) > 2 and self.needs_grad[2] and gb is None:
            gb = gk.reshape(k, -1).sum(axis=1) if inner else gy.sum(axis=(0, 2, 3))
        if self.needs_grad[0]:
            wt = w.reshape(g, k // g, m).transpose(0, 2, 1)
            hp, wp = h + pt + pb, wd + pl + pr
            # col2im: add each kernel offset's columns back into a padded buffer
            if inner:  # a few output rows at a time: W^T @ G into one buffer, then col2im
                dxp = np.zeros((c, hp, wp, n), dtype=x.dtype)
                fields = self._windows(dxp, 1, (kh, kw), (ho, wo), writeable=True)
                row = wo * n
                for r, e, flat in _row_blocks(ho, g * m * row, x.dtype, COL2IM_BYTES):
                    dcols = flat.reshape(g, m, (e - r) * row)
                    np.matmul(wt, gk[:, :, r * row : e * row], out=dcols)
                    dcols = dcols.reshape(c, kh, kw, e - r, wo, n)
                    for i in range(kh):
                        for j in range(kw):  # one offset's fields never overlap each other
                            fields[:, i, j, r:e] += dcols[:, i, j]
                gx = np.empty(x.shape, dtype=x.dtype)
                _batch_first(dxp[:, pt : pt + h, pl : pl + wd], gx)
            else:
                dcols = np.matmul(wt, gk).reshape(n, c, kh, kw, ho, wo)
                dxp = np.zeros((n, c, hp, wp), dtype=x.dtype)
                fields = self._windows(dxp, 2, (kh, kw), (ho, wo), writeable=True)
                for i in range(kh):
                    for j in range(kw):  # one offset's fields never overlap each other
                        fields[:, :, i, j] += dcols[:, :, i, j]
                gx = dxp[:, :, pt : pt + h, pl : pl + wd]
                if gx.shape != dxp.shape:
                    gx = gx.copy()
        return (gx, gw) if len(self.needs_grad) == 2 else (gx, gw, gb)

    def twin(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        """The same convolution from primitive ops (DeZero's ``conv2d_simple``).

        Each kernel offset's strided slice of the padded input is one (N, C, Ho, Wo) tensor;
        stacked they are the unrolled input (N, G, C/G*kh*kw, Ho*Wo), and a batched matmul
        with the kernels (G, K/G, C/G*kh*kw) is the convolution.
        """
        from deltaprop.ops.shape import stack

        n, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        g = self.groups
        ho, wo = self._out_hw(h, wd, kh, kw)
        xp = pad2d(x, self.padding)
        pieces = []
        for i in range(kh):
            for j in range(kw):
                si, sj = window_slices(i, j, (ho, wo), self.stride, self.dilation)
                pieces.append(xp[:, :, si, sj])
        cols = stack(pieces, dim=2).reshape(n, g, cg * kh * kw, ho * wo)
        y = (w.reshape(g, k // g, cg * kh * kw) @ cols).reshape(n, k, ho, wo)
        if b is not None:
            y = y + b.reshape(1, k, 1, 1)
        return y


# ----------------------------------------------------------------------------------------------
# the function
# ----------------------------------------------------------------------------------------------


def _conv_padding(
    padding: Any, kernel: tuple[int, int], dilation: tuple[int, int], stride: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same' (as PyTorch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"conv2d: padding='same' is not supported for strided convolutions "
                    f"(stride={stride})"
                )
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        raise ValueError(f"conv2d: invalid padding string {padding!r}; expected 'valid' or 'same'")
    ph, pw = int_pair("conv2d", "padding", padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: negative padding is not supported, got padding={padding!r}")
    return (ph, ph, pw, pw)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) over an (N, C, H, W) input, as ``F.conv2d``.

    ``x``: (N, C, H, W), or (C, H, W) for one unbatched sample; ``weight``: (K, C/groups, kh, kw);
    ``bias``: (K,) or None. ``stride``, ``dilation``: int or (h, w) pair; ``padding``: int, pair,
    ``'valid'`` or ``'same'`` (stride 1; an odd total pads one more at the bottom/right).
    Returns (N, K, Ho, Wo) with ``Ho = (H + 2 p - d (kh - 1) - 1) // s + 1``.

    >>> import deltaprop as dp
    >>> x = dp.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = dp.ones(2, 1, 3, 3)
    >>> conv2d(x, w, dp.tensor([0.0, 1.0]), padding=1).shape
    (1, 2, 4, 4)
    """
    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim not in (3, 4):
        raise ShapeError(
            f"conv2d: expected a 3-D (unbatched, C x H x W) or 4-D (batched, N x C x H x W) "
            f"input, got shape {x.shape}"
        )
    if weight.ndim != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D weight (out_channels, in_channels/groups, kh, kw), got "
            f"shape {weight.shape}"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    for name, t in (("input", x), ("weight", weight)):
        if t.dtype.kind != "f":
            raise TypeError(f"conv2d: {name} must be a floating point tensor, got {t.dtype}")
    if x.dtype != weight.dtype:
        raise TypeError(
            f"conv2d: input ({x.dtype}) and weight ({weight.dtype}) must have the same dtype"
        )
    k, cg, kh, kw = weight.shape
    c = x.shape[-3]
    if k % groups:
        raise ValueError(
            f"conv2d: out_channels {k} (weight shape {weight.shape}) must be divisible by "
            f"groups={groups}"
        )
    if c != cg * groups:
        raise ShapeError(
            f"conv2d: expected 4-D input (N, C, H, W) (or 3-D (C, H, W)) with C={cg * groups}, "
            f"got shape {x.shape}: the input {x.shape} has {c} channels but the weight "
            f"{weight.shape} with groups={groups} expects {cg * groups}"
        )
    stride_ = int_pair("conv2d", "stride", stride)
    dilation_ = int_pair("conv2d", "dilation", dilation)
    if min(stride_) < 1:
        raise ValueError(f"conv2d: stride must be positive, got stride={stride!r}")
    if min(dilation_) < 1:
        raise ValueError(f"conv2d: dilation must be positive, got dilation={dilation!r}")
    pads = _conv_padding(padding, (kh, kw), dilation_, stride_)
    hp, wp = x.shape[-2] + pads[0] + pads[1], x.shape[-1] + pads[2] + pads[3]
    ekh, ekw = dilation_[0] * (kh - 1) + 1, dilation_[1] * (kw - 1) + 1
    if ekh > hp or ekw > wp:
        raise ShapeError(
            f"conv2d: kernel size ({ekh} x {ekw}) (weight shape {weight.shape}, dilation "
            f"{dilation_}) is larger than the padded input ({hp} x {wp}) (input shape {x.shape}, "
            f"padding {padding!r}): an input smaller than the kernel has no output"
        )
    inputs = [x, weight]
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (k,):
            raise ShapeError(
                f"conv2d: expected bias of shape ({k},) for weight shape {weight.shape}, got "
                f"bias shape {bias.shape}"
            )
        if bias.dtype != x.dtype:
            raise TypeError(f"conv2d: bias dtype {bias.dtype} differs from input dtype {x.dtype}")
        inputs.append(bias)
    save_cols = is_grad_enabled() and weight.requires_grad
    op = Convolution2DFunction(stride_, pads, dilation_, int(groups), save_cols)
    if x.ndim == 3:
        return op.apply(x.unsqueeze(0), *inputs[1:]).squeeze(0)
    return op.apply(*inputs)
