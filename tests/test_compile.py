"""deltaprop.compile: a replayed training step gives exactly eager mode's numbers.

Every comparison is ``np.array_equal``: the replay runs the same NumPy calls in the same order
and dtypes as eager mode, so losses, gradients, parameters, optimizer state and running
statistics agree to the last bit, over many steps.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn, optim
from deltaprop.compiler import CompiledStep, CompileWarning
from deltaprop.compiler.kernels import LinearKernel, PassKernel, ReluKernel, ReluMaxPoolKernel
from deltaprop.compiler.record import Recorder, Unrecordable
from deltaprop.nn import functional as F

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def mlp_dropout() -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 32), nn.ReLU(),
        nn.Linear(32, 5),
    )  # fmt: skip


def lenet_bn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def tiny() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    )


def make_step(model: nn.Module, opt: optim.Optimizer, loss_fn, sched=None):
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss

    return step


def twins(build, make_opt, loss_fn, seed=0, sched=None):
    """Two identical (model, optimizer, step) triples: one to run eagerly, one to compile."""
    out = []
    for _ in range(2):
        dp.manual_seed(seed)
        model = build()
        opt = make_opt(model.parameters())
        s = sched(opt) if sched is not None else None
        out.append((model, opt, make_step(model, opt, loss_fn, s), s))
    return out


def batches(n, x_shape, classes=None, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = dp.from_numpy(rng.standard_normal(x_shape).astype(np.float32))
        if classes is None:
            y = dp.from_numpy(rng.standard_normal((x_shape[0], 1)).astype(np.float32))
        else:
            y = dp.from_numpy(rng.integers(0, classes, x_shape[0]))
        out.append((x, y))
    return out


def run_both(eager_step, compiled, data, steps, seed=7):
    """Run both steps over ``data`` (cycled) from the same generator state; return losses."""
    dp.manual_seed(seed)
    le = [eager_step(*data[i % len(data)]).data.copy() for i in range(steps)]
    dp.manual_seed(seed)
    lc = [compiled(*data[i % len(data)]).data.copy() for i in range(steps)]
    return le, lc


def assert_same_state(m1: nn.Module, m2: nn.Module, o1=None, o2=None) -> None:
    for (n, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert np.array_equal(a.data, b.data), n
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert np.array_equal(p.grad.data, q.grad.data)
    if o1 is not None:
        s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
        assert s1.keys() == s2.keys()
        for k in s1:
            for name in s1[k]:
                assert np.array_equal(np.asarray(s1[k][name]), np.asarray(s2[k][name])), name


# ----------------------------------------------------------------------------------------------
# bit-identical to eager mode
# ----------------------------------------------------------------------------------------------


def test_mlp_dropout_adam_is_bit_identical():
    (m1, o1, s1, _), (m2, o2, s2, _) = twins(
        mlp_dropout, lambda p: optim.Adam(p, lr=1e-2), F.cross_entropy
    )
    cs = dp.compile(s2)
    data = batches(4, (16, 20), classes=5)
    le, lc = run_both(s1, cs, data, 30)
    assert cs.eager_reason is None
    assert cs.recordings == 2 and cs.replays == 28
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)


def test_dropout_draws_anew_on_every_replay():
    dp.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5))
    x = dp.ones(64, 32)

    @dp.compile
    def step(x):
        return model(x)

    outs = [step(x).data for _ in range(5)]
    assert step.replays == 3
    assert not np.array_equal(outs[3], outs[4])  # a fresh mask each call
    assert set(np.unique(outs[4]).tolist()) == {0.0, 2.0}


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
        nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


@pytest.mark.parametrize("build", [lenet_bn, lenet], ids=["batchnorm", "relu-pool fused"])
def test_lenet_sgd_is_bit_identical(build):
    (m1, o1, s1, _), (m2, o2, s2, _) = twins(
        build, lambda p: optim.SGD(p, lr=0.05, momentum=0.9), F.cross_entropy
    )
    cs = dp.compile(s2)
    data = batches(3, (8, 1, 28, 28), classes=10)
    le, lc = run_both(s1, cs, data, 8)
    assert cs.replays == 6
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)  # includes the BatchNorm running statistics


def test_tiny_mlp_is_bit_identical():
    (m1, o1, s1, _), (m2, o2, s2, _) = twins(
        tiny, lambda p: optim.SGD(p, lr=0.05, momentum=0.9), F.mse_loss
    )
    cs = dp.compile(s2)
    data = batches(1, (100, 2))
    le, lc = run_both(s1, cs, data, 100)
    assert cs.replays == 98
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)


def test_scheduler_inside_the_step_is_replayed():
    (m1, o1, s1, sc1), (m2, o2, s2, sc2) = twins(
        tiny,
        lambda p: optim.SGD(p, lr=0.1),
        F.mse_loss,
        sched=lambda o: optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    )
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(2, (10, 2)), 12)
    assert cs.replays == 10
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] < 0.1
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2)


def test_fused_linear_relu_in_place():
    """The ReLU after a linear layer runs in place on the GEMM output, its backward in place on
    the incoming gradient, and the numbers are the unfused pair's."""
    (m1, o1, s1, _), (m2, o2, s2, _) = twins(
        lambda: nn.Sequential(
            nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
        ),  # fmt: skip
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
        F.cross_entropy,
    )
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(3, (32, 8), classes=3), 10)
    (prog,) = next(iter(cs._programs.values()))
    relus = [k for k in prog.kernels if isinstance(k, ReluKernel)]
    linears = [k for k in prog.kernels if isinstance(k, LinearKernel)]
    assert len(relus) == 2 and len(linears) == 3
    for r in relus:
        assert r.grad_in_place
    # each ReLU's output, dead once the next layer's weight gradient is computed, takes that
    # layer's input gradient
    assert linears[1].gx_into is relus[0].out and linears[2].gx_into is relus[1].out
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)
    # in place on the GEMM output: watch one replay's forward
    seen = []
    i = prog.steps.index(relus[0].forward)
    forward = prog.steps[i]
    prog.steps[i] = lambda: (forward(), seen.append(relus[0].out.data is linears[0].out.data))
    cs(*batches(1, (32, 8), classes=3)[0])
    assert seen == [True]


@pytest.mark.parametrize(
    "pool",
    [
        lambda: nn.MaxPool2d(2),
        lambda: nn.MaxPool2d(3, stride=2, padding=1),  # overlapping windows, -inf padding
        lambda: nn.MaxPool2d(2, ceil_mode=True),  # a last window that sticks out
    ],
    ids=["2x2", "3x3-overlapping", "ceil"],
)
def test_relu_then_max_pool_fused(pool):
    """A ReLU read only by a max pooling moves behind it (relu and max commute): the pool runs
    on the ReLU's input and the ReLU on the pool's output. Losses, gradients and parameters are
    bit-identical to eager mode, also where whole windows are negative (the biases start at -1
    so that many are)."""

    def build_with_head():
        body = nn.Sequential(
            nn.Conv2d(2, 4, 3), nn.ReLU(), pool(), nn.Conv2d(4, 4, 3), nn.ReLU(), pool(),
            nn.Flatten(),
        )  # fmt: skip
        for m in body:
            if isinstance(m, nn.Conv2d):
                m.bias.data -= 1.0
        n = body(dp.zeros(1, 2, 15, 15)).shape[1]
        return nn.Sequential(body, nn.Linear(n, 3))

    (m1, o1, s1, _), (m2, o2, s2, _) = twins(
        build_with_head, lambda p: optim.SGD(p, lr=0.1, momentum=0.9), F.cross_entropy
    )
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(3, (6, 2, 15, 15), classes=3), 8)
    (prog,) = next(iter(cs._programs.values()))
    assert sum(isinstance(k, ReluMaxPoolKernel) for k in prog.kernels) == 2
    assert sum(isinstance(k, PassKernel) for k in prog.kernels) == 2
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)
    # the biases made windows whose maximum is negative: the case where the two orders route
    # the (zero) gradient differently
    x = batches(1, (6, 2, 15, 15), classes=3)[0][0]
    first = m2[0][0](x).data
    assert first.max() > 0 and (first < 0).mean() > 0.5


def test_relu_read_twice_is_not_moved_behind_the_pool():
    """When something else also reads the ReLU's output, the ReLU stays where it is."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.head = nn.Linear(2 * 3 * 3 + 2 * 6 * 6, 2)

        def forward(self, x):
            r = F.relu(self.conv(x))
            p = F.max_pool2d(r, 2)
            return self.head(dp.cat([p.flatten(1), r.flatten(1)], dim=1))

    (m1, o1, s1, _), (m2, o2, s2, _) = twins(Twice, lambda p: optim.SGD(p, lr=0.1), F.cross_entropy)
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(2, (4, 1, 8, 8), classes=2), 5)
    (prog,) = next(iter(cs._programs.values()))
    assert not any(isinstance(k, (ReluMaxPoolKernel, PassKernel)) for k in prog.kernels)
    for a, b in zip(le, lc):
        assert np.array_equal(a, b)
    assert_same_state(m1, m2, o1, o2)


def test_returned_tensors_are_not_overwritten_by_later_replays():
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    step = dp.compile(lambda x: model(x))
    xs = [dp.randn(3, 4) for _ in range(5)]
    with dp.no_grad():
        outs = [step(x) for x in xs]
        assert step.replays == 3
        for x, y in zip(xs, outs):
            assert np.array_equal(y.data, model(x).data)


# ----------------------------------------------------------------------------------------------
# guards: record again
# ----------------------------------------------------------------------------------------------


def test_new_shapes_and_modes_record_again():
    dp.manual_seed(0)
    model = mlp_dropout()
    opt = optim.SGD(model.parameters(), lr=0.01)
    cs = dp.compile(make_step(model, opt, F.cross_entropy))
    a, b = batches(1, (8, 20), classes=5)[0], batches(1, (4, 20), classes=5)[0]
    for _ in range(3):
        cs(*a)
    assert (cs.recordings, cs.replays) == (2, 1)
    for _ in range(3):
        cs(*b)  # another batch size
    assert (cs.recordings, cs.replays) == (4, 2)
    model.eval()  # dropout off: another program
    for _ in range(3):
        cs(*a)
    assert (cs.recordings, cs.replays) == (6, 3)
    model.train()
    cs(*a)
    assert (cs.recordings, cs.replays) == (6, 4)  # the first program again
    model[0].weight.requires_grad_(False)  # another set of parameters
    cs(*a)
    assert cs.recordings == 7
    cs(*a)
    cs(*a)
    assert (cs.recordings, cs.replays) == (8, 5)
    model[0].weight.requires_grad_(True)  # and back: the first program again
    cs(*a)
    assert (cs.recordings, cs.replays) == (8, 6)


# ----------------------------------------------------------------------------------------------
# what cannot be replayed runs eagerly, with one warning
# ----------------------------------------------------------------------------------------------


def _eager_fallback(step_body):
    """Compile ``step_body(model, opt, x, y)``; check one warning and eager numbers."""
    results = []
    for compiled in (False, True):
        dp.manual_seed(0)
        model = tiny()
        opt = optim.SGD(model.parameters(), lr=0.05)

        def step(x, y, model=model, opt=opt):
            return step_body(model, opt, x, y)

        fn = dp.compile(step) if compiled else step
        data = batches(3, (10, 2))
        for (x, _), sign in zip(data, (1.0, -1.0, 1.0)):
            x.data[0, 0] = sign  # the branch test below takes both ways
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            losses = [fn(*data[i % 3]).data.copy() for i in range(6)]
        results.append((losses, [p.data.copy() for p in model.parameters()], w, fn))
    (l1, p1, _, _), (l2, p2, w, fn) = results
    compile_warnings = [x for x in w if issubclass(x.category, CompileWarning)]
    assert len(compile_warnings) == 1
    assert fn.replays == 0 and fn.eager_reason
    for a, b in zip(l1 + p1, l2 + p2):
        assert np.array_equal(a, b)
    return str(compile_warnings[0].message)


def test_item_inside_the_step_falls_back():
    def body(model, opt, x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        if loss.item() > 1e9:  # Python control flow on a value
            return loss
        loss.backward()
        opt.step()
        return loss

    assert "item" in _eager_fallback(body)


def test_data_dependent_branch_without_item_falls_back():
    def body(model, opt, x, y):
        opt.zero_grad()
        out = model(x)
        if x.data[0, 0] > 0:  # reads the array directly: caught by comparing two recordings
            out = out * 2
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        return loss

    assert "differ" in _eager_fallback(body)


def test_random_draw_outside_an_op_falls_back():
    def body(model, opt, x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x + dp.randn(*x.shape) * 0.01), y)
        loss.backward()
        opt.step()
        return loss

    assert "random" in _eager_fallback(body)


def test_fullgraph_raises_instead():
    model = tiny()

    @dp.compile(fullgraph=True)
    def step(x):
        out = model(x)
        print(out.sum().item())
        return out

    with pytest.raises(Unrecordable, match="item"):
        step(dp.ones(3, 2))


def test_non_tensor_result_falls_back():
    model = tiny()
    step = dp.compile(lambda x: model(x).sum().detach().numpy())
    with pytest.warns(CompileWarning):
        step(dp.ones(3, 2))
    assert step.eager_reason


def test_recorder_restores_the_engine():
    from deltaprop.tensor import Function, Tensor

    before = (Function.__dict__["apply"], Tensor.__dict__["item"], dp.autograd.run_backward)
    with pytest.raises(ZeroDivisionError):
        with Recorder():
            assert Recorder.active()
            1 / 0
    assert not Recorder.active()
    assert (Function.__dict__["apply"], Tensor.__dict__["item"], dp.autograd.run_backward) == before


def test_disable_and_bad_arguments():
    step = dp.compile(lambda x: x * 2, disable=True)
    assert isinstance(step, CompiledStep)
    assert np.array_equal(step(dp.ones(2)).data, [2.0, 2.0])
    assert step.replays == 0
    with pytest.raises(TypeError, match="callable"):
        dp.compile(3)
    with pytest.raises(ValueError, match="cache_size_limit"):
        dp.compile(lambda x: x, cache_size_limit=0)


def test_ops_after_backward_and_a_metric_result():
    """Ops that run after ``backward()`` (a metric computed under no_grad) are replayed too."""
    (m1, o1, s1, _), (m2, o2, _, _) = twins(
        mlp_dropout, lambda p: optim.SGD(p, lr=0.1), F.cross_entropy
    )

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            with dp.no_grad():
                margin = (out * out).mean()
            return loss, margin

        return step

    eager, compiled = make(m1, o1), dp.compile(make(m2, o2))
    data = batches(3, (16, 20), classes=5)
    for i in range(8):
        dp.manual_seed(i)
        a = eager(*data[i % 3])
        dp.manual_seed(i)
        b = compiled(*data[i % 3])
        assert all(np.array_equal(u.data, v.data) for u, v in zip(a, b))
    assert compiled.replays == 6
    assert_same_state(m1, m2, o1, o2)


@pytest.mark.parametrize("model", ["mlp", "lenet5"])
def test_train_compile_gives_the_eager_run(tmp_path, model):
    """``deltaprop train --compile`` (``train(compile_step=True)``): the same metrics and weights
    as the eager run, the last (smaller) batch of each epoch included."""
    from deltaprop.training import TrainSettings, load_checkpoint, train

    settings = TrainSettings(
        dataset="digits", model=model, epochs=3, batch_size=100, dropout=0.2, seed=3
    )
    quiet = dict(progress=False, plots=False, echo=lambda s: None)
    train(settings, tmp_path / "eager", **quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # replayed, not run eagerly
        train(settings, tmp_path / "compiled", compile_step=True, **quiet)
    for name in ("metrics.csv",):
        a = (tmp_path / "eager" / name).read_text().splitlines()
        b = (tmp_path / "compiled" / name).read_text().splitlines()
        assert [r.split(",")[:5] for r in a] == [r.split(",")[:5] for r in b]
    ca = load_checkpoint(tmp_path / "eager" / "checkpoints" / "last.safetensors")
    cb = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.safetensors")
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert np.array_equal(np.asarray(ca["model"][k]), np.asarray(cb["model"][k])), k


def test_forward_only_in_grad_mode_runs_eagerly_and_stays_differentiable():
    dp.manual_seed(0)
    model = tiny()
    fwd = dp.compile(model)
    x = dp.ones(3, 2)
    with pytest.warns(CompileWarning, match="later backward"):
        y = fwd(x)
    for _ in range(3):
        y = fwd(x)
        y.sum().backward()  # the graph is there: eager mode
    assert model[0].weight.grad is not None and fwd.replays == 0
    # under no_grad (inference) the same forward pass is replayed
    infer = dp.compile(model)
    with dp.no_grad():
        outs = [infer(x) for _ in range(4)]
    assert infer.replays == 2 and not outs[-1].requires_grad
    assert np.array_equal(outs[-1].data, outs[0].data)


def test_retain_grad_elsewhere_does_not_stop_compiling():
    """retain_grad() on a tensor outside the step (it sets a process-wide flag) is no reason to
    run eagerly; retain_grad() inside the step is."""
    dp.tensor([1.0], requires_grad=True).mul(2).retain_grad()
    (m1, o1, s1, _), (m2, o2, s2, _) = twins(tiny, lambda p: optim.SGD(p, lr=0.1), F.mse_loss)
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(2, (10, 2)), 5)
    assert cs.replays == 3
    assert all(np.array_equal(a, b) for a, b in zip(le, lc))

    def body(model, opt, x, y):
        opt.zero_grad()
        out = model(x)
        out.retain_grad()
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        return loss

    assert "retain_grad" in _eager_fallback(body)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: optim.SGD(p, lr=0.1, momentum=0.5, weight_decay=1e-2),
        lambda p: optim.SGD(p, lr=0.1),
        lambda p: optim.RMSprop(p, lr=1e-2),
        lambda p: optim.AdamW(p, lr=1e-2),
    ],
)
def test_optimizers_and_an_unused_parameter(make_opt):
    """Every optimizer configuration replays exactly; a parameter outside the graph (no
    gradient) is left alone, as the optimizer leaves it."""

    class WithSpare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = tiny()
            self.spare = nn.Linear(2, 2)  # never called: its parameters get no gradient

        def forward(self, x):
            return self.body(x)

    (m1, o1, s1, _), (m2, o2, s2, _) = twins(WithSpare, make_opt, F.mse_loss)
    cs = dp.compile(s2)
    le, lc = run_both(s1, cs, batches(2, (10, 2)), 6)
    assert cs.replays == 4
    assert all(np.array_equal(a, b) for a, b in zip(le, lc))
    assert_same_state(m1, m2, o1, o2)
    assert m2.spare.weight.grad is None


def test_given_gradient_is_never_written_eager_or_compiled():
    """``(a + b).backward(g)`` repeated: the gradients accumulate (3 calls: 3 g), and g itself
    is left alone (the add passes g on as is; it must be copied before it can reach a .grad)."""
    for compiled in (False, True):
        a = dp.tensor([1.0, 2.0], requires_grad=True)
        b = dp.tensor([3.0, 4.0], requires_grad=True)
        g = dp.tensor([1.0, 1.0])

        def op(a=a, b=b, g=g):
            (a + b).backward(g)

        fn = dp.compile(op) if compiled else op
        for _ in range(4):
            fn()
        assert g.tolist() == [1.0, 1.0]
        assert a.grad.tolist() == b.grad.tolist() == [4.0, 4.0]
        assert a.grad.data is not b.grad.data


def test_work_on_grad_arrays_is_caught_by_the_first_replay():
    """NumPy work the recorder cannot see (gradient clipping on the .grad arrays, a hand-made
    update through .data) makes the checked first replay differ from eager mode: eager from
    then on, one warning, eager numbers."""

    def clipped(model, opt, x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        opt.step()
        return loss

    assert "differs from eager" in _eager_fallback(clipped)

    def by_hand(model, opt, x, y):
        for p in model.parameters():
            p.grad = None
        loss = F.mse_loss(model(x), y)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.05 * p.grad.data
        return loss

    assert "differs from eager" in _eager_fallback(by_hand)


def test_evaluation_step_in_eval_mode_is_replayed_exactly():
    """An evaluation step (eval mode, no_grad: BatchNorm on running statistics, dropout off)
    replays exactly and follows the running statistics as training changes them."""
    dp.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )
    opt = optim.SGD(model.parameters(), lr=0.1)
    train_step = dp.compile(make_step(model, opt, F.cross_entropy))

    @dp.compile
    def evaluate(x):
        with dp.no_grad():
            return model(x)

    data = batches(2, (16, 6), classes=3)
    x_eval = batches(1, (5, 6))[0][0]
    for i in range(6):
        model.train()
        train_step(*data[i % 2])
        model.eval()
        got = evaluate(x_eval)
        with dp.no_grad():
            want = model(x_eval)
        assert np.array_equal(got.data, want.data)
    assert evaluate.replays == 4 and train_step.replays == 4


def test_parameters_of_another_dtype_record_again():
    dp.manual_seed(0)
    model = tiny()
    opt = optim.SGD(model.parameters(), lr=0.1)
    cs = dp.compile(make_step(model, opt, F.mse_loss))
    x, y = batches(1, (10, 2))[0]
    for _ in range(3):
        cs(x, y)
    model.double()
    x64, y64 = dp.tensor(x.data, dtype=dp.float64), dp.tensor(y.data, dtype=dp.float64)
    for _ in range(3):
        loss = cs(x64, y64)
    assert loss.dtype == dp.float64 and cs.recordings == 4


def test_the_compiled_step_example_runs_and_matches_eager(capsys):
    """``examples/compiled_step.py``: eager and compiled training from the same seed end with
    bit-identical parameters (and the script says so)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "compiled_step.py"
    spec = importlib.util.spec_from_file_location("compiled_step_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(epochs=2) is True
    out = capsys.readouterr().out
    assert "parameters bit-identical after 2 epochs: True" in out
