"""nn.Module, Parameter and the containers: registration, traversal, state dicts, repr, modes."""

import copy
from collections import OrderedDict

import numpy as np
import pytest
from oracle import needs_torch, torch

import deltaprop as dp
from deltaprop import nn


class Net(nn.Module):
    """A small network mixing every kind of registration (used by several tests)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(4, 3), nn.Linear(4, 3, bias=False)])
        self.ln = nn.LayerNorm(3)
        self.register_buffer("scale", dp.ones(3))
        self.register_buffer("cache", dp.zeros(2), persistent=False)

    def forward(self, x):
        h = self.features(self.bn(self.conv(x)))
        return self.ln(self.heads[0](h) + self.heads[1](h)) * self.scale


class TorchNet(torch.nn.Module if torch is not None else object):
    def __init__(self):
        super().__init__()
        tnn = torch.nn
        self.conv = tnn.Conv2d(1, 2, 3)
        self.bn = tnn.BatchNorm2d(2)
        self.features = tnn.Sequential(tnn.Flatten(), tnn.Linear(8, 4), tnn.ReLU())
        self.heads = tnn.ModuleList([tnn.Linear(4, 3), tnn.Linear(4, 3, bias=False)])
        self.ln = tnn.LayerNorm(3)
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("cache", torch.zeros(2), persistent=False)

    def forward(self, x):
        h = self.features(self.bn(self.conv(x)))
        return self.ln(self.heads[0](h) + self.heads[1](h)) * self.scale


# ----------------------------------------------------------------------------------------------
# Parameter
# ----------------------------------------------------------------------------------------------


def test_parameter_defaults_and_repr():
    p = nn.Parameter(dp.tensor([1.0, 2.0]))
    assert isinstance(p, dp.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.dtype == np.float32
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert not nn.Parameter(dp.zeros(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)


def test_parameter_shares_memory_with_source():
    t = dp.zeros(3)
    p = nn.Parameter(t)
    p.data[0] = 5.0
    assert t.data[0] == 5.0
    arr = np.zeros(2, dtype=np.float64)
    q = nn.Parameter(arr)
    assert q.data is arr and q.dtype == np.float64


def test_parameter_of_integer_dtype_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(dp.tensor([1, 2]))


def test_ops_on_parameters_give_plain_tensors():
    p = nn.Parameter(dp.ones(2))
    y = p * 2
    assert type(y) is dp.Tensor and y.requires_grad
    assert type(p.detach()) is dp.Tensor


# ----------------------------------------------------------------------------------------------
# registration and traversal
# ----------------------------------------------------------------------------------------------


def test_attribute_assignment_registers_parameters_modules_buffers():
    net = Net()
    assert set(net._parameters) == set()
    assert list(net._modules) == ["conv", "bn", "features", "heads", "ln"]
    assert list(net._buffers) == ["scale", "cache"]
    assert isinstance(net.conv.weight, nn.Parameter)
    assert net.scale.shape == (3,)
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "conv.weight", "conv.bias", "bn.weight", "bn.bias", "features.1.weight",
        "features.1.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight", "ln.weight",
        "ln.bias",
    ]  # fmt: skip
    assert [n for n, _ in net.named_buffers()] == [
        "scale", "cache", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
    ]  # fmt: skip
    assert len(list(net.parameters())) == len(names)
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "features", "heads", "ln"]
    mods = [n for n, _ in net.named_modules()]
    assert mods == [
        "", "conv", "bn", "features", "features.0", "features.1", "features.2", "heads",
        "heads.0", "heads.1", "ln",
    ]  # fmt: skip
    assert list(net.modules())[0] is net
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.conv.named_parameters(prefix="conv")] == ["conv.weight", "conv.bias"]


@needs_torch
def test_traversal_names_match_torch():
    net, ref = Net(), TorchNet()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in ref.named_modules()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in ref.named_children()]


def test_assignment_rules_and_errors():
    m = nn.Module()
    m.w = nn.Parameter(dp.ones(2))
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = dp.ones(2)  # a plain tensor cannot replace a parameter
    m.w = None
    assert m.w is None and "w" in m._parameters
    assert list(m.parameters()) == []
    m.sub = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = 3
    m.register_buffer("b", dp.zeros(2))
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.b = [1, 2]
    m.b = dp.ones(2)
    assert m.b.tolist() == [1.0, 1.0]
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("sub", dp.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("q", dp.ones(1))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope
    del m.sub
    assert "sub" not in m._modules


def test_assignment_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"Module.__init__\(\) call"):
        Bad()


def test_reassigning_a_name_moves_it_between_registries():
    m = nn.Module()
    m.x = nn.Linear(1, 1)
    m.x = nn.Parameter(dp.ones(1))
    assert "x" in m._parameters and "x" not in m._modules
    m.y = 3
    assert m.y == 3 and "y" in m.__dict__


def test_buffer_class_registers_a_buffer():
    m = nn.Module()
    m.stats = nn.Buffer(dp.zeros(2))
    m.tmp = nn.Buffer(dp.zeros(1), persistent=False)
    assert list(m.state_dict()) == ["stats"]
    assert [n for n, _ in m.named_buffers()] == ["stats", "tmp"]
    assert type(m.stats) is dp.Tensor


def test_shared_parameters_are_listed_once_but_saved_under_both_names():
    a = nn.Linear(2, 2)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    b = nn.Linear(2, 2)
    tied = nn.Module()
    tied.enc, tied.dec = nn.Linear(3, 3), nn.Linear(3, 3)
    tied.dec.weight = tied.enc.weight
    assert [n for n, _ in tied.named_parameters()] == ["enc.weight", "enc.bias", "dec.bias"]
    assert b.num_parameters() == 6


def test_get_submodule_parameter_buffer():
    net = Net()
    assert net.get_submodule("features.1") is net.features[1]
    assert net.get_parameter("heads.0.bias") is net.heads[0].bias
    assert net.get_buffer("bn.running_var") is net.bn.running_var
    with pytest.raises(AttributeError):
        net.get_submodule("features.9")


def test_forward_missing_is_a_clear_error():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    seen = []
    h1 = lin.register_forward_pre_hook(lambda m, args: seen.append(("pre", args[0].shape)))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 0)
    y = lin(dp.ones(3, 2))
    assert seen == [("pre", (3, 2))]
    assert float(y.abs().sum()) == 0.0
    h1.remove()
    h2.remove()
    assert float(lin(dp.ones(3, 2)).abs().sum()) > 0
    assert len(seen) == 1


# ----------------------------------------------------------------------------------------------
# modes, grads, apply, dtype conversion
# ----------------------------------------------------------------------------------------------


def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.heads[1].training
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_zero_grad_to_none_and_to_zeros():
    lin = nn.Linear(3, 2)
    lin(dp.ones(4, 3)).sum().backward()
    assert lin.weight.grad is not None
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad is not None and float(lin.weight.grad.abs().sum()) == 0.0
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_apply_visits_children_first_then_self():
    net = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU()))
    order = []
    assert net.apply(lambda m: order.append(type(m).__name__)) is net
    assert order == ["Linear", "ReLU", "Sequential", "Sequential"]


def test_requires_grad_():
    net = nn.Linear(2, 2).requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("convert", ["double", "to", "to_kw", "to_tensor"])
def test_dtype_conversion_in_place(convert):
    net = Net()
    params_before = list(net.parameters())
    if convert == "double":
        out = net.double()
    elif convert == "to":
        out = net.to(dp.float64)
    elif convert == "to_kw":
        out = net.to(device="cpu", dtype=np.float64)
    else:
        out = net.to(dp.zeros(1, dtype=dp.float64))
    assert out is net
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert all(a is b for a, b in zip(params_before, net.parameters()))  # same Parameter objects
    assert net.bn.running_mean.dtype == np.float64
    assert net.bn.num_batches_tracked.dtype == np.int64  # integer buffers are left alone
    y = net.eval()(dp.randn(2, 1, 4, 4, dtype=dp.float64))
    assert y.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_to_rejects_integer_dtypes_and_other_devices():
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(1, 1).to(dp.int64)
    with pytest.raises(ValueError, match="CPU"):
        nn.Linear(1, 1).to("cuda")
    lin = nn.Linear(1, 1)
    assert lin.to("cpu") is lin and lin.weight.dtype == np.float32


def test_dtype_conversion_converts_existing_grads():
    lin = nn.Linear(2, 1)
    lin(dp.ones(1, 2)).sum().backward()
    lin.double()
    assert lin.weight.grad.dtype == np.float64


def test_deepcopy_gives_independent_module():
    net = Net()
    clone = copy.deepcopy(net)
    assert isinstance(clone.conv.weight, nn.Parameter)
    clone.conv.weight.data[...] = 0
    assert float(net.conv.weight.abs().sum()) > 0
    for (n1, a), (n2, b) in zip(net.state_dict().items(), clone.state_dict().items()):
        assert n1 == n2 and a.shape == b.shape


# ----------------------------------------------------------------------------------------------
# state dict
# ----------------------------------------------------------------------------------------------


@needs_torch
def test_state_dict_keys_match_torch():
    net, ref = Net(), TorchNet()
    assert list(net.state_dict()) == list(ref.state_dict())
    for k, v in net.state_dict().items():
        assert v.shape == tuple(ref.state_dict()[k].shape), k
        assert v.dtype == ref.state_dict()[k].numpy().dtype, k


@needs_torch
def test_state_dict_of_sequential_matches_torch():
    dp_seq = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    th = torch.nn
    th_seq = th.Sequential(th.Linear(2, 3), th.BatchNorm1d(3), th.ReLU(), th.Linear(3, 1))
    assert list(dp_seq.state_dict()) == list(th_seq.state_dict())
    assert list(dp_seq.state_dict())[:2] == ["0.weight", "0.bias"]


def test_state_dict_values_are_detached_views():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert isinstance(sd, OrderedDict)
    assert not sd["weight"].requires_grad and type(sd["weight"]) is dp.Tensor
    assert sd["weight"].data is lin.weight.data  # shares memory, as PyTorch
    kept = lin.state_dict(keep_vars=True)
    assert kept["weight"] is lin.weight
    assert list(lin.state_dict(prefix="enc.")) == ["enc.weight", "enc.bias"]


@needs_torch
def test_load_state_dict_from_torch_values_gives_same_outputs():
    torch.manual_seed(0)
    net, ref = Net(), TorchNet()
    ref.bn.running_mean.uniform_(-1, 1)
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}  # numpy arrays are accepted
    assert net.load_state_dict(sd).missing_keys == []
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    net.eval()
    ref.eval()
    np.testing.assert_allclose(
        net(dp.tensor(x)).data, ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_load_state_dict_copies_in_place_keeping_dtype():
    lin = nn.Linear(2, 2)
    w = lin.weight
    arr = w.data
    src = {"weight": np.arange(4.0).reshape(2, 2), "bias": dp.tensor([1.0, 2.0], dtype=dp.float64)}
    res = lin.load_state_dict(src)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    assert lin.weight is w and lin.weight.data is arr  # same objects, values copied in
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    assert lin.weight.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    src["weight"][0, 0] = 99.0  # no aliasing of the source
    assert lin.weight.data[0, 0] == 0.0


def test_load_state_dict_assign_takes_the_value_dtype():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)}, assign=True)
    assert lin.weight.dtype == np.float64 and isinstance(lin.weight, nn.Parameter)


def test_load_state_dict_reports_every_problem_in_one_error():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    good = net.state_dict()
    before = {k: v.data.copy() for k, v in good.items()}
    bad = {k: np.zeros_like(v.data) + 7 for k, v in good.items()}
    del bad["0.bias"], bad["1.running_var"]
    bad["extra.weight"] = np.zeros(1)
    bad["0.weight"] = np.zeros((2, 3))
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(bad)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential:")
    assert 'Missing key(s) in state_dict: "0.bias", "1.running_var".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert "size mismatch for 0.weight: copying a param with shape (2, 3) from checkpoint, the " \
        "shape in current model is (3, 2)." in msg  # fmt: skip
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)
    for k, v in net.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(v.data, before[k])


def test_load_state_dict_non_strict_returns_the_key_lists():
    net = nn.Sequential(nn.Linear(2, 3))
    res = net.load_state_dict({"0.weight": np.ones((3, 2)), "other": np.ones(1)}, strict=False)
    assert res.missing_keys == ["0.bias"] and res.unexpected_keys == ["other"]
    assert res == (["0.bias"], ["other"])
    assert float(net[0].weight.sum()) == 6.0
    with pytest.raises(nn.StateDictError, match="size mismatch for 0.weight"):
        net.load_state_dict({"0.weight": np.ones((2, 2))}, strict=False)


def test_load_state_dict_rejects_non_numeric_values():
    lin = nn.Linear(1, 1)
    with pytest.raises(nn.StateDictError, match='named "weight"'):
        lin.load_state_dict({"weight": "abc", "bias": np.zeros(1)})
    with pytest.raises(TypeError, match="dict-like"):
        lin.load_state_dict([("weight", np.zeros((1, 1)))])


@needs_torch
def test_load_state_dict_error_lists_same_keys_as_torch():
    th = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    bad = {"0.weight": torch.zeros(3, 2), "1.bias": torch.zeros(2), "x": torch.zeros(1)}
    with pytest.raises(RuntimeError) as tinfo:
        th.load_state_dict(bad)
    with pytest.raises(RuntimeError) as dinfo:
        net.load_state_dict({k: v.numpy() for k, v in bad.items()})
    t_lines = [line.split(":")[0] for line in str(tinfo.value).split("\n\t")]
    d_lines = [line.split(":")[0] for line in str(dinfo.value).split("\n\t")]
    assert t_lines == d_lines
    assert str(tinfo.value).split("\n\t")[1:3] == str(dinfo.value).split("\n\t")[1:3]


def test_load_state_dict_scalar_buffer_accepts_one_element_array():
    bn = nn.BatchNorm1d(2)
    sd = {k: v.data.copy() for k, v in bn.state_dict().items()}
    sd["num_batches_tracked"] = np.array([5])
    bn.load_state_dict(sd)
    assert bn.num_batches_tracked.item() == 5 and bn.num_batches_tracked.dtype == np.int64


# ----------------------------------------------------------------------------------------------
# repr
# ----------------------------------------------------------------------------------------------


def _zoo(lib):
    return lib.Sequential(
        lib.Conv2d(3, 6, 5),
        lib.Conv2d(6, 8, (3, 2), stride=2, padding=1, bias=False),
        lib.Conv2d(8, 8, 3, padding="same", dilation=2),
        lib.BatchNorm2d(8),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.MaxPool2d((2, 3), stride=1, padding=1),
        lib.AvgPool2d(2),
        lib.AvgPool2d(3, stride=2, padding=1),
        lib.Flatten(),
        lib.Linear(16, 10),
        lib.Linear(10, 10, bias=False),
        lib.LayerNorm(10),
        lib.LayerNorm((2, 5), eps=1e-3, elementwise_affine=False),
        lib.BatchNorm1d(10, momentum=None, affine=False, track_running_stats=False),
        lib.Dropout(),
        lib.Dropout(0.2),
        lib.LeakyReLU(),
        lib.LeakyReLU(0.2),
        lib.GELU(),
        lib.GELU(approximate="tanh"),
        lib.Sigmoid(),
        lib.Tanh(),
        lib.Softmax(dim=1),
        lib.Softmax(),
        lib.LogSoftmax(dim=-1),
        lib.Identity(),
        lib.MSELoss(),
        lib.CrossEntropyLoss(label_smoothing=0.1),
        lib.BCELoss(),
        lib.BCEWithLogitsLoss(),
        lib.NLLLoss(),
        lib.Sequential(lib.Linear(1, 1), lib.Sequential(lib.ReLU())),
        lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 2), lib.Tanh(), lib.Linear(2, 2)]),
        lib.ModuleList(),
        lib.ModuleDict({"a": lib.ReLU(), "b": lib.Linear(1, 2)}),
    )


@needs_torch
def test_repr_matches_torch_exactly():
    assert repr(_zoo(nn)) == repr(_zoo(torch.nn))


@needs_torch
def test_repr_of_custom_module_matches_torch():
    assert repr(Net()) == repr(TorchNet()).replace("TorchNet", "Net")


def test_repr_of_sequential_example():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert repr(seq) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"
    )


def test_extra_repr_multiline_and_custom():
    class M(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    assert repr(M()) == "M(\n  a=1\n  b=2\n)"


# ----------------------------------------------------------------------------------------------
# containers
# ----------------------------------------------------------------------------------------------


def test_sequential_indexing_len_iteration_append():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b
    assert list(seq) == [a, b]
    assert seq.append(c) is seq and seq[2] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]  # slicing keeps the names, as PyTorch
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    del seq[0]
    assert list(seq._modules) == ["0", "1"] and seq[0] is b
    seq.insert(0, a)
    assert list(seq) == [a, b, c]
    assert seq.pop(1) is b and list(seq) == [a, c]
    seq[1] = b
    assert seq[1] is b
    both = nn.Sequential(a) + nn.Sequential(c)
    assert list(both) == [a, c]
    assert list(nn.Sequential(a).extend([b, c])) == [a, b, c]


def test_sequential_forward_and_named():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Sigmoid())]))
    assert seq.fc is seq[0]
    y = seq(dp.zeros(3, 2))
    assert y.shape == (3, 2) and float(y.max()) < 1.0
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]


def test_modulelist_and_moduledict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU())
    layers.insert(0, nn.Tanh())
    assert type(layers[0]).__name__ == "Tanh" and type(layers[-1]).__name__ == "ReLU"
    assert list(layers._modules) == ["0", "1", "2", "3", "4"]
    del layers[0]
    assert type(layers[0]).__name__ == "Linear" and list(layers._modules)[-1] == "3"
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    with pytest.raises(NotImplementedError):
        layers(dp.ones(1))
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(3)
    d = nn.ModuleDict({"a": nn.Linear(1, 1)})
    d["b"] = nn.ReLU()
    assert list(d) == ["a", "b"] and "a" in d and len(d) == 2
    assert list(d.state_dict()) == ["a.weight", "a.bias"]
    assert type(d.pop("b")).__name__ == "ReLU" and list(d.keys()) == ["a"]
