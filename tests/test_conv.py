"""conv2d against PyTorch (float64 oracle), gradcheck, the composed twin, dtypes and errors."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import compare, needs_torch, raises_both, rand, torch

import deltaprop as dp
from deltaprop.ops.conv import (
    BATCH_INNER,
    BATCH_OUTER,
    Convolution2DFunction,
    choose_layout,
    conv2d,
)

if torch is not None:
    import torch.nn.functional as F


def _valid(h, w, k, s, p, d):
    """Whether torch accepts the geometry (dilated kernel fits in the padded input)."""
    kh, kw = k
    ph, pw = (p, p) if isinstance(p, int) else p
    dh, dw = (d, d) if isinstance(d, int) else d
    return dh * (kh - 1) + 1 <= h + 2 * ph and dw * (kw - 1) + 1 <= w + 2 * pw


# ----------------------------------------------------------------------------------------------
# values and gradients against PyTorch
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("c,k", [(1, 1), (3, 4), (2, 5)])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (2, 3), (4, 2)])
@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
@pytest.mark.parametrize("padding", [0, 1, (2, 1)])
@pytest.mark.parametrize("dilation", [1, (1, 2)])
def test_conv2d_matches_torch(n, c, k, kernel, stride, padding, dilation):
    h, w = 6, 7
    assert _valid(h, w, kernel, stride, padding, dilation)
    x = rand(n, c, h, w, seed=1)
    wt = rand(k, c, *kernel, seed=2)
    b = rand(k, seed=3)
    compare(
        lambda x, w, b: conv2d(x, w, b, stride, padding, dilation),
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation),
        [x, wt, b],
    )


@pytest.mark.parametrize("kernel", [(3, 3), (2, 4)])
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("dilation", [2, (3, 1)])
def test_conv2d_no_bias_matches_torch(kernel, stride, dilation):
    x, wt = rand(2, 3, 9, 8, seed=4), rand(4, 3, *kernel, seed=5)
    compare(
        lambda x, w: conv2d(x, w, None, stride, 1, dilation),
        lambda x, w: F.conv2d(x, w, None, stride, 1, dilation),
        [x, wt],
    )


@pytest.mark.parametrize("groups,c,k", [(2, 4, 6), (3, 3, 3), (4, 4, 8)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_groups_match_torch(groups, c, k, bias):
    x, wt, b = rand(2, c, 6, 5, seed=6), rand(k, c // groups, 3, 2, seed=7), rand(k, seed=8)
    compare(
        lambda x, w, b: conv2d(x, w, b if bias else None, 1, 1, 1, groups),
        lambda x, w, b: F.conv2d(x, w, b if bias else None, 1, 1, 1, groups),
        [x, wt, b],
    )


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((4, 2), 1), ((2, 3), 2), ((4, 4), 3)])
def test_conv2d_string_padding_matches_torch(padding, kernel, dilation):
    x, wt, b = rand(2, 2, 11, 10, seed=9), rand(3, 2, *kernel, seed=10), rand(3, seed=11)
    (y,) = compare(
        lambda x, w, b: conv2d(x, w, b, padding=padding, dilation=dilation),
        lambda x, w, b: F.conv2d(x, w, b, padding=padding, dilation=dilation),
        [x, wt, b],
    )
    if padding == "same":
        assert y.shape[2:] == (11, 10)


def test_conv2d_unbatched_input_matches_torch():
    x, wt, b = rand(3, 7, 6, seed=12), rand(2, 3, 3, 3, seed=13), rand(2, seed=14)
    (y,) = compare(
        lambda x, w, b: conv2d(x, w, b, padding=1),
        lambda x, w, b: F.conv2d(x, w, b, padding=1),
        [x, wt, b],
    )
    assert y.shape == (2, 7, 6)


def _torch_conv_asym(x, w, b, stride, padding, dilation, groups):
    """torch conv2d with (top, bottom, left, right) padding, through F.pad."""
    top, bottom, left, right = padding
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride, 0, dilation, groups)


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
@pytest.mark.parametrize(
    "n,c,hw,k,kernel,stride,padding,dilation,groups",
    [
        (64, 1, (28, 28), 6, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),  # LeNet conv1: blocked GEMMs
        (64, 6, (14, 14), 16, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # LeNet conv2
        (33, 2, (23, 19), 3, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # ragged last GEMM block
        (3, 4, (9, 8), 6, (3, 2), (2, 1), (1, 2, 0, 1), (1, 2), 2),  # asymmetric padding, groups
        (2, 3, (7, 7), 4, (2, 3), (1, 3), (0, 1, 2, 0), (2, 1), 1),
    ],
)
def test_conv2d_both_layouts_match_torch(
    layout, n, c, hw, k, kernel, stride, padding, dilation, groups
):
    x, wt, b = rand(n, c, *hw, seed=15), rand(k, c // groups, *kernel, seed=16), rand(k, seed=17)
    op_args = (stride, padding, dilation, groups, True, layout)
    compare(
        lambda x, w, b: Convolution2DFunction(*op_args).apply(x, w, b),
        lambda x, w, b: _torch_conv_asym(x, w, b, stride, padding, dilation, groups),
        [x, wt, b],
        atol=1e-9,
        rtol=1e-9,
    )


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
@pytest.mark.parametrize(
    "grad",
    [
        (True, True, True),
        (False, True, True),
        (True, False, True),
        (True, True, False),
        (False, False, True),
    ],
)
@pytest.mark.parametrize("groups,c,k", [(1, 3, 4), (2, 4, 6)])
def test_conv2d_bias_gradient_each_path(layout, grad, groups, c, k):
    """dL/db from the bias row of the columns (one group, weight needing its gradient: the
    weight-gradient GEMM yields it) and from summing G (groups, or a frozen weight whose
    columns were not saved) agree with torch, whichever inputs need gradients."""
    x, wt, b = rand(5, c, 7, 6, seed=18), rand(k, c // groups, 3, 2, seed=19), rand(k, seed=20)
    op_args = ((1, 2), (1, 0, 2, 1), (1, 1), groups, grad[1], layout)
    compare(
        lambda x, w, b: Convolution2DFunction(*op_args).apply(x, w, b),
        lambda x, w, b: _torch_conv_asym(x, w, b, (1, 2), (1, 0, 2, 1), (1, 1), groups),
        [x, wt, b],
        grad=grad,
        atol=1e-9,
        rtol=1e-9,
    )


@pytest.mark.parametrize(
    "hw,kernel,stride,dilation",
    [
        ((7, 6), (3, 2), (1, 1), (1, 1)),
        ((9, 8), (2, 3), (2, 3), (2, 1)),
        ((5, 11), (5, 1), (1, 4), (1, 3)),
    ],
)
@pytest.mark.parametrize("axis", [1, 2])
def test_conv2d_window_view_is_every_offsets_slice(hw, kernel, stride, dilation, axis):
    """The im2col view: element [..., u, v, i, j, ...] is xp[s i + d u, s j + d v], the same
    as the strided slice of kernel offset (u, v), also for a non-contiguous array."""
    from deltaprop.ops.common import conv_output_size, window_slices

    base = rand(3, *hw, 5, 4, seed=41)  # (A, H, W, B, 4): sliced below to a strided array
    xp = base[..., 1] if axis == 1 else base[..., 1].transpose(0, 3, 1, 2)  # (H, W) at axis
    out_hw = tuple(conv_output_size(*a) for a in zip(hw, kernel, stride, (0, 0), dilation))
    op = Convolution2DFunction(stride, (0, 0, 0, 0), dilation)
    view = op._windows(xp, axis, kernel, out_hw)
    assert not view.flags.writeable
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            si, sj = window_slices(u, v, out_hw, stride, dilation)
            index = (slice(None),) * axis
            np.testing.assert_array_equal(view[index + (u, v)], xp[index + (si, sj)])


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
@pytest.mark.parametrize("padding", [(0, 0, 0, 0), (1, 0, 0, 2)])
def test_conv2d_non_contiguous_input_matches_torch(layout, padding):
    """A transposed (non-contiguous) input: without padding the windows are read from it
    directly."""
    x = rand(6, 3, 8, 7, seed=42).transpose(0, 1, 3, 2)  # (6, 3, 7, 8), not C-contiguous
    wt, b = rand(4, 3, 3, 2, seed=43), rand(4, seed=44)
    op_args = ((2, 1), padding, (1, 2), 1, True, layout)

    def dp_fn(x, w, b):
        return Convolution2DFunction(*op_args).apply(x.transpose(2, 3), w, b)

    def torch_fn(x, w, b):
        return _torch_conv_asym(x.transpose(2, 3), w, b, (2, 1), padding, (1, 2), 1)

    compare(dp_fn, torch_fn, [np.ascontiguousarray(x.transpose(0, 1, 3, 2)), wt, b])


@pytest.mark.parametrize("chunk_samples", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("bias,groups", [(True, 1), (False, 1), (True, 2)])
def test_conv2d_batch_chunks_match_torch(monkeypatch, chunk_samples, bias, groups):
    """NCHW layout: the columns are unrolled a chunk of the batch at a time (forward, and again
    for dL/dW); chunks of 1, 2, 3 and 7 of 7 samples (a ragged last chunk) and one chunk
    give torch's values and gradients."""
    import deltaprop.ops.conv as conv_module

    c, k, kernel = 4, 6, (3, 2)
    rows = c // groups * kernel[0] * kernel[1] + (bias and groups == 1)
    ho, wo = 3, 4  # 6 x 7 input, padding (1, 0, 0, 1), stride (1, 2), dilation (2, 1)
    per_sample = groups * rows * ho * wo * 8
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", per_sample * chunk_samples)
    x, wt, b = rand(7, c, 6, 7, seed=45), rand(k, c // groups, *kernel, seed=46), rand(k, seed=47)
    _compare_layout_with_torch(
        x, wt, b, bias, ((1, 2), (1, 0, 0, 1), (2, 1), groups), BATCH_OUTER, (ho, wo)
    )


def _compare_layout_with_torch(x, wt, b, bias, geometry, layout, out_hw):
    """Convolution2DFunction in ``layout`` with ``geometry`` = (stride, padding as (top, bottom,
    left, right), dilation, groups) against torch: output size, values and gradients."""

    def dp_fn(x, w, b):
        y = Convolution2DFunction(*geometry, True, layout).apply(x, w, *([b] if bias else []))
        assert y.shape[2:] == out_hw
        return y

    compare(
        dp_fn,
        lambda x, w, b: _torch_conv_asym(x, w, b if bias else None, *geometry),
        [x, wt, b],
        grad=(True, True, bias),
        atol=1e-9,
        rtol=1e-9,
    )


def test_conv2d_batch_chunks_gradcheck(monkeypatch):
    import deltaprop.ops.conv as conv_module

    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # one sample per chunk
    x = dp.tensor(rand(3, 2, 5, 4, seed=48), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, 2, 2, 3, seed=49), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, seed=50), dtype=dp.float64, requires_grad=True)
    op_args = ((1, 1), (1, 1, 0, 2), (1, 1), 1, True, BATCH_OUTER)
    assert dp.gradcheck(lambda x, w, b: Convolution2DFunction(*op_args).apply(x, w, b), (x, w, b))


@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 6])
@pytest.mark.parametrize("bias,groups", [(True, 1), (False, 2)])
def test_conv2d_row_chunks_match_torch(monkeypatch, chunk_rows, bias, groups):
    """Batch-innermost layout: the columns are unrolled a few output rows at a time (forward,
    and again for dL/dW), and dL/dx's columns are made and added back as many rows at a time;
    chunks of 1, 2, 4 rows of 6 (a ragged last chunk) and one chunk
    give torch's values and gradients."""
    import deltaprop.ops.conv as conv_module

    n, c, k, kernel = 6, 4, 6, (2, 3)
    ho, wo = 6, 4  # 7 x 8 input, padding (0, 1, 1, 0), stride (1, 2), dilation (2, 1)
    row_bytes = c // groups * kernel[0] * kernel[1] * groups * wo * n * 8
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", row_bytes * chunk_rows)
    monkeypatch.setattr(conv_module, "COL2IM_BYTES", row_bytes * chunk_rows)
    x, wt, b = rand(n, c, 7, 8, seed=51), rand(k, c // groups, *kernel, seed=52), rand(k, seed=53)
    _compare_layout_with_torch(
        x, wt, b, bias, ((1, 2), (0, 1, 1, 0), (2, 1), groups), BATCH_INNER, (ho, wo)
    )


def test_conv2d_row_chunks_gradcheck(monkeypatch):
    import deltaprop.ops.conv as conv_module

    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # one output row per chunk
    monkeypatch.setattr(conv_module, "COL2IM_BYTES", 1)
    x = dp.tensor(rand(4, 2, 5, 4, seed=54), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, 2, 2, 3, seed=55), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, seed=56), dtype=dp.float64, requires_grad=True)
    op_args = ((1, 1), (1, 1, 0, 2), (1, 1), 1, True, BATCH_INNER)
    assert dp.gradcheck(lambda x, w, b: Convolution2DFunction(*op_args).apply(x, w, b), (x, w, b))


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
def test_conv2d_empty_batch_each_layout(layout):
    x = dp.zeros(0, 2, 5, 5, requires_grad=True)
    w = dp.ones(3, 2, 2, 2, requires_grad=True)
    b = dp.ones(3, requires_grad=True)
    y = Convolution2DFunction((1, 1), (1, 0, 0, 1), (1, 1), 1, True, layout).apply(x, w, b)
    assert y.shape == (0, 3, 5, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 5, 5)
    assert w.grad.shape == (3, 2, 2, 2) and not w.grad.data.any()
    assert b.grad.shape == (3,) and not b.grad.data.any()


def test_conv2d_layout_choice():
    assert choose_layout(64, 28) == BATCH_OUTER  # LeNet conv1: rows of 28 are long enough
    assert choose_layout(64, 10) == BATCH_INNER  # LeNet conv2: rows of 10, batch of 64
    assert choose_layout(1, 10) == BATCH_OUTER  # a single sample: nothing to gain inside


@needs_torch
def test_conv2d_empty_batch():
    x = dp.zeros(0, 2, 5, 5, requires_grad=True)
    w = dp.ones(3, 2, 3, 3, requires_grad=True)
    y = conv2d(x, w, dp.zeros(3), padding=1)
    assert y.shape == tuple(
        F.conv2d(torch.zeros(0, 2, 5, 5), torch.ones(3, 2, 3, 3), padding=1).shape
    )
    y.sum().backward()
    assert x.grad.shape == x.shape and np.all(w.grad.data == 0)


# ----------------------------------------------------------------------------------------------
# float32 end to end, first-layer and frozen-weight cases
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("stride,padding", [(1, 2), (2, 0)])
def test_conv2d_float32_outputs_and_gradients(stride, padding):
    rng = np.random.default_rng(20)
    arrays = [
        rng.standard_normal(s).astype(np.float32) for s in [(4, 3, 12, 12), (5, 3, 5, 5), (5,)]
    ]
    x, w, b = (dp.tensor(a, requires_grad=True) for a in arrays)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in arrays)
    y = conv2d(x, w, b, stride, padding)
    ty = F.conv2d(tx, tw, tb, stride, padding)
    assert y.dtype == np.float32
    r = rng.standard_normal(y.shape).astype(np.float32)
    (y * dp.tensor(r)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for d, t in [(x, tx), (w, tw), (b, tb)]:
        assert d.grad.dtype == np.float32
        np.testing.assert_allclose(d.grad.data, t.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv2d_first_layer_input_gets_no_gradient():
    x = dp.tensor(rand(2, 1, 6, 6, seed=21), dtype=dp.float32)  # data: no grad
    w = dp.tensor(rand(3, 1, 3, 3, seed=22), dtype=dp.float32, requires_grad=True)
    y = conv2d(x, w, padding=1)
    assert y.grad_fn.needs_grad == (False, True)
    y.sum().backward()
    assert x.grad is None
    # dW of sum(y) is the sum of the (zero-padded) input under each kernel tap
    xp = np.pad(x.data, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expect = np.array([[xp[:, 0, i : i + 6, j : j + 6].sum() for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(w.grad.data[0, 0], expect, rtol=1e-5)
    assert w.grad.dtype == np.float32


def test_conv2d_frozen_weight_input_gradient():
    x, wt = rand(2, 3, 7, 7, seed=23), rand(4, 3, 3, 3, seed=24)
    compare(lambda x, w: conv2d(x, w, stride=2), lambda x, w: F.conv2d(x, w, stride=2), [x, wt],
            grad=[True, False])  # fmt: skip


def test_conv2d_no_grad_records_nothing():
    w = dp.ones(2, 1, 2, 2, requires_grad=True)
    with dp.no_grad():
        y = conv2d(dp.ones(1, 1, 3, 3), w)
    assert y.grad_fn is None and not y.requires_grad
    np.testing.assert_array_equal(y.data, np.full((1, 2, 2, 2), 4.0, np.float32))


# ----------------------------------------------------------------------------------------------
# gradcheck, the twin, double backward
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(stride=2, padding=1),
        dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
        dict(padding="same", dilation=2),
    ],
)
def test_conv2d_gradcheck(kw):
    x = dp.tensor(rand(2, 2, 5, 6, seed=25), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, 2, 3, 2, seed=26), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, seed=27), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(lambda x, w, b: conv2d(x, w, b, **kw), (x, w, b))


def test_conv2d_gradcheck_groups():
    x = dp.tensor(rand(1, 4, 4, 5, seed=28), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(6, 2, 2, 3, seed=29), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(lambda x, w: conv2d(x, w, padding=1, groups=2), (x, w))


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [
        ((1, 1), (0, 0, 0, 0), (1, 1), 1),
        ((2, 1), (1, 2, 0, 1), (1, 2), 1),  # asymmetric padding, as 'same' uses
        ((1, 2), (1, 1, 1, 1), (2, 1), 2),
    ],
)
def test_conv2d_fused_and_twin_agree(layout, stride, padding, dilation, groups):
    x = dp.tensor(rand(2, 4, 7, 6, seed=30), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(6, 4 // groups, 3, 2, seed=31), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(6, seed=32), dtype=dp.float64, requires_grad=True)
    op = Convolution2DFunction(stride, padding, dilation, groups, True, layout)
    y_fused, y_twin = op.apply(x, w, b), op.twin(x, w, b)
    assert y_fused.shape == y_twin.shape
    r = dp.tensor(rand(*y_fused.shape, seed=33), dtype=dp.float64)
    np.testing.assert_allclose(y_fused.data, y_twin.data, rtol=1e-12, atol=1e-12)
    g_fused = dp.autograd.grad((y_fused * r).sum(), [x, w, b])
    g_twin = dp.autograd.grad((y_twin * r).sum(), [x, w, b])
    for gf, gt in zip(g_fused, g_twin):
        np.testing.assert_allclose(gf.data, gt.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", [BATCH_INNER, BATCH_OUTER])
def test_conv2d_gradcheck_each_layout(layout):
    x = dp.tensor(rand(3, 2, 5, 4, seed=38), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(2, 2, 2, 3, seed=39), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(2, seed=40), dtype=dp.float64, requires_grad=True)
    op_args = ((2, 1), (1, 0, 2, 1), (1, 1), 1, True, layout)
    assert dp.gradcheck(lambda x, w, b: Convolution2DFunction(*op_args).apply(x, w, b), (x, w, b))


@needs_torch
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_conv2d_double_backward_matches_torch(stride, padding):
    """d/d(x, w, b) of |dL/dx|^2 + |dL/dw|^2 for L = sum(r * y^2): through the twin."""
    arrays = [rand(2, 2, 5, 5, seed=34), rand(3, 2, 3, 3, seed=35), rand(3, seed=36)]
    r = rand(2, 3, 5, 5, seed=37)

    x, w, b = (dp.tensor(a, dtype=dp.float64, requires_grad=True) for a in arrays)
    y = conv2d(x, w, b, stride, padding)
    loss = (y * y * dp.tensor(r[:, :, : y.shape[2], : y.shape[3]], dtype=dp.float64)).sum()
    gx, gw = dp.autograd.grad(loss, [x, w], create_graph=True)
    ours = dp.autograd.grad((gx * gx).sum() + (gw * gw).sum(), [x, w, b])

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in arrays)
    ty = F.conv2d(tx, tw, tb, stride, padding)
    tloss = (ty * ty * torch.tensor(r[:, :, : ty.shape[2], : ty.shape[3]])).sum()
    tgx, tgw = torch.autograd.grad(tloss, [tx, tw], create_graph=True)
    theirs = torch.autograd.grad((tgx * tgx).sum() + (tgw * tgw).sum(), [tx, tw, tb])

    for d, t in zip(ours, theirs):
        assert d.dtype == np.float64
        np.testing.assert_allclose(d.data, t.numpy(), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------

X = rand(2, 3, 8, 8)
W = rand(4, 3, 3, 3)


@pytest.mark.parametrize(
    "x_shape,w_shape,kwargs,match",
    [
        ((8, 8), (4, 3, 3, 3), {}, r"3-D .* or 4-D .*got shape \(8, 8\)"),
        ((1, 2, 3, 8, 8), (4, 3, 3, 3), {}, r"got shape \(1, 2, 3, 8, 8\)"),
        ((2, 3, 8, 8), (4, 3, 3), {}, r"4-D weight .*got shape \(4, 3, 3\)"),
        ((2, 3, 8, 8), (4, 2, 3, 3), {}, r"\(2, 3, 8, 8\) has 3 channels .*\(4, 2, 3, 3\)"),
        ((2, 3, 8, 8), (4, 3, 9, 9), {}, r"kernel size \(9 x 9\).*larger than the padded input"),
        ((2, 3, 4, 4), (4, 3, 3, 3), {"dilation": 2}, r"kernel size \(5 x 5\).*dilation"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": 0}, r"stride must be positive.*stride=0"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": (1, -1)}, r"stride must be positive"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": -1}, r"negative padding.*padding=-1"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"dilation": 0}, r"dilation must be positive"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": (1, 2, 3)}, r"stride must be an int or a pair"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": 1.5}, r"stride must be an int or a pair.*1.5"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": "full"}, r"invalid padding string 'full'"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": "same", "stride": 2}, r"'same' .*strided"),
        ((2, 3, 8, 8), (4, 1, 3, 3), {"groups": 3}, r"out_channels 4 .*divisible by groups=3"),
    ],
)
def test_conv2d_errors(x_shape, w_shape, kwargs, match):
    x, w = rand(*x_shape), rand(*w_shape)
    raises_both(
        lambda: conv2d(dp.tensor(x), dp.tensor(w), **kwargs),
        lambda: F.conv2d(torch.tensor(x), torch.tensor(w), **kwargs),
        match=match,
    )


@pytest.mark.parametrize("b_shape", [(3,), (4, 1), ()])
def test_conv2d_bias_shape_error(b_shape):
    b = rand(*b_shape) if b_shape else np.float64(1.0)
    msg = raises_both(
        lambda: conv2d(dp.tensor(X), dp.tensor(W), dp.tensor(b)),
        lambda: F.conv2d(torch.tensor(X), torch.tensor(W), torch.tensor(b)),
        ValueError,
    )
    assert "expected bias of shape (4,)" in msg and f"bias shape {b_shape}" in msg


def test_conv2d_dtype_errors():
    raises_both(
        lambda: conv2d(dp.tensor(X, dtype=dp.float32), dp.tensor(W, dtype=dp.float64)),
        lambda: F.conv2d(torch.tensor(X, dtype=torch.float32), torch.tensor(W)),
        TypeError,
        match=r"input \(float32\) and weight \(float64\) must have the same dtype",
    )
    with pytest.raises(TypeError, match="input must be a floating point tensor, got int64"):
        conv2d(dp.tensor(X.astype(np.int64)), dp.tensor(W))
