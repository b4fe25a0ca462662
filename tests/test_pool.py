"""max_pool2d / avg_pool2d against PyTorch (float64 oracle), ties, padding, twins, errors."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import compare, needs_torch, raises_both, rand, torch

import deltaprop as dp
from deltaprop.ops.pool import (
    AvgPool2DFunction,
    MaxPool2DFunction,
    PoolWindow,
    avg_pool2d,
    max_pool2d,
)

if torch is not None:
    import torch.nn.functional as F

# inputs: generic, all negative (padding must act as -inf), constant and integer-valued (ties)
INPUTS = {
    "random": lambda shape: rand(*shape, seed=1),
    "negative": lambda shape: rand(*shape, seed=2, low=-5.0, high=-1.0),
    "constant": lambda shape: np.full(shape, 0.5),
    "integers": lambda shape: np.round(rand(*shape, seed=3, low=-1.5, high=1.5)),
}

GEOMETRIES = [
    dict(kernel_size=2),
    dict(kernel_size=2, stride=1),  # overlapping windows
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3)),  # non-square
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),
    dict(kernel_size=(1, 3), stride=(2, 1), padding=(0, 1)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, ceil_mode=True),  # the last windows hang over the input's end
    dict(kernel_size=(2, 4), stride=(3, 1), padding=(1, 2), ceil_mode=True),
    dict(kernel_size=4, stride=3, padding=2),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("kind", list(INPUTS))
def test_max_pool2d_matches_torch(geometry, kind):
    x = INPUTS[kind]((2, 3, 7, 9))
    compare(lambda x: max_pool2d(x, **geometry), lambda x: F.max_pool2d(x, **geometry), [x],
            smooth=kind not in ("integers", "constant"))  # fmt: skip


@needs_torch
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("kind", ["random", "constant"])
def test_max_pool2d_indices_match_torch(geometry, kind):
    x = INPUTS[kind]((2, 3, 7, 9))
    _, idx = max_pool2d(dp.tensor(x, dtype=dp.float64), **geometry, return_indices=True)
    _, tidx = F.max_pool2d(torch.tensor(x), **geometry, return_indices=True)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.data, tidx.numpy())


@pytest.mark.parametrize(
    "geometry",
    [
        dict(kernel_size=3, stride=2, padding=1, dilation=2),
        dict(kernel_size=(2, 3), stride=1, padding=1, dilation=(2, 1), ceil_mode=True),
        dict(kernel_size=2, dilation=3),  # disjoint windows with gaps between taps
    ],
)
@pytest.mark.parametrize("kind", ["random", "negative", "integers"])
def test_max_pool2d_dilation_matches_torch(geometry, kind):
    x = INPUTS[kind]((2, 2, 9, 8))
    compare(lambda x: max_pool2d(x, **geometry), lambda x: F.max_pool2d(x, **geometry), [x],
            smooth=kind not in ("integers", "constant"))  # fmt: skip


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_pool2d_matches_torch(geometry, count_include_pad, divisor_override):
    x = rand(2, 3, 7, 9, seed=4)
    kw = dict(geometry, count_include_pad=count_include_pad, divisor_override=divisor_override)
    compare(lambda x: avg_pool2d(x, **kw), lambda x: F.avg_pool2d(x, **kw), [x])


@needs_torch
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pool_unbatched_input_matches_torch(op):
    dp_fn, th_fn = (max_pool2d, F.max_pool2d) if op == "max" else (avg_pool2d, F.avg_pool2d)
    (y,) = compare(lambda x: dp_fn(x, 3, 2, 1), lambda x: th_fn(x, 3, 2, 1), [rand(3, 8, 7)])
    assert y.shape == (3, 4, 4)
    _, idx = max_pool2d(dp.tensor(rand(3, 8, 7)), 2, return_indices=True)
    assert idx.shape == (3, 4, 3)


@needs_torch
@pytest.mark.parametrize(
    "op,dtype", [("max", np.int64), ("max", np.int32), ("max", np.uint8), ("avg", np.int64)]
)
def test_pool_integer_inputs_match_torch(op, dtype):
    low = 0 if dtype == np.uint8 else -50  # avg of ints truncates toward zero
    x = np.round(rand(2, 2, 6, 7, seed=5, low=low, high=50)).astype(dtype)
    dp_fn, th_fn = (max_pool2d, F.max_pool2d) if op == "max" else (avg_pool2d, F.avg_pool2d)
    y = dp_fn(dp.tensor(x), 3, 2, 1)
    ty = th_fn(torch.tensor(x), 3, 2, 1)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, ty.numpy())


# ----------------------------------------------------------------------------------------------
# regression tests for peers' bugs, and the tie rule
# ----------------------------------------------------------------------------------------------


def test_max_pool2d_padding_is_minus_infinity():
    # DeZero padded with 0: for an all-negative input the maximum then came from the padding
    x = dp.tensor(-np.arange(1.0, 17.0).reshape(1, 1, 4, 4), requires_grad=True)
    y = max_pool2d(x, 3, stride=2, padding=1)
    np.testing.assert_array_equal(y.data[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])  # never 0
    y.sum().backward()
    assert x.grad.data.sum() == 4.0 and x.grad.data[0, 0, 0, 0] == 1.0


def test_avg_pool2d_non_square_kernel_backward():
    # DeZero swapped kernel height and width in the backward pass
    x = dp.tensor(np.arange(24.0).reshape(1, 1, 4, 6), dtype=dp.float64, requires_grad=True)
    y = avg_pool2d(x, (2, 3))
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(y.data[0, 0], [[4.0, 7.0], [16.0, 19.0]])
    y.backward(dp.tensor(np.array([[[[6.0, 12.0], [18.0, 24.0]]]])))
    expect = np.kron(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 3)))
    np.testing.assert_allclose(x.grad.data[0, 0], expect)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (2, 1), (3, 1), ((2, 3), (1, 2))])
def test_max_pool2d_ties_go_to_the_first_element_of_each_window(kernel, stride):
    x = dp.full((1, 1, 5, 6), 2.0, requires_grad=True)
    y = max_pool2d(x, kernel, stride)
    y.sum().backward()
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    expect = np.zeros((5, 6), np.float32)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            expect[i * sh, j * sw] += 1.0  # the window's top-left element
    np.testing.assert_array_equal(x.grad.data[0, 0], expect)
    assert x.grad.data.sum() == y.data.size  # exactly one element per window


@needs_torch
@pytest.mark.parametrize("geometry", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 1}])
def test_max_pool2d_nan_is_the_maximum_as_in_torch(geometry):
    x = rand(1, 2, 6, 6, seed=11)
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = x[0, 1, 4, 5] = np.nan
    (y,) = compare(lambda x: max_pool2d(x, **geometry), lambda x: F.max_pool2d(x, **geometry), [x])
    assert np.isnan(y.data).any()
    _, idx = max_pool2d(dp.tensor(x), **geometry, return_indices=True)
    _, tidx = F.max_pool2d(torch.tensor(x), **geometry, return_indices=True)
    np.testing.assert_array_equal(idx.data, tidx.numpy())


# ----------------------------------------------------------------------------------------------
# float32, LeNet-sized fast path, gradcheck, twins, double backward
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize(
    "geometry", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)]
)
def test_pool_float32_outputs_and_gradients(op, geometry):
    dp_fn, th_fn = (max_pool2d, F.max_pool2d) if op == "max" else (avg_pool2d, F.avg_pool2d)
    rng = np.random.default_rng(6)
    a = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)
    x, tx = dp.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = dp_fn(x, **geometry), th_fn(tx, **geometry)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    r = rng.standard_normal(y.shape).astype(np.float32)
    (y * dp.tensor(r)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "geometry",
    [
        dict(kernel_size=2),
        dict(kernel_size=(3, 2), stride=1, padding=1),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    ],
)
def test_pool_gradcheck(geometry):
    # distinct values more than 2 eps apart: no max switches under the finite differences
    x = dp.tensor(np.random.default_rng(7).permutation(60).reshape(1, 2, 5, 6) * 0.1,
                  dtype=dp.float64, requires_grad=True)  # fmt: skip
    assert dp.gradcheck(lambda x: max_pool2d(x, **geometry), (x,))
    assert dp.gradcheck(lambda x: avg_pool2d(x, **geometry), (x,))
    assert dp.gradcheck(lambda x: avg_pool2d(x, **geometry, count_include_pad=False), (x,))


def _fused_and_twin(op, x, r):
    out = []
    for y in (op.apply(x), op.twin(x)):
        (g,) = dp.autograd.grad((y * r).sum(), [x])
        out.append((y.data, g.data))
    return out


@pytest.mark.parametrize("kind", ["random", "constant", "integers"])
@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,out_hw",
    [
        ((2, 2), (2, 2), (0, 0), (1, 1), (3, 4)),
        ((3, 2), (1, 2), (1, 1), (1, 1), (7, 5)),
        ((3, 3), (2, 2), (1, 0), (2, 1), (3, 3)),
    ],
)
def test_pool_fused_and_twin_agree(kind, kernel, stride, padding, dilation, out_hw):
    x = dp.tensor(INPUTS[kind]((2, 2, 7, 8)), dtype=dp.float64, requires_grad=True)
    r = dp.tensor(rand(2, 2, *out_hw, seed=8), dtype=dp.float64)
    window = PoolWindow(kernel, stride, padding, dilation, out_hw)
    ops = [MaxPool2DFunction(window)]
    if dilation == (1, 1):
        ops += [AvgPool2DFunction(window, cip, None) for cip in (True, False)]
    for op in ops:
        (fy, fg), (ty, tg) = _fused_and_twin(op, x, r)
        assert fy.shape == ty.shape == (2, 2, *out_hw)
        np.testing.assert_allclose(fy, ty, rtol=1e-12)
        np.testing.assert_allclose(fg, tg, rtol=1e-12, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pool_double_backward_matches_torch(op):
    """d/dx of |dL/dx|^2 for L = sum(r * pool(x)^3): differentiates the twin."""
    dp_fn, th_fn = (max_pool2d, F.max_pool2d) if op == "max" else (avg_pool2d, F.avg_pool2d)
    a, r = rand(2, 2, 6, 6, seed=9), rand(2, 2, 3, 3, seed=10)
    x, tx = dp.tensor(a, dtype=dp.float64, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = dp_fn(x, 3, 2, 1)
    (gx,) = dp.autograd.grad(
        (y * y * y * dp.tensor(r, dtype=dp.float64)).sum(), x, create_graph=True
    )
    (ggx,) = dp.autograd.grad((gx * gx).sum(), x)
    ty = th_fn(tx, 3, 2, 1)
    (tgx,) = torch.autograd.grad((ty * ty * ty * torch.tensor(r)).sum(), tx, create_graph=True)
    (tggx,) = torch.autograd.grad((tgx * tgx).sum(), tx)
    np.testing.assert_allclose(gx.data, tgx.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(ggx.data, tggx.numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(ggx.data).sum() > 0


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize(
    "shape,args,kwargs,match",
    [
        ((8, 8), (2,), {}, r"3-D .* or 4-D .*got shape \(8, 8\)"),
        ((1, 1, 2, 8, 8), (2,), {}, r"got shape \(1, 1, 2, 8, 8\)"),
        ((2, 3, 8, 8), (3,), {"padding": 2}, r"at most half of the kernel.*\(2, 2\).*\(3, 3\)"),
        ((2, 3, 8, 8), ((2, 4),), {"padding": (2, 1)}, r"at most half of the kernel"),
        ((2, 3, 8, 8), (9,), {}, r"\(2, 3, 8, 8\) is too small for kernel_size=\(9, 9\)"),
        ((2, 3, 8, 3), ((2, 4),), {}, r"too small .*output would be 4 x 0"),
        ((2, 3, 8, 8), (2,), {"stride": 0}, r"stride must be positive, got 0"),
        ((2, 3, 8, 8), (0,), {}, r"kernel_size must be positive"),
        ((2, 3, 8, 8), (2,), {"padding": -1}, r"padding must be non-negative"),
        ((2, 3, 8, 8), ((2, 2, 2),), {}, r"kernel_size must be an int or a pair"),
        ((2, 3, 8, 8), (2.5,), {}, r"kernel_size must be an int or a pair"),
    ],
)
def test_pool_errors(op, shape, args, kwargs, match):
    dp_fn, th_fn = (max_pool2d, F.max_pool2d) if op == "max" else (avg_pool2d, F.avg_pool2d)
    x = rand(*shape)
    raises_both(
        lambda: dp_fn(dp.tensor(x), *args, **kwargs),
        lambda: th_fn(torch.tensor(x), *args, **kwargs),
        match=match,
    )


def test_max_pool2d_dilation_error():
    raises_both(
        lambda: max_pool2d(dp.tensor(rand(1, 1, 8, 8)), 2, dilation=0),
        lambda: F.max_pool2d(torch.tensor(rand(1, 1, 8, 8)), 2, dilation=0),
        match="dilation must be positive",
    )


def test_pool_dtype_errors():
    with pytest.raises(TypeError, match="avg_pool2d: expected a float or int64 tensor, got int32"):
        avg_pool2d(dp.tensor(np.ones((1, 1, 4, 4), np.int32)), 2)
    with pytest.raises(TypeError, match="max_pool2d: expected a float or integer tensor, got bool"):
        max_pool2d(dp.tensor(np.ones((1, 1, 4, 4), bool)), 2)
    with pytest.raises(ValueError, match="divisor must be a non-zero int"):
        avg_pool2d(dp.ones(1, 1, 4, 4), 2, divisor_override=0)


# ----------------------------------------------------------------------------------------------
# the 2x2 / stride 2 fast path (MaxPool2DFunction._forward_2x2) against the general offset loop
# ----------------------------------------------------------------------------------------------


def _fast_and_general(x: np.ndarray, **geometry):
    """(output, argmax, dL/dx) of max_pool2d with the fast path, then with it switched off."""
    results = []
    for fast in (True, False):
        xt = dp.from_numpy(x.copy()).requires_grad_()
        y, idx = max_pool2d(xt, **geometry, return_indices=True)
        op = y.grad_fn
        assert op._is_2x2(x.shape) is True  # the geometry takes the fast path...
        if not fast:  # ...unless told otherwise: redo forward and backward the general way
            op._is_2x2 = lambda shape: False
            xt = dp.from_numpy(x.copy()).requires_grad_()
            y = op.apply(xt)
            idx = dp.from_numpy(op.indices(x.shape[2], x.shape[3]))
        g = np.arange(y.numel(), dtype=x.dtype).reshape(y.shape) + 1
        y.backward(g)
        results.append((y.detach().numpy(), np.asarray(idx.numpy()), xt.grad.numpy()))
    return results


FAST_INPUTS = {
    "random": lambda s: np.random.default_rng(0).standard_normal(s),
    "relu_ties": lambda s: np.maximum(np.round(np.random.default_rng(1).standard_normal(s)), 0),
    "constant": lambda s: np.full(s, -2.0),
    "infinities": lambda s: np.random.default_rng(2).choice([-np.inf, np.inf, 0.0, 1.0], s),
    "nan": lambda s: np.where(np.random.default_rng(3).random(s) < 0.1, np.nan, 1.0),
}


@pytest.mark.parametrize("kind", FAST_INPUTS)
@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (1, 2, 7, 9), (3, 1, 2, 2), (2, 2, 5, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_2x2_fast_path_equals_general_path(kind, shape, dtype):
    """Values, indices and gradients identical (bit for bit, NaN included), odd sizes too."""
    x = FAST_INPUTS[kind](shape).astype(dtype)
    (y, idx, gx), (y0, idx0, gx0) = _fast_and_general(x, kernel_size=2)
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(idx, idx0)
    np.testing.assert_array_equal(gx, gx0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_max_pool2d_2x2_fast_path_integers(dtype):
    x = np.random.default_rng(4).integers(0, 4, (2, 3, 6, 6)).astype(dtype)
    op = MaxPool2DFunction(PoolWindow((2, 2), (2, 2), (0, 0), (1, 1), (3, 3)))
    y, arg = op._forward_2x2(x)
    y0, arg0 = op._forward_offsets(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(arg, arg0)


@needs_torch
@pytest.mark.parametrize("kind", ["random", "relu_ties", "infinities"])
def test_max_pool2d_2x2_fast_path_matches_torch_float32(kind):
    x = FAST_INPUTS[kind]((4, 3, 10, 12)).astype(np.float32)
    g = np.random.default_rng(5).standard_normal((4, 3, 5, 6)).astype(np.float32)
    xt = dp.from_numpy(x.copy()).requires_grad_()
    y = max_pool2d(xt, 2)
    y.backward(g)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = F.max_pool2d(tx, 2)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(xt.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize(
    "geometry, shape, fast",
    [
        (dict(kernel_size=2), (1, 1, 4, 4), True),
        (dict(kernel_size=2), (1, 1, 5, 3), True),  # floor mode drops the last row / column
        (dict(kernel_size=2, ceil_mode=True), (1, 1, 5, 4), False),  # a window hangs over
        (dict(kernel_size=2, stride=1), (1, 1, 4, 4), False),
        (dict(kernel_size=2, padding=1), (1, 1, 4, 4), False),
        (dict(kernel_size=2, dilation=2), (1, 1, 6, 6), False),
        (dict(kernel_size=(2, 3)), (1, 1, 6, 6), False),
    ],
)
def test_max_pool2d_fast_path_is_taken_only_where_it_applies(geometry, shape, fast):
    x = dp.zeros(*shape, requires_grad=True)
    y = max_pool2d(x, **geometry)
    assert y.grad_fn._is_2x2(shape) is fast
