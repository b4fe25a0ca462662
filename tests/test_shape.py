"""Shape ops, indexing, cat/stack and matmul: vs PyTorch float64, gradcheck, clear errors."""

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp

SHAPE_OPS = {
    "reshape": (lambda t: t.reshape(4, 6), lambda t: t.reshape(4, 6)),
    "reshape-1": (lambda t: t.reshape(-1, 3), lambda t: t.reshape(-1, 3)),
    "view": (lambda t: t.view(2, 12), lambda t: t.view(2, 12)),
    "flatten": (lambda t: t.flatten(), lambda t: t.flatten()),
    "flatten1": (lambda t: t.flatten(1), lambda t: t.flatten(1)),
    "transpose": (lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1)),
    "T": (lambda t: t[0].T, lambda t: t[0].T),
    "unsqueeze": (lambda t: t.unsqueeze(1), lambda t: t.unsqueeze(1)),
    "unsqueeze-1": (lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    "squeeze": (lambda t: t[:, :1].squeeze(), lambda t: t[:, :1].squeeze()),
    "squeeze1": (lambda t: t[:, :1].squeeze(1), lambda t: t[:, :1].squeeze(1)),
    "expand": (lambda t: t[:, :1].expand(2, 3, 4), lambda t: t[:, :1].expand(2, 3, 4)),
    "expand-new": (lambda t: t[0, 0].expand(3, 4), lambda t: t[0, 0].expand(3, 4)),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_vs_torch(name):
    f, g = SHAPE_OPS[name]
    compare(f, g, [rand(2, 3, 4, seed=1)])


INDICES = {
    "int": lambda: 1,
    "slice": lambda: (slice(None), slice(1, 3)),
    "step": lambda: (slice(None, None, 2), 0),
    "neg": lambda: (-1, slice(-3, None)),
    "none": lambda: (None, 0, Ellipsis),
    "ellipsis": lambda: (Ellipsis, 2),
    "intarray": lambda: np.array([0, 2, 0]),
    "repeated": lambda: (np.array([1, 1, 1, 0]), slice(1, 4)),
    "two_arrays": lambda: (np.array([0, 1, 1]), np.array([2, 2, 0])),
    "mask": lambda: np.array([True, False, True]),
    "mask2d": lambda: rand(3, 4, seed=5) > 0,
}


@needs_torch
@pytest.mark.parametrize("name", list(INDICES))
def test_getitem_vs_torch(name):
    idx = INDICES[name]()

    def t_idx(i):
        if isinstance(i, tuple):
            return tuple(torch.tensor(p) if isinstance(p, np.ndarray) else p for p in i)
        return torch.tensor(i) if isinstance(i, np.ndarray) else i

    compare(lambda t: t[idx], lambda t: t[t_idx(idx)], [rand(3, 4, seed=2)])


# ints mixed with arrays: an int is basic indexing (PyTorch), so it does not separate the arrays
MIXED = {
    "peer": lambda: (1, slice(None), slice(3, 11, 2), np.array([[0, 2], [5, 1]]), slice(0, 2)),
    "int_then_array": lambda: (1, slice(None), np.array([2, 0, 2])),
    "array_then_int": lambda: (np.array([2, 0]), slice(None), 1),
    "int_array_int": lambda: (0, np.array([1, 3]), 2),
    "ellipsis": lambda: (1, Ellipsis, np.array([4, 0])),
    "none": lambda: (None, 1, slice(None), np.array([1, 1])),
    "two_arrays": lambda: (np.array([0, 1]), 2, np.array([3, 4])),
    "mask": lambda: (2, np.array([True, False, True, True]), slice(1, 3)),
}
MIXED_SHAPES = {  # PyTorch's result shapes for an input of shape (3, 4, 12, 6, 5)
    "peer": (4, 4, 2, 2, 2),
    "int_then_array": (4, 3, 6, 5),
    "array_then_int": (2, 4, 6, 5),
    "int_array_int": (2, 6, 5),
    "ellipsis": (4, 12, 6, 2),
    "none": (1, 4, 2, 6, 5),
    "two_arrays": (2, 6, 5),
    "mask": (3, 2, 6, 5),
}


def _torch_index(i):
    return tuple(torch.tensor(p) if isinstance(p, np.ndarray) else p for p in i)


@pytest.mark.parametrize("name", list(MIXED))
def test_getitem_ints_mixed_with_arrays_vs_torch(name):
    idx = MIXED[name]()
    compare(lambda t: t[idx], lambda t: t[_torch_index(idx)], [rand(3, 4, 12, 6, 5, seed=3)])


@pytest.mark.parametrize("name", list(MIXED))
def test_getitem_ints_mixed_with_arrays(name):
    idx = MIXED[name]()
    xa = rand(3, 4, 12, 6, 5, seed=3)
    x = dp.tensor(xa, dtype=dp.float64, requires_grad=True)
    y = x[idx]
    assert y.shape == MIXED_SHAPES[name]
    # the same values as the two-step form: the ints first (basic indexing), then the rest
    ints = tuple(p if isinstance(p, int) else slice(None) for p in idx if p is not None)
    rest = tuple(p for p in idx if not isinstance(p, int))
    if name == "ellipsis":
        ints, rest = (1, Ellipsis), (Ellipsis, idx[2])
    np.testing.assert_array_equal(y.data, xa[ints][rest])
    if name != "peer":  # (its slice needs a long dim 2: the torch comparison checks its grad)
        small = dp.tensor(rand(3, 4, 5, 6, 5, seed=4), dtype=dp.float64, requires_grad=True)
        assert dp.gradcheck(lambda t: (t[idx] * 3).tanh(), (small,))


@needs_torch
@pytest.mark.parametrize("name", ["peer", "int_then_array", "array_then_int", "mask"])
def test_setitem_ints_mixed_with_arrays_vs_torch(name):
    idx = MIXED[name]()
    x, ref = dp.zeros(3, 4, 12, 6, 5, dtype=dp.float64), torch.zeros(3, 4, 12, 6, 5).double()
    value = rand(*MIXED_SHAPES[name], seed=6)
    x[idx] = dp.tensor(value, dtype=dp.float64)
    ref[_torch_index(idx)] = torch.tensor(value)
    np.testing.assert_array_equal(x.data, ref.numpy())


def test_negative_step_slice_matches_numpy():  # torch has no negative steps; numpy's rule
    x = dp.tensor(rand(3, 4, seed=2), dtype=dp.float64, requires_grad=True)
    y = x[::-1, 1::-1]
    np.testing.assert_array_equal(y.data, x.data[::-1, 1::-1])
    assert dp.gradcheck(lambda t: t[::-1, 1::-1] * 2, (x,))


def test_getitem_with_tensor_indices_and_repeats_accumulate():
    x = dp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x[dp.tensor([0, 0, 2, 0])]
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]
    x.grad = None
    x[x > 1.5].sum().backward()  # boolean mask tensor
    assert x.grad.tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack_vs_torch(dim):
    a, b, c = rand(2, 3, seed=1), rand(2, 3, seed=2), rand(2, 3, seed=3)
    compare(lambda *t: dp.stack(t, dim), lambda *t: torch.stack(t, dim), [a, b, c])
    b2 = rand(2, 5, seed=4) if dim != 0 else rand(4, 3, seed=4)
    compare(lambda *t: dp.cat(t, dim), lambda *t: torch.cat(t, dim), [a, b2])


MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (4, 3, 2)),
    ((3,), (2, 3, 4)),
    ((2, 2, 3), (3,)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_vs_torch(sa, sb):
    compare(lambda a, b: a @ b, lambda a, b: a @ b, [rand(*sa, seed=1), rand(*sb, seed=2)])


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES[:6])
def test_gradcheck_matmul(sa, sb):
    a = dp.tensor(rand(*sa, seed=1), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(*sb, seed=2), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(lambda a, b: dp.matmul(a, b).tanh(), (a, b))


def test_gradcheck_shape_and_index():
    x = dp.tensor(rand(3, 4, seed=1), dtype=dp.float64, requires_grad=True)
    y = dp.tensor(rand(3, 4, seed=2), dtype=dp.float64, requires_grad=True)

    def f(x, y):
        z = dp.cat([x.T, y.permute(1, 0)], 1)[[0, 0, 3], 1:]
        return dp.stack([z, z * 2], 0).reshape(2, -1).unsqueeze(0).expand(3, 2, 15).sum(0)

    assert dp.gradcheck(f, (x, y))


def test_shape_errors_name_op_and_shapes():
    x = dp.ones(2, 3)
    with pytest.raises(ValueError, match=r"reshape: shape \(4, 2\) is invalid .*\(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\) are not aligned"):
        x @ x
    with pytest.raises(ValueError, match=r"permute: number of dims"):
        x.permute(0)
    with pytest.raises(ValueError, match=r"expand: the expanded size 4 must match"):
        x.expand(4, 4)
    with pytest.raises(ValueError, match=r"cat: sizes must match except in dimension 0"):
        dp.cat([x, dp.ones(2, 4)])
    with pytest.raises(ValueError, match=r"stack: all tensors must have the same shape"):
        dp.stack([x, dp.ones(3, 2)])
    with pytest.raises(IndexError, match=r"getitem: .*out of bounds.*\(2, 3\)"):
        x[5]
    with pytest.raises(TypeError, match=r"getitem: tensors used as indices must be integer"):
        x[dp.tensor([0.5])]
    with pytest.raises(TypeError, match="expected a list or tuple"):
        dp.cat(x)


def test_views_share_nothing_unexpected():
    """reshape/transpose backward give gradients of the input's shape and layout."""
    x = dp.randn(2, 3, requires_grad=True)
    (x.T.reshape(6) * dp.arange(6).float()).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.arange(6).reshape(3, 2).T)
