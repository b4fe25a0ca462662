"""Every layer against torch.nn in float64 (weights copied across): outputs, input and parameter
gradients, running statistics; default initialisation; shape errors; float32 end to end."""

import math

import numpy as np
import pytest
from oracle import needs_torch, rand, torch

import deltaprop as dp
from deltaprop import nn


def check_layer(dp_mod, th_mod, inputs, grad=None, train=True, atol=1e-10, rtol=1e-7, steps=1):
    """Run ``dp_mod`` and ``th_mod`` (same float64 weights) on ``inputs``; compare the outputs,
    the gradients of every float input (where ``grad`` allows) and parameter, and the buffers."""
    dp_mod.double()
    th_mod.double()
    th_mod.load_state_dict({k: torch.tensor(v.data) for k, v in dp_mod.state_dict().items()})
    dp_mod.train(train)
    th_mod.train(train)
    for step in range(steps):
        dp_in, th_in = [], []
        for i, a in enumerate(inputs):
            if isinstance(a, np.ndarray):
                rg = a.dtype.kind == "f" and (grad is None or grad[i])
                dp_in.append(dp.tensor(a, dtype=a.dtype, requires_grad=rg))
                th_in.append(torch.tensor(a, requires_grad=rg))
            else:
                dp_in.append(a)
                th_in.append(a)
        y = dp_mod(*dp_in)
        ty = th_mod(*th_in)
        assert y.shape == tuple(ty.shape)
        assert y.dtype == ty.detach().numpy().dtype
        np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=atol, rtol=rtol)
        if not ty.requires_grad:
            continue
        r = np.random.default_rng(step).standard_normal(y.shape)
        (y * dp.tensor(r, dtype=dp.float64)).sum().backward()
        (ty * torch.tensor(r)).sum().backward()
        for i, (d, t) in enumerate(zip(dp_in, th_in)):
            if isinstance(t, torch.Tensor) and t.requires_grad:
                assert d.grad is not None, f"input {i} has no gradient"
                assert d.grad.dtype == np.float64
                np.testing.assert_allclose(
                    d.grad.data, t.grad.numpy(), atol=atol, rtol=rtol, err_msg=f"input {i}"
                )
        th_params = dict(th_mod.named_parameters())
        for name, p in dp_mod.named_parameters():
            tg = th_params[name].grad
            assert p.grad is not None and tg is not None, name
            np.testing.assert_allclose(
                p.grad.data, tg.numpy(), atol=atol, rtol=rtol, err_msg=f"gradient of {name}"
            )
        dp_mod.zero_grad()
        th_mod.zero_grad()
    th_sd = th_mod.state_dict()
    for name, v in dp_mod.state_dict().items():
        np.testing.assert_allclose(v.data, th_sd[name].numpy(), atol=atol, rtol=rtol, err_msg=name)
    return y


# ----------------------------------------------------------------------------------------------
# Linear, Conv2d
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("x_shape", [(5, 3), (3,), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(x_shape, bias):
    check_layer(nn.Linear(3, 4, bias=bias), torch.nn.Linear(3, 4, bias=bias), [rand(*x_shape)])


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": 2},
        {"padding": 1},
        {"stride": (2, 1), "padding": (1, 2)},
        {"dilation": 2, "padding": 2},
        {"bias": False},
        {"padding": "same"},
        {"padding": "same", "dilation": (1, 2)},
        {"padding": "valid"},
    ],
)
@pytest.mark.parametrize("kernel", [3, (2, 3)])
def test_conv2d_matches_torch(kwargs, kernel):
    x = rand(2, 3, 7, 6)
    check_layer(
        nn.Conv2d(3, 4, kernel, **kwargs),
        torch.nn.Conv2d(3, 4, kernel, **kwargs),
        [x],
        atol=1e-9,
    )


@needs_torch
def test_conv2d_unbatched_and_groups_match_torch():
    check_layer(nn.Conv2d(2, 3, 2), torch.nn.Conv2d(2, 3, 2), [rand(2, 5, 5)], atol=1e-9)
    check_layer(
        nn.Conv2d(4, 6, 3, groups=2), torch.nn.Conv2d(4, 6, 3, groups=2), [rand(2, 4, 5, 5)],
        atol=1e-9,
    )  # fmt: skip


def test_linear_default_init_bounds_and_seed():
    dp.manual_seed(0)
    a = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    assert a.weight.shape == (300, 400) and a.bias.shape == (300,)
    assert a.weight.dtype == np.float32 and a.bias.dtype == np.float32
    for p in (a.weight, a.bias):
        assert p.data.max() <= np.float32(bound) and p.data.min() >= -np.float32(bound)
        assert float(p.abs().max()) > 0.95 * bound  # fills the interval
    # U(-b, b) has variance b^2 / 3
    assert abs(float(a.weight.data.var()) - bound**2 / 3) < 0.05 * bound**2 / 3
    dp.manual_seed(0)
    b = nn.Linear(400, 300)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    c = nn.Linear(400, 300)
    assert not np.array_equal(b.weight.data, c.weight.data)


def test_conv2d_default_init_bounds():
    dp.manual_seed(1)
    conv = nn.Conv2d(6, 16, 5)
    bound = 1 / math.sqrt(6 * 25)
    assert conv.weight.shape == (16, 6, 5, 5) and conv.bias.shape == (16,)
    assert float(conv.weight.abs().max()) <= np.float32(bound)
    assert float(conv.weight.abs().max()) > 0.95 * bound
    assert float(conv.bias.abs().max()) <= np.float32(bound)


def test_linear_shape_error_names_layer_and_shapes():
    lin = nn.Linear(4, 3)
    with pytest.raises(nn.ShapeError) as info:
        lin(dp.zeros(2, 3))
    msg = str(info.value)
    assert msg.startswith("Linear(in_features=4, out_features=3, bias=True)")
    assert "expected input with last dimension 4, got shape (2, 3)" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    with pytest.raises(TypeError, match="Linear: expected a Tensor"):
        lin([1.0, 2.0, 3.0, 4.0])


def test_conv2d_shape_errors():
    conv = nn.Conv2d(3, 6, 5)
    with pytest.raises(nn.ShapeError, match=r"Conv2d\(3, 6.*expected 4-D input \(N, C, H, W\)"
                       r".*C=3, got shape \(2, 4, 8, 8\)"):  # fmt: skip
        conv(dp.zeros(2, 4, 8, 8))
    with pytest.raises(nn.ShapeError, match="got shape"):
        conv(dp.zeros(8, 8))
    with pytest.raises(nn.ShapeError, match="smaller than the kernel"):
        conv(dp.zeros(1, 3, 4, 8))
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(3, 6, 3, padding="full")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 6, 3, padding="same", stride=2)
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 6, 2.5)


def test_layer_argument_validation():
    with pytest.raises(ValueError, match="in_features must be non-negative"):
        nn.Linear(-1, 2)
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(2, 2, dtype=dp.int64)
    with pytest.raises(ValueError, match="CPU"):
        nn.Linear(2, 2, device="cuda")
    with pytest.raises(ValueError, match="dropout probability"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


def test_layer_dtype_argument():
    lin = nn.Linear(2, 2, dtype=dp.float64)
    assert lin.weight.dtype == np.float64
    assert nn.LayerNorm(3, dtype=np.float64).weight.dtype == np.float64
    assert nn.BatchNorm1d(3, dtype=np.float64).running_var.dtype == np.float64


# ----------------------------------------------------------------------------------------------
# pooling, flatten
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "args,kwargs",
    [((2,), {}), ((3,), {"stride": 2}), ((2, 1), {}), (((2, 3),), {"stride": 1, "padding": 1}),
     ((3,), {"stride": 2, "ceil_mode": True})],
)  # fmt: skip
@pytest.mark.parametrize("cls", ["MaxPool2d", "AvgPool2d"])
def test_pooling_matches_torch(cls, args, kwargs):
    x = rand(2, 3, 7, 8)
    check_layer(getattr(nn, cls)(*args, **kwargs), getattr(torch.nn, cls)(*args, **kwargs), [x])


@needs_torch
def test_pooling_options_match_torch():
    x = rand(2, 3, 7, 8)
    check_layer(nn.MaxPool2d(2, dilation=2), torch.nn.MaxPool2d(2, dilation=2), [x])
    for kw in [{"count_include_pad": False}, {"divisor_override": 3}]:
        check_layer(nn.AvgPool2d(3, 2, 1, **kw), torch.nn.AvgPool2d(3, 2, 1, **kw), [x])
    y, idx = nn.MaxPool2d(2, return_indices=True)(dp.tensor(x))
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx.data, tidx.numpy())


@needs_torch
def test_pooling_unbatched_and_negative_padded():
    check_layer(nn.MaxPool2d(2, padding=1), torch.nn.MaxPool2d(2, padding=1),
                [rand(3, 5, 5, low=-3.0, high=-1.0)])  # fmt: skip


def test_pooling_shape_error():
    with pytest.raises(nn.ShapeError, match=r"MaxPool2d\(kernel_size=2.*got shape \(4, 4\)"):
        nn.MaxPool2d(2)(dp.zeros(4, 4))


@needs_torch
@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (-2, -1)])
def test_flatten_matches_torch(start, end):
    check_layer(nn.Flatten(start, end), torch.nn.Flatten(start, end), [rand(2, 3, 4, 5)])


# ----------------------------------------------------------------------------------------------
# normalisation, dropout
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "shape,x_shape",
    [(4, (3, 4)), ((3, 4), (2, 3, 4)), ([5], (2, 2, 5))],
)
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False},
                                    {"eps": 1e-2}])  # fmt: skip
def test_layernorm_matches_torch(shape, x_shape, kwargs):
    ln = nn.LayerNorm(shape, **kwargs)
    if ln.weight is not None:  # non-trivial affine parameters
        ln.weight.data[...] = rand(*ln.weight.shape, seed=5)
    if ln.bias is not None:
        ln.bias.data[...] = rand(*ln.bias.shape, seed=6)
    check_layer(ln, torch.nn.LayerNorm(shape, **kwargs), [rand(*x_shape)], atol=1e-9)


def test_layernorm_shape_error():
    with pytest.raises(nn.ShapeError, match=r"LayerNorm\(\(4,\).*\[\*, 4\].*\(2, 3\)"):
        nn.LayerNorm(4)(dp.zeros(2, 3))


@needs_torch
@pytest.mark.parametrize("cls,x_shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                         ("BatchNorm2d", (4, 3, 5, 2))])  # fmt: skip
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": None},
        {"momentum": 0.3, "eps": 1e-3},
        {"affine": False},
        {"track_running_stats": False},
        {"bias": False},
    ],
)
def test_batchnorm_matches_torch_in_training_for_several_steps(cls, x_shape, kwargs):
    bn = getattr(nn, cls)(3, **kwargs)
    if bn.weight is not None:
        bn.weight.data[...] = rand(3, seed=7)
    if bn.bias is not None:
        bn.bias.data[...] = rand(3, seed=8)
    ref = getattr(torch.nn, cls)(3, **kwargs)
    check_layer(bn, ref, [rand(*x_shape, low=-1, high=3)], steps=3, atol=1e-9)
    if bn.track_running_stats:
        assert bn.num_batches_tracked.item() == 3
        assert bn.num_batches_tracked.dtype == np.int64


@needs_torch
@pytest.mark.parametrize("cls,x_shape", [("BatchNorm1d", (6, 3)), ("BatchNorm2d", (2, 3, 4, 4))])
def test_batchnorm_eval_uses_running_stats(cls, x_shape):
    bn = getattr(nn, cls)(3)
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [0.25, 2.0, 1.5]
    bn.weight.data[...] = [1.5, -0.5, 2.0]
    check_layer(bn, getattr(torch.nn, cls)(3), [rand(*x_shape)], train=False, steps=2, atol=1e-9)
    assert bn.num_batches_tracked.item() == 0  # evaluation does not count batches


def test_batchnorm_shape_errors():
    with pytest.raises(nn.ShapeError, match=r"BatchNorm1d\(3.*expected 2D or 3D input"):
        nn.BatchNorm1d(3)(dp.zeros(2, 3, 4, 5))
    with pytest.raises(nn.ShapeError, match=r"BatchNorm2d\(3.*expected 4D input"):
        nn.BatchNorm2d(3)(dp.zeros(2, 3))
    with pytest.raises(nn.ShapeError, match="expected input with 3 channels"):
        nn.BatchNorm1d(3)(dp.zeros(2, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(dp.zeros(1, 3))


def test_batchnorm_reset_running_stats():
    bn = nn.BatchNorm1d(2)
    bn(dp.randn(4, 2))
    bn.reset_running_stats()
    assert bn.running_mean.tolist() == [0.0, 0.0] and bn.running_var.tolist() == [1.0, 1.0]
    assert bn.num_batches_tracked.item() == 0


@needs_torch
def test_dropout_in_eval_mode_is_identity_like_torch():
    check_layer(nn.Dropout(0.3), torch.nn.Dropout(0.3), [rand(4, 5)], train=False)


def test_dropout_training_statistics_and_gradient_mask():
    dp.manual_seed(0)
    drop = nn.Dropout(0.25)
    x = dp.ones(200, 100, requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data, rtol=1e-6)  # same mask and scale
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert float(nn.Dropout(1.0)(dp.ones(10)).abs().sum()) == 0.0
    np.testing.assert_array_equal(nn.Dropout(0.0)(dp.ones(10)).data, np.ones(10))
    dp.manual_seed(3)
    a = nn.Dropout()(dp.ones(50))
    dp.manual_seed(3)
    b = nn.Dropout()(dp.ones(50))
    np.testing.assert_array_equal(a.data, b.data)


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.ReLU(),
        lambda lib: lib.LeakyReLU(),
        lambda lib: lib.LeakyReLU(0.2),
        lambda lib: lib.GELU(),
        lambda lib: lib.GELU(approximate="tanh"),
        lambda lib: lib.Sigmoid(),
        lambda lib: lib.Tanh(),
        lambda lib: lib.Softmax(dim=1),
        lambda lib: lib.Softmax(dim=-1),
        lambda lib: lib.LogSoftmax(dim=1),
        lambda lib: lib.LogSoftmax(dim=0),
        lambda lib: lib.Identity(),
    ],
)
def test_activations_match_torch(make):
    check_layer(make(nn), make(torch.nn), [rand(3, 4, 5, low=-4, high=4)], atol=1e-9)


@needs_torch
@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)])
def test_softmax_implicit_dim_like_torch(cls, shape):
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = getattr(nn, cls)()(dp.tensor(rand(*shape), dtype=dp.float64))
    with pytest.warns(UserWarning):
        ty = getattr(torch.nn, cls)()(torch.tensor(rand(*shape)))
    np.testing.assert_allclose(y.data, ty.numpy(), rtol=1e-10)


def test_activation_examples_float32():
    x = dp.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = nn.Sequential(nn.LeakyReLU(0.5), nn.Tanh())(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction):
    check_layer(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction),
                [rand(4, 3), rand(4, 3, seed=2)])  # fmt: skip


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weight": "w"}, {"ignore_index": 2}, {"label_smoothing": 0.1},
     {"weight": "w", "label_smoothing": 0.2, "ignore_index": 0}],
)  # fmt: skip
def test_cross_entropy_loss_matches_torch(reduction, kwargs):
    w = rand(5, seed=4, low=0.5, high=2.0)
    dk = {k: (dp.tensor(w, dtype=dp.float64) if v == "w" else v) for k, v in kwargs.items()}
    tk = {k: (torch.tensor(w) if v == "w" else v) for k, v in kwargs.items()}
    target = np.array([0, 2, 4, 1, 2, 3])
    check_layer(nn.CrossEntropyLoss(reduction=reduction, **dk),
                torch.nn.CrossEntropyLoss(reduction=reduction, **tk),
                [rand(6, 5, low=-3, high=3), target], atol=1e-9)  # fmt: skip


@needs_torch
def test_cross_entropy_weight_is_a_buffer_like_torch():
    w = np.array([1.0, 2.0, 3.0])
    loss = nn.CrossEntropyLoss(weight=dp.tensor(w))
    ref = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(loss.state_dict()) == list(ref.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=dp.ones(2)).state_dict()) == ["pos_weight"]


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(reduction, weighted):
    w = rand(4, seed=4, low=0.5, high=2.0)
    kw = {"weight": w} if weighted else {}
    check_layer(
        nn.NLLLoss(
            reduction=reduction, **{k: dp.tensor(v, dtype=dp.float64) for k, v in kw.items()}
        ),
        torch.nn.NLLLoss(reduction=reduction, **{k: torch.tensor(v) for k, v in kw.items()}),
        [rand(5, 4, low=-3, high=0), np.array([0, 3, 1, 1, 2])],
        atol=1e-9,
    )


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_loss_matches_torch(reduction, weighted):
    w = rand(3, seed=4, low=0.5, high=2.0)
    dk = {"weight": dp.tensor(w, dtype=dp.float64)} if weighted else {}
    tk = {"weight": torch.tensor(w)} if weighted else {}
    check_layer(nn.BCELoss(reduction=reduction, **dk), torch.nn.BCELoss(reduction=reduction, **tk),
                [rand(4, 3, low=0.05, high=0.95), rand(4, 3, seed=2, low=0, high=1)],
                grad=[True, False], atol=1e-9)  # fmt: skip


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kwargs", [{}, {"pos_weight": "p"}, {"weight": "w"},
                                    {"weight": "w", "pos_weight": "p"}])  # fmt: skip
def test_bce_with_logits_loss_matches_torch(reduction, kwargs):
    vals = {"p": rand(3, seed=5, low=0.5, high=3.0), "w": rand(3, seed=6, low=0.5, high=2.0)}
    dk = {k: dp.tensor(vals[v], dtype=dp.float64) for k, v in kwargs.items()}
    tk = {k: torch.tensor(vals[v]) for k, v in kwargs.items()}
    inputs = [rand(4, 3, low=-5, high=5), rand(4, 3, seed=2, low=0, high=1)]
    ours = nn.BCEWithLogitsLoss(reduction=reduction, **dk)
    check_layer(ours, torch.nn.BCEWithLogitsLoss(reduction=reduction, **tk), inputs, atol=1e-9)


def test_legacy_reduction_arguments():
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss(reduce=False).reduction == "none"
    assert nn.CrossEntropyLoss(size_average=True).reduction == "mean"


# ----------------------------------------------------------------------------------------------
# networks, float32 end to end
# ----------------------------------------------------------------------------------------------


def _lenet(lib):
    return lib.Sequential(
        lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 6, 3), lib.Tanh(), lib.AvgPool2d(2), lib.Flatten(),
        lib.Linear(6, 8), lib.LayerNorm(8), lib.GELU(), lib.Dropout(0.0), lib.Linear(8, 3),
        lib.LogSoftmax(dim=1),
    )  # fmt: skip


@needs_torch
def test_small_cnn_matches_torch():
    check_layer(_lenet(nn), _lenet(torch.nn), [rand(3, 1, 8, 8)], steps=2, atol=1e-9)


def test_float32_network_keeps_float32_everywhere():
    dp.manual_seed(0)
    net = _lenet(nn)
    x = dp.randn(4, 1, 8, 8)
    loss = nn.NLLLoss()(net(x), dp.tensor([0, 1, 2, 0]))
    assert loss.dtype == np.float32
    loss.backward()
    for name, p in net.named_parameters():
        assert p.dtype == np.float32, name
        assert p.grad is not None and p.grad.dtype == np.float32, name
    assert net[1].running_mean.dtype == np.float32


def test_dtype_mismatch_between_input_and_layer_is_an_error():
    with pytest.raises(TypeError):
        nn.Linear(2, 2)(dp.zeros(1, 2, dtype=dp.float64))
