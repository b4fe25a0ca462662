"""Optimizers and schedulers against torch.optim: identical parameters and gradients, every
option, several steps; param groups; in-place float32 updates; state dict round trips."""

import copy
import math

import numpy as np
import pytest
from oracle import needs_torch, torch

import deltaprop as dp
from deltaprop import nn, optim
from deltaprop.optim import lr_scheduler

SHAPES = [(3, 4), (4,), (2, 1, 3)]


def _grad(p: np.ndarray, k: int, i: int) -> np.ndarray:
    """A gradient that depends on the current parameter (so differences would compound)."""
    noise = np.random.default_rng(100 * k + i).standard_normal(p.shape)
    return np.sin(3 * p) + 0.5 * noise


def _params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    dps = [nn.Parameter(dp.tensor(a, dtype=dtype)) for a in arrays]
    ths = [torch.nn.Parameter(torch.tensor(a)) for a in arrays] if torch is not None else None
    return dps, ths


def _set_grads(dps, ths, k, skip=None):
    for i, (p, tp) in enumerate(zip(dps, ths)):
        if skip is not None and skip(k, i):  # no gradient this step: the parameter is skipped
            p.grad, tp.grad = None, None
            continue
        g = _grad(p.data.astype(np.float64), k, i).astype(p.dtype)
        p.grad = dp.tensor(g, dtype=g.dtype)
        tp.grad = torch.tensor(g)


def _run(opt, topt, dps, ths, steps, atol, rtol, skip=None, check_state=True):
    for k in range(steps):
        _set_grads(dps, ths, k, skip)
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(dps, ths)):
            np.testing.assert_allclose(
                p.data, tp.detach().numpy(), atol=atol, rtol=rtol, err_msg=f"step {k}, param {i}"
            )
    if check_state:
        _compare_state_dicts(opt.state_dict(), topt.state_dict(), atol, rtol)


def _compare_state_dicts(sd, tsd, atol=1e-12, rtol=1e-10):
    assert sd["param_groups"] == tsd["param_groups"]
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for idx, st in sd["state"].items():
        tst = tsd["state"][idx]
        assert list(st) == list(tst), f"state keys of param {idx}"
        for key, v in st.items():
            tv = tst[key]
            if isinstance(tv, torch.Tensor):
                assert v.shape == tuple(tv.shape), (idx, key)
                np.testing.assert_allclose(v.data, tv.numpy(), atol=atol, rtol=rtol)
            else:
                assert v == tv


SGD_OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.1},
    {"momentum": 0.5, "weight_decay": 0.1, "nesterov": True},
    {"momentum": 0.8, "dampening": 0.1, "weight_decay": 0.05},
    {"maximize": True, "momentum": 0.9, "weight_decay": 0.1},
    {"maximize": True},
]
ADAM_OPTIONS = [
    {},
    {"betas": (0.8, 0.99), "eps": 1e-6},
    {"weight_decay": 0.1},
    {"amsgrad": True},
    {"amsgrad": True, "weight_decay": 0.05, "betas": (0.5, 0.9)},
    {"maximize": True, "weight_decay": 0.1},
]
RMSPROP_OPTIONS = [
    {},
    {"alpha": 0.9, "eps": 1e-4},
    {"weight_decay": 0.1},
    {"momentum": 0.9},
    {"centered": True},
    {"centered": True, "momentum": 0.5, "weight_decay": 0.05},
    {"maximize": True, "momentum": 0.3},
]
CASES = (
    [("SGD", 0.1, o) for o in SGD_OPTIONS]
    + [("Adam", 0.05, o) for o in ADAM_OPTIONS]
    + [("AdamW", 0.05, o) for o in ADAM_OPTIONS]
    + [("RMSprop", 0.01, o) for o in RMSPROP_OPTIONS]
)


def _ids(case):
    return f"{case[0]}-" + "-".join(f"{k}={v}" for k, v in case[2].items())


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_optimizer_matches_torch_float64(case):
    name, lr, options = case
    dps, ths = _params()
    opt = getattr(optim, name)(dps, lr=lr, **options)
    topt = getattr(torch.optim, name)(ths, lr=lr, **options)
    # parameter 1 gets no gradient at steps 2 and 3 (it must be skipped, as PyTorch does)
    _run(opt, topt, dps, ths, steps=6, atol=1e-12, rtol=1e-10,
         skip=lambda k, i: i == 1 and k in (2, 3))  # fmt: skip


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_optimizer_float32_in_place(case):
    name, lr, options = case
    dps, ths = _params(np.float32)
    arrays = [p.data for p in dps]
    opt = getattr(optim, name)(dps, lr=lr, **options)
    topt = getattr(torch.optim, name)(ths, lr=lr, **options)
    _run(opt, topt, dps, ths, steps=4, atol=1e-5, rtol=1e-4, check_state=False)
    for p, a in zip(dps, arrays):
        assert p.data is a, "the update must be in place on the parameter's array"
        assert p.dtype == np.float32
    for st in opt.state.values():
        for key, v in st.items():
            assert v.dtype == np.float32, key


@needs_torch
@pytest.mark.parametrize("name,lr", [("SGD", 0.1), ("Adam", 0.01), ("AdamW", 0.01),
                                     ("RMSprop", 0.01)])  # fmt: skip
def test_param_groups_with_their_own_options_match_torch(name, lr):
    dps, ths = _params()
    extra = {"SGD": {"momentum": 0.9, "nesterov": True}, "Adam": {"amsgrad": True},
             "AdamW": {"weight_decay": 0.3}, "RMSprop": {"centered": True}}[name]  # fmt: skip

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": lr * 3, **extra}]

    opt = getattr(optim, name)(groups(dps), lr=lr, weight_decay=0.01)
    topt = getattr(torch.optim, name)(groups(ths), lr=lr, weight_decay=0.01)
    assert opt.param_groups[1]["lr"] == lr * 3 and opt.param_groups[0]["lr"] == lr
    _run(opt, topt, dps, ths, steps=5, atol=1e-12, rtol=1e-10)


@needs_torch
def test_add_param_group_matches_torch():
    dps, ths = _params()
    opt = optim.SGD(dps[:1], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(ths[:1], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": dps[1:], "lr": 0.01})
    topt.add_param_group({"params": ths[1:], "lr": 0.01})
    _run(opt, topt, dps, ths, steps=3, atol=1e-12, rtol=1e-10)


@needs_torch
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_state_dict_round_trip_continues_identically(name, tmp_path):
    kw = {"SGD": {"lr": 0.1, "momentum": 0.9}, "Adam": {"lr": 0.05, "amsgrad": True},
          "RMSprop": {"lr": 0.01, "centered": True, "momentum": 0.5}}[name]  # fmt: skip
    dps, ths = _params()
    opt = getattr(optim, name)(dps, **kw)
    topt = getattr(torch.optim, name)(ths, **kw)
    _run(opt, topt, dps, ths, steps=3, atol=1e-12, rtol=1e-10)
    # save to disk, rebuild a second copy of the parameters and the optimizer, load, continue
    dp.save({"params": [p.detach() for p in dps], "opt": opt.state_dict()}, tmp_path / "o.st")
    ckpt = dp.load(tmp_path / "o.st")
    dps2 = [nn.Parameter(t) for t in ckpt["params"]]
    opt2 = getattr(optim, name)(dps2, lr=123.0)  # hyper-parameters come from the state dict
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for k in range(3, 6):
        _set_grads(dps, ths, k)
        for p, p2 in zip(dps, dps2):
            p2.grad = dp.tensor(p.grad.data.copy(), dtype=p.dtype)
        opt.step()
        opt2.step()
        topt.step()
        for p, p2, tp in zip(dps, dps2, ths):
            np.testing.assert_array_equal(p.data, p2.data)
            np.testing.assert_allclose(p.data, tp.detach().numpy(), atol=1e-12, rtol=1e-10)


@needs_torch
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_loading_a_torch_optimizer_state_continues_like_torch(name):
    kw = {"SGD": {"lr": 0.1, "momentum": 0.9}, "Adam": {"lr": 0.05},
          "AdamW": {"lr": 0.05, "amsgrad": True},
          "RMSprop": {"lr": 0.01, "momentum": 0.2}}[name]  # fmt: skip
    dps, ths = _params()
    topt = getattr(torch.optim, name)(ths, **kw)
    for k in range(3):
        _set_grads(dps, ths, k)
        topt.step()
    tsd = topt.state_dict()
    sd = {
        "state": {i: {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in st.items()}
                  for i, st in tsd["state"].items()},
        "param_groups": copy.deepcopy(tsd["param_groups"]),
    }  # fmt: skip
    for p, tp in zip(dps, ths):
        p.data[...] = tp.detach().numpy()
    opt = getattr(optim, name)(dps)
    opt.load_state_dict(sd)
    _run(opt, topt, dps, ths, steps=3, atol=1e-12, rtol=1e-10)


def test_load_state_dict_copies_state_and_checks_structure():
    w = nn.Parameter(dp.ones(2))
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = dp.ones(2)
    opt.step()
    sd = opt.state_dict()
    opt2 = optim.SGD([nn.Parameter(dp.ones(2))], lr=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    buf2 = next(iter(opt2.state.values()))["momentum_buffer"]
    assert buf2.data is not sd["state"][0]["momentum_buffer"].data  # a copy
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [w]}, {"params": [nn.Parameter(dp.ones(1))]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([w, nn.Parameter(dp.ones(1))]).load_state_dict(sd)
    with pytest.raises(ValueError, match="has shape"):
        optim.SGD([nn.Parameter(dp.ones(3))], momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt2.load_state_dict({"state": {}})


def test_load_state_dict_casts_state_to_parameter_dtype():
    w = nn.Parameter(dp.ones(2, dtype=dp.float64))
    opt = optim.Adam([w])
    w.grad = dp.ones(2, dtype=dp.float64)
    opt.step()
    w32 = nn.Parameter(dp.ones(2))
    opt32 = optim.Adam([w32])
    opt32.load_state_dict(opt.state_dict())
    st = opt32.state[w32]
    assert st["exp_avg"].dtype == np.float32 and st["step"].dtype == np.float32
    assert float(st["step"]) == 1.0


@needs_torch
def test_state_dict_layout_matches_torch_before_and_after_steps():
    dps, ths = _params()
    for name in ["SGD", "Adam", "AdamW", "RMSprop"]:
        opt = getattr(optim, name)([{"params": dps[:1]}, {"params": dps[1:], "lr": 0.5}])
        topt = getattr(torch.optim, name)([{"params": ths[:1]}, {"params": ths[1:], "lr": 0.5}])
        _compare_state_dicts(opt.state_dict(), topt.state_dict())
        assert opt.state_dict()["param_groups"][1]["params"] == [1, 2]
        assert repr(opt) == repr(topt)


def test_optimizer_argument_errors():
    w = nn.Parameter(dp.ones(2))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Invalid momentum"):
        optim.SGD([w], momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD([w], nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon"):
        optim.Adam([w], eps=-1)
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        optim.AdamW([w], weight_decay=-1)
    with pytest.raises(ValueError, match="Invalid alpha"):
        optim.RMSprop([w], alpha=-0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}])
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([w, 3.0])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(NotImplementedError, match="fused"):
        optim.Adam([w], fused=True)


def test_zero_grad_and_closure_and_named_params():
    lin = nn.Linear(2, 1)
    opt = optim.SGD(lin.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    x = dp.ones(3, 2)

    def closure():
        opt.zero_grad()
        loss = lin(x).pow(2).mean()
        loss.backward()
        return loss

    before = lin.weight.data.copy()
    loss = opt.step(closure)
    assert isinstance(loss, dp.Tensor) and not np.array_equal(before, lin.weight.data)
    opt.zero_grad(set_to_none=False)
    assert float(lin.weight.grad.abs().sum()) == 0.0
    opt.zero_grad()
    assert lin.weight.grad is None


def test_sgd_plain_step_is_the_textbook_rule():
    w = nn.Parameter(dp.tensor([0.4, -0.2]))
    opt = optim.SGD([w], lr=0.5)
    w.grad = dp.tensor([0.1, 0.3])
    opt.step()
    np.testing.assert_allclose(w.data, [0.4 - 0.05, -0.2 - 0.15], rtol=1e-6)


def test_training_a_model_decreases_the_loss():
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = dp.randn(64, 3)
    y = (x * dp.tensor([1.0, -2.0, 0.5])).sum(dim=1, keepdim=True)
    for opt_cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop):
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        opt = opt_cls(model.parameters(), lr=0.02)
        first = None
        for _ in range(100):
            opt.zero_grad()
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
        assert loss.item() < 0.5 * first, opt_cls.__name__


# ----------------------------------------------------------------------------------------------
# schedulers
# ----------------------------------------------------------------------------------------------


def _sched_pair(make, lrs=(0.1, 0.05)):
    w = [nn.Parameter(dp.ones(1)), nn.Parameter(dp.ones(1))]
    tw = [torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))]
    opt = optim.SGD([{"params": [w[0]], "lr": lrs[0]}, {"params": [w[1]], "lr": lrs[1]}])
    topt = torch.optim.SGD([{"params": [tw[0]], "lr": lrs[0]}, {"params": [tw[1]], "lr": lrs[1]}])
    return opt, topt, make(lr_scheduler, opt), make(torch.optim.lr_scheduler, topt)


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "StepLR-default": lambda m, o: m.StepLR(o, 2),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "CosineAnnealingLR-eta": lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e)),
    "LambdaLR-list": lambda m, o: m.LambdaLR(o, [lambda e: 0.9**e, lambda e: e % 3 + 1]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.95),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=4),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=3),
}


@needs_torch
@pytest.mark.parametrize("kind", list(SCHEDULERS))
def test_scheduler_lr_sequence_matches_torch(kind):
    opt, topt, sched, tsched = _sched_pair(SCHEDULERS[kind])
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)
    for epoch in range(25):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        ours = [g["lr"] for g in opt.param_groups]
        theirs = [g["lr"] for g in topt.param_groups]
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15), f"epoch {epoch}"
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15)
        assert isinstance(sched.get_last_lr()[0], float)
    assert sched.last_epoch == tsched.last_epoch == 25
    assert opt.param_groups[0]["initial_lr"] == 0.1


@needs_torch
@pytest.mark.parametrize("kind", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "LambdaLR"])  # fmt: skip
def test_scheduler_state_dict_matches_torch_and_round_trips(kind):
    opt, topt, sched, tsched = _sched_pair(SCHEDULERS[kind])
    for _ in range(4):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    sd, tsd = sched.state_dict(), tsched.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        if k not in ("lr_lambdas",):
            assert sd[k] == tsd[k], k
    # a new optimizer and scheduler, restored from the state dicts, continue identically
    opt2, _, sched2, _ = _sched_pair(SCHEDULERS[kind])
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for _ in range(6):
        opt.step()
        opt2.step()
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


@needs_torch
@pytest.mark.parametrize("kind", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR"])
def test_scheduler_step_with_epoch_uses_closed_form_like_torch(kind):
    opt, topt, sched, tsched = _sched_pair(SCHEDULERS[kind])
    opt.step()
    topt.step()
    for epoch in [3, 7, 4, 12]:
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        with pytest.warns(UserWarning):
            tsched.step(epoch)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_scheduler_warns_when_stepped_before_the_optimizer():
    opt = optim.SGD([nn.Parameter(dp.ones(1))], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 1)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_scheduler_resume_requires_initial_lr():
    opt = optim.SGD([nn.Parameter(dp.ones(1))], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), 2)


def test_cosine_closed_form_values():
    opt = optim.SGD([nn.Parameter(dp.ones(1))], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.1)
    for t in range(1, 11):
        opt.step()
        sched.step()
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-12)


@needs_torch
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "patience": 1, "factor": 0.5},
        {"patience": 0, "cooldown": 2, "min_lr": 0.02},
        {"threshold_mode": "abs", "threshold": 0.1, "patience": 1},
    ],
)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    opt, topt, _, _ = _sched_pair(lambda m, o: None)
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.85, 0.86, 0.86, 0.87, 0.9, 0.5, 0.5, 0.5, 0.5]
    for m in metrics:
        sched.step(m)
        tsched.step(m)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(
            [g["lr"] for g in topt.param_groups], rel=1e-12
        )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: optim.SGD(p, lr=float("inf")), "Invalid learning rate: inf"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=float("inf")), "Invalid momentum value: inf"),
        (lambda p: optim.SGD(p, lr=0.1, weight_decay=float("nan")), "weight_decay value: nan"),
        (lambda p: optim.Adam(p, lr=float("nan")), "Invalid learning rate: nan"),
        (lambda p: optim.Adam(p, betas=(0.9, float("inf"))), "beta parameter at index 1"),
        (lambda p: optim.AdamW(p, eps=float("inf")), "Invalid epsilon value: inf"),
        (lambda p: optim.RMSprop(p, alpha=float("-inf")), "Invalid alpha value: -inf"),
        (lambda p: optim.RMSprop(p, lr="0.1"), "Invalid learning rate: '0.1'"),
    ],
)
def test_non_finite_hyperparameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make([dp.zeros(2, requires_grad=True)])


@pytest.mark.parametrize(
    "make",
    [
        lambda o: optim.lr_scheduler.StepLR(o, step_size=1, gamma=float("inf")),
        lambda o: optim.lr_scheduler.ExponentialLR(o, gamma=float("nan")),
    ],
)
def test_non_finite_scheduler_gamma_is_refused(make):
    opt = optim.SGD([dp.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="Invalid gamma value"):
        make(opt)
