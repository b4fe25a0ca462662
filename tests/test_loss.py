"""Losses of nn.functional against PyTorch float64: every reduction and option, dtypes, extreme
inputs, errors, the fused ops against their composed twins, and double backward."""

import warnings

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp
from deltaprop.errors import DTypeError, InvalidArgumentError, ShapeError
from deltaprop.nn import functional as F

TF = torch.nn.functional if torch is not None else None
REDUCTIONS = ["mean", "sum", "none"]


def labels(*shape, c, seed=0):
    return np.random.default_rng(seed).integers(0, c, size=shape)


def probs(*shape, seed=0):
    p = rand(*shape, seed=seed, low=0.0, high=1.0)
    return p / p.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# mse_loss
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (4, 3), (2, 3, 4)])
def test_mse_matches_torch(reduction, shape):
    compare(lambda x, t: F.mse_loss(x, t, reduction=reduction),
            lambda x, t: TF.mse_loss(x, t, reduction=reduction),
            [rand(*shape, seed=1), rand(*shape, seed=2)])  # fmt: skip


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_shape_mismatch_warns_and_broadcasts_like_torch(reduction):
    x, t = rand(5, 1, seed=1), rand(5, seed=2)
    with pytest.warns(UserWarning, match=r"Using a target size \(\(5,\)\) that is different to "
                                         r"the input size \(\(5, 1\)\)"):  # fmt: skip
        y = F.mse_loss(dp.tensor(x), dp.tensor(t), reduction=reduction)
    assert y.shape == ((5, 5) if reduction == "none" else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, t])  # fmt: skip


def test_mse_same_shape_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(dp.zeros(3, 1), dp.ones(3, 1))


def test_mse_non_broadcastable_raises():
    with pytest.warns(UserWarning), pytest.raises(ShapeError, match=r"\(3, 2\).*\(4,\)"):
        F.mse_loss(dp.zeros(3, 2), dp.zeros(4))


def test_mse_float32_and_target_cast():
    x = dp.tensor(rand(4, 3).astype(np.float32), requires_grad=True)
    t = dp.tensor(rand(4, 3, seed=2))  # float64 target: cast to the input's dtype
    y = F.mse_loss(x, t)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# binary_cross_entropy
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "full", "row"])
def test_bce_matches_torch(reduction, weight):
    x = rand(4, 3, seed=1, low=0.02, high=0.98)
    t = rand(4, 3, seed=2, low=0.0, high=1.0)
    arrays, grad = [x, t], [True, True]
    if weight:
        arrays.append(rand(*((4, 3) if weight == "full" else (3,)), seed=3, low=0.1, high=2))
        grad.append(False)  # torch: weight is not differentiable

    def call(fn):
        return lambda a, b, *w: fn(a, b, *w, reduction=reduction)

    compare(call(F.binary_cross_entropy), call(TF.binary_cross_entropy), arrays, grad=grad)


def test_bce_clamps_log_at_minus_100_like_torch():
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    compare(
        lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
        lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"),
        [x, t],
        grad=[False, True],
        smooth=False,
    )  # the clamp at -100
    y = F.binary_cross_entropy(dp.tensor(x), dp.tensor(t), reduction="none")
    np.testing.assert_allclose(y.data[:2], 100.0)


def test_bce_gradient_at_saturated_inputs_is_finite_like_torch():
    x = np.array([0.0, 1.0, 1e-13, 0.3])
    t = np.array([1.0, 0.0, 1.0, 0.3])
    compare(
        lambda a, b: F.binary_cross_entropy(a, b),
        lambda a, b: TF.binary_cross_entropy(a, b),
        [x, t],
        grad=[True, False],
        rtol=1e-6,
        smooth=False,
    )  # x at 0 and 1


def test_bce_errors():
    with pytest.raises(ShapeError, match=r"target size \(\(3,\)\).*input size \(\(3, 1\)\)"):
        F.binary_cross_entropy(dp.full((3, 1), 0.5), dp.zeros(3))
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(dp.tensor([0.5, 1.5]), dp.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        F.binary_cross_entropy(dp.tensor([0.5, 0.5]), dp.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.binary_cross_entropy(dp.tensor([0.5]), dp.tensor([1.0]), reduction="avg")


# ----------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_bce_with_logits_matches_torch(reduction, weight, pos_weight):
    x, t = rand(5, 3, seed=1, low=-6, high=6), rand(5, 3, seed=2, low=0, high=1)
    w = rand(5, 3, seed=3, low=0.1, high=2) if weight else None
    pw = rand(3, seed=4, low=0.2, high=3) if pos_weight else None

    def dp_fn(a, b):
        return F.binary_cross_entropy_with_logits(
            a, b, weight=None if w is None else dp.tensor(w), reduction=reduction,
            pos_weight=None if pw is None else dp.tensor(pw))  # fmt: skip

    def th_fn(a, b):
        return TF.binary_cross_entropy_with_logits(
            a, b, weight=None if w is None else torch.tensor(w), reduction=reduction,
            pos_weight=None if pw is None else torch.tensor(pw))  # fmt: skip

    compare(dp_fn, th_fn, [x, t])


@needs_torch
@pytest.mark.parametrize("pos_weight", [None, 2.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_extreme_logits(pos_weight, dtype):
    x = np.array([1000.0, -1000.0, 1000.0, -1000.0, 80.0, -80.0, 0.0])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0])
    pw = None if pos_weight is None else np.full(7, pos_weight)
    xd = dp.tensor(x.astype(dtype), requires_grad=True)
    y = F.binary_cross_entropy_with_logits(
        xd, dp.tensor(t.astype(dtype)), reduction="none",
        pos_weight=None if pw is None else dp.tensor(pw.astype(dtype)))  # fmt: skip
    y.sum().backward()
    assert y.dtype == xd.grad.dtype == dtype
    assert np.isfinite(y.data).all() and np.isfinite(xd.grad.data).all()
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    yt = TF.binary_cross_entropy_with_logits(
        xt, torch.tensor(t.astype(dtype)), reduction="none",
        pos_weight=None if pw is None else torch.tensor(pw.astype(dtype)))  # fmt: skip
    yt.sum().backward()
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_bce_with_logits_errors():
    with pytest.raises(ShapeError, match=r"target size \(3,\) must be the same as input size"):
        F.binary_cross_entropy_with_logits(dp.zeros(3, 1), dp.zeros(3))
    with pytest.raises(ShapeError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(dp.zeros(3, 2), dp.zeros(3, 2), pos_weight=dp.ones(3))


# ----------------------------------------------------------------------------------------------
# cross_entropy with class-index targets
# ----------------------------------------------------------------------------------------------

CE_SHAPES = [((6, 4), (6,)), ((3, 4, 5), (3, 5)), ((2, 3, 4, 2), (2, 4, 2)), ((5,), ())]


def _ce_args(logit_shape, target_shape, c, ignore, seed=0):
    x = rand(*logit_shape, seed=seed, low=-3, high=3)
    t = labels(*target_shape, c=c, seed=seed + 1)
    if ignore is not None and t.size > 1:
        t.reshape(-1)[::3] = ignore  # every third sample ignored
    return x, t


@pytest.mark.parametrize("shapes", CE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, -100, 1])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_matches_torch(shapes, reduction, weighted, ignore_index, label_smoothing):
    logit_shape, target_shape = shapes
    c = logit_shape[1] if len(logit_shape) > 1 else logit_shape[0]
    x, t = _ce_args(logit_shape, target_shape, c, ignore_index)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    arrays, grad = [x, t], [True, False]
    if weighted:
        arrays.append(rand(c, seed=7, low=0.2, high=2.0))
        grad.append(False)
    compare(lambda a, b, *w: F.cross_entropy(a, b, *w, **kw),
            lambda a, b, *w: TF.cross_entropy(a, b, *w, **kw), arrays, grad=grad)  # fmt: skip


@needs_torch
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_all_ignored_is_nan_like_torch(weighted):
    x, t = rand(3, 4), np.full(3, -100)
    w = dp.ones(4, dtype=dp.float64) if weighted else None
    y = F.cross_entropy(dp.tensor(x), dp.tensor(t), weight=w)
    wt = torch.ones(4, dtype=torch.float64) if weighted else None
    yt = TF.cross_entropy(torch.tensor(x), torch.tensor(t), weight=wt)
    assert np.isnan(y.item()) and np.isnan(yt.item())
    s = F.cross_entropy(dp.tensor(x), dp.tensor(t), reduction="sum")
    assert s.item() == 0.0


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_extreme_logits(dtype, label_smoothing):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0], [0.0, 0.0, -1000.0]])
    t = np.array([1, 2, 0])
    xd = dp.tensor(x.astype(dtype), requires_grad=True)
    y = F.cross_entropy(xd, dp.tensor(t), label_smoothing=label_smoothing)
    y.backward()
    assert y.dtype == xd.grad.dtype == dtype
    assert np.isfinite(y.item()) and np.isfinite(xd.grad.data).all()
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    yt = TF.cross_entropy(xt, torch.tensor(t), label_smoothing=label_smoothing)
    yt.backward()
    np.testing.assert_allclose(y.item(), yt.item(), rtol=1e-6)
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = rand(5, 3)
    t = np.array([0, 2, 1, 1, 0])
    xd = dp.tensor(x, requires_grad=True)
    F.cross_entropy(xd, dp.tensor(t), reduction="sum").backward()
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(xd.grad.data, p - np.eye(3)[t], rtol=1e-12)


@pytest.mark.parametrize("target_dtype", [np.int64, np.int32, np.uint8])
def test_cross_entropy_float32_end_to_end(target_dtype):
    x = dp.tensor(rand(8, 5).astype(np.float32), requires_grad=True)
    t = dp.tensor(labels(8, c=5).astype(target_dtype))
    w = dp.tensor(rand(5, seed=3, low=0.5, high=1.5).astype(np.float32))
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}, {"reduction": "none"}):
        y = F.cross_entropy(x, t, **kw)
        assert y.dtype == np.float32
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32


def test_cross_entropy_equals_nll_of_log_softmax():
    x, t = rand(4, 6, 3), labels(4, 3, c=6)
    a = F.cross_entropy(dp.tensor(x), dp.tensor(t), reduction="none")
    b = F.nll_loss(F.log_softmax(dp.tensor(x), 1), dp.tensor(t), reduction="none")
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# cross_entropy with class-probability targets
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (2, 3, 2, 2), (4,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets(shape, reduction, weighted, label_smoothing):
    x = rand(*shape, seed=1, low=-3, high=3)
    t = probs(*shape, seed=2) if len(shape) > 1 else probs(1, shape[0], seed=2)[0]
    c = shape[1] if len(shape) > 1 else shape[0]
    arrays, grad = [x, t], [True, True]  # the target gets a gradient too, as in torch
    if weighted:
        arrays.append(rand(c, seed=3, low=0.2, high=2.0))
        grad.append(False)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    compare(lambda a, b, *w: F.cross_entropy(a, b, *w, **kw),
            lambda a, b, *w: TF.cross_entropy(a, b, *w, **kw), arrays, grad=grad)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# nll_loss
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shapes", CE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2])
def test_nll_loss_matches_torch(shapes, reduction, weighted, ignore_index):
    logit_shape, target_shape = shapes
    c = logit_shape[1] if len(logit_shape) > 1 else logit_shape[0]
    x, t = _ce_args(logit_shape, target_shape, c, ignore_index)
    kw = {"reduction": reduction}
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    arrays, grad = [x, t], [True, False]
    if weighted:
        arrays.append(rand(c, seed=7, low=0.2, high=2.0))
        grad.append(False)
    compare(lambda a, b, *w: F.nll_loss(a, b, *w, **kw),
            lambda a, b, *w: TF.nll_loss(a, b, *w, **kw), arrays, grad=grad)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_index_target_errors(fn):
    x = dp.zeros(3, 4)
    with pytest.raises(IndexError, match=r"target 4 is out of bounds.*4 classes"):
        fn(x, dp.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match=r"target -1 is out of bounds.*\[0, 3\]"):
        fn(x, dp.tensor([0, -1, 1]))
    with pytest.raises(ShapeError, match=r"\(3,\).*\(3, 4\).*\(2,\)"):
        fn(x, dp.tensor([0, 1]))
    with pytest.raises(ShapeError, match=r"\(2, 4\).*\(2, 3, 4\).*\(2, 5\)"):
        fn(dp.zeros(2, 3, 4), dp.tensor([[0, 1, 2, 0, 1]] * 2))
    with pytest.raises(DTypeError, match="integer dtype.*float32"):
        fn(x, dp.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ShapeError, match=r"4 classes.*\(3,\)"):
        fn(x, dp.tensor([0, 1, 2]), weight=dp.ones(3))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        fn(x, dp.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ShapeError, match="at least 1 dimension"):
        fn(dp.tensor(1.0), dp.tensor(0))


def test_cross_entropy_option_errors():
    x = dp.zeros(3, 4)
    with pytest.raises(InvalidArgumentError, match="label_smoothing.*1.5"):
        F.cross_entropy(x, dp.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(DTypeError, match="probabilities.*int64"):
        F.cross_entropy(x, dp.zeros(3, 4, dtype=dp.int64))
    with pytest.raises(InvalidArgumentError, match="ignore_index"):
        F.cross_entropy(x, dp.zeros(3, 4), ignore_index=1)


def test_ignored_out_of_range_index_is_fine():
    y = F.cross_entropy(dp.zeros(3, 4), dp.tensor([0, 7, 1]), ignore_index=7)
    np.testing.assert_allclose(y.item(), np.log(4), rtol=1e-6)


@needs_torch
def test_legacy_size_average_and_reduce():
    x, t = rand(4, 3), labels(4, c=3)
    for sa, rd in [(False, None), (None, False), (True, True)]:
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            got = F.cross_entropy(dp.tensor(x), dp.tensor(t), size_average=sa, reduce=rd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = TF.cross_entropy(torch.tensor(x), torch.tensor(t), size_average=sa, reduce=rd)
        np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# fused ops against their composed twins, gradcheck, double backward
# ----------------------------------------------------------------------------------------------

TWIN_CASES = [
    ("mse", lambda x, t: F.mse_loss(x, t, reduction="sum"), "float"),
    ("bce", lambda x, t: F.binary_cross_entropy(x.sigmoid(), t, weight=dp.tensor(rand(3, seed=4)),
                                                reduction="none"), "float"),
    ("bce_logits", lambda x, t: F.binary_cross_entropy_with_logits(
        x, t, pos_weight=dp.tensor(rand(3, seed=5, low=0.5, high=2))), "float"),
    ("ce", lambda x, t: F.cross_entropy(x, t, weight=dp.tensor(rand(3, seed=6, low=0.5, high=2)),
                                        label_smoothing=0.2, ignore_index=1), "index"),
    ("ce_prob", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1, reduction="none"), "prob"),
    ("nll", lambda x, t: F.nll_loss(x, t, reduction="sum"), "index"),
]  # fmt: skip


def _loss_inputs(kind):
    x = dp.tensor(rand(4, 3, seed=1), dtype=dp.float64, requires_grad=True)
    if kind == "index":
        return x, dp.tensor(np.array([0, 1, 2, 2]))
    if kind == "prob":
        return x, dp.tensor(probs(4, 3, seed=2), dtype=dp.float64, requires_grad=True)
    return x, dp.tensor(rand(4, 3, seed=2, low=0, high=1), dtype=dp.float64, requires_grad=True)


@pytest.mark.parametrize("name, fn, kind", TWIN_CASES[1:])  # mse's backward needs no twin
def test_fused_loss_matches_twin(name, fn, kind):
    x, t = _loss_inputs(kind)
    y = fn(x, t)
    inputs = list(y.grad_fn.inputs)  # for bce the op's input is sigmoid(x)
    y2 = y.grad_fn.twin(*inputs)
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-12, atol=1e-14)
    r = dp.tensor(rand(*y.shape, seed=9), dtype=dp.float64) if y.ndim else 1.0
    diff = [v for v in inputs if v.requires_grad]
    g1 = dp.autograd.grad((y * r).sum(), diff, retain_graph=True)
    g2 = dp.autograd.grad((y2 * r).sum(), diff)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name, fn, kind", TWIN_CASES)
def test_loss_gradcheck(name, fn, kind):
    x, t = _loss_inputs(kind)
    if kind == "index":
        assert dp.gradcheck(lambda a: fn(a, t), (x,))
    else:
        assert dp.gradcheck(fn, (x, t))


@needs_torch
@pytest.mark.parametrize(
    "name, dp_fn, th_fn, kind",
    [
        ("mse", lambda x, t: F.mse_loss(x.tanh(), t), lambda x, t: TF.mse_loss(x.tanh(), t),
         "float"),
        ("bce", lambda x, t: F.binary_cross_entropy(x.sigmoid(), t),
         lambda x, t: TF.binary_cross_entropy(x.sigmoid(), t), "float"),
        ("bce_logits", lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
         lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction="sum"), "float"),
        ("ce", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
         lambda x, t: TF.cross_entropy(x, t, label_smoothing=0.1), "index"),
        ("ce_prob", lambda x, t: F.cross_entropy(x, t), lambda x, t: TF.cross_entropy(x, t),
         "prob"),
        ("nll", lambda x, t: F.nll_loss(x.log_softmax(1), t),
         lambda x, t: TF.nll_loss(x.log_softmax(1), t), "index"),
    ],
)  # fmt: skip
def test_loss_hessian_vector_product_matches_torch(name, dp_fn, th_fn, kind):
    x, t = _loss_inputs(kind)
    v = rand(4, 3, seed=11)
    (g,) = dp.autograd.grad(dp_fn(x, t), x, create_graph=True)
    (h,) = dp.autograd.grad((g * dp.tensor(v)).sum(), x)
    xt = torch.tensor(x.data, requires_grad=True)
    tt = torch.tensor(t.data)
    (gt,) = torch.autograd.grad(th_fn(xt, tt), xt, create_graph=True)
    (ht,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(g.data, gt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h.data, ht.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    "fn, target",
    [
        (lambda x, t: F.binary_cross_entropy(x.sigmoid(), t), "float"),
        (lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=dp.full((3,), 2.0)),
         "float"),
        (lambda x, t: F.nll_loss(x.log_softmax(1), t, weight=dp.ones(3)), "index"),
        (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), "prob"),
        (lambda x, t: F.mse_loss(x, t, reduction="none"), "float"),
    ],
)  # fmt: skip
def test_losses_keep_float32(fn, target):
    x = dp.tensor(rand(4, 3).astype(np.float32), requires_grad=True)
    if target == "index":
        t = dp.tensor(np.array([0, 2, 1, 1]))
    elif target == "prob":
        t = dp.tensor(probs(4, 3).astype(np.float32), requires_grad=True)
    else:
        t = dp.tensor(rand(4, 3, seed=2, low=0, high=1).astype(np.float32), requires_grad=True)
    y = fn(x, t)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    if t.requires_grad:
        assert t.grad.dtype == np.float32
