"""Tensor construction, dtypes, factories, conversions, repr and argument errors."""

import numpy as np
import pytest

import deltaprop as dp


def test_default_dtypes():
    assert dp.tensor([1.0, 2.0]).dtype == dp.float32
    assert dp.tensor(np.array([1.0])).dtype == dp.float64  # float64 arrays stay float64
    assert dp.tensor([1, 2]).dtype == dp.int64
    assert dp.tensor([True]).dtype == np.bool_
    assert dp.tensor([1, 2], dtype=dp.float32).dtype == np.float32
    assert dp.Tensor([1.0]).dtype == dp.float32


def test_tensor_copies_from_numpy_shares():
    a = np.zeros(3, dtype=np.float32)
    t, s = dp.tensor(a), dp.from_numpy(a)
    a[0] = 1
    assert t.tolist()[0] == 0.0 and s.tolist()[0] == 1.0
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray"):
        dp.from_numpy([1, 2])


def test_unsupported_dtype_is_rejected():
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        dp.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="could not convert"):
        dp.tensor(["a", object()])


def test_factories():
    assert dp.zeros(2, 3).shape == (2, 3) and dp.zeros((2, 3)).dtype == dp.float32
    assert dp.ones(4).tolist() == [1.0] * 4
    assert dp.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert dp.arange(5).dtype == dp.int64 and dp.arange(0, 1, 0.25).dtype == dp.float32
    assert dp.eye(3).data.trace() == 3
    x = dp.randn(3, 2)
    assert dp.zeros_like(x).shape == (3, 2) and dp.ones_like(x).dtype == dp.float32
    assert dp.rand(100).data.min() >= 0 and dp.rand(100).data.max() < 1
    assert dp.zeros(2, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="size must be non-negative ints"):
        dp.zeros(-1)


def test_manual_seed_reproducible():
    dp.manual_seed(123)
    a = dp.randn(5)
    dp.manual_seed(123)
    b = dp.randn(5)
    assert (a == b).all().item()
    with pytest.raises(TypeError, match="seed must be an int"):
        dp.manual_seed("x")


def test_attributes_and_conversions():
    x = dp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size() == (2, 2) and x.size(1) == 2
    assert x.numel() == 4 and len(x) == 2 and x.T.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert np.asarray(x.detach()).shape == (2, 2)
    assert np.array(x, dtype=np.float64).dtype == np.float64
    assert x[0, 1].item() == 2.0 and float(x[1, 1]) == 4.0
    with pytest.raises(RuntimeError, match="detach\\(\\).numpy\\(\\)"):
        x.numpy()
    assert x.detach().numpy() is x.data
    with pytest.raises(ValueError, match="only one-element tensors"):
        x.item()
    assert x.double().dtype == dp.float64 and x.long().dtype == dp.int64
    assert x.to(dp.float64).requires_grad


def test_cast_is_differentiable():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    y = (x.double() * 3).float().sum()
    y.backward()
    assert x.grad.dtype == dp.float32 and x.grad.tolist() == [3.0, 3.0]


def test_repr_like_pytorch():
    assert repr(dp.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(dp.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    x = dp.tensor([1.0], requires_grad=True)
    assert repr(x * 2) == "tensor([2.], grad_fn=<MulBackward>)"
    assert repr(dp.tensor([1], dtype=dp.int64)) == "tensor([1])"
    assert "dtype=float64" in repr(dp.tensor(np.array([1.0])))
    assert repr(dp.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"


def test_arithmetic_with_numpy_and_scalars_returns_tensors():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    a = np.array([2.0, 3.0], dtype=np.float32)
    for y in (a * x, x * a, a + x, 2 - x, 1 / x, 2**x, a @ x):
        assert isinstance(y, dp.Tensor) and y.requires_grad


def test_hashable_by_identity():
    a, b = dp.ones(2), dp.ones(2)
    assert len({a, b}) == 2 and {a: 1}[a] == 1


def test_bool_of_multi_element_is_ambiguous():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dp.ones(2))
    assert bool(dp.ones(1))
