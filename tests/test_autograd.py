"""Graph semantics as PyTorch: accumulation, retain_graph, no_grad, errors, depth, leaks,
higher-order gradients, autograd.grad, retain_grad, and the peers' known bugs as regressions."""

import gc
import weakref

import numpy as np
import pytest
from oracle import needs_torch, rand, torch

import deltaprop as dp


def test_gradients_accumulate_across_backward_calls():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [3 + 2, 3 + 4]


def test_second_backward_without_retain_graph_raises():
    """micrograd's bug: a second backward silently doubled gradients."""
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_retain_graph_allows_second_backward():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).exp().sum()
    y.backward(retain_graph=True)
    g1 = x.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * g1)


def test_value_used_twice_accumulates_in_correct_order():
    """b = a + a; c = b + b (micrograd topological-order regression): dc/da = 4."""
    a = dp.tensor(3.0, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad.item() == 4.0
    a2 = dp.tensor(2.0, requires_grad=True)
    d = a2 * a2  # d = a^2, e = d * a = a^3 -> 3a^2 = 12
    e = d * a2
    e.backward()
    assert a2.grad.item() == 12.0


def test_no_grad_builds_no_graph():
    x = dp.tensor([1.0], requires_grad=True)
    with dp.no_grad():
        y = x * 2 + 1
    assert not y.requires_grad and y.grad_fn is None
    assert dp.is_grad_enabled()

    @dp.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with dp.no_grad():
        with dp.enable_grad():
            assert (x * 2).requires_grad


def test_non_scalar_backward_needs_gradient():
    x = dp.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="only for scalar outputs.*shape \\(3,\\)"):
        y.backward()
    y.backward(dp.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]
    with pytest.raises(RuntimeError, match="gradient has shape"):
        (x * 2).backward(dp.ones(4))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dp.ones(2).sum().backward()


def test_long_chain_has_no_recursion_error():
    x = dp.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_graph_is_freed_by_reference_counting():
    """No reference cycles: dropping the output frees the graph without the cyclic GC."""
    gc.disable()
    try:
        x = dp.randn(4, requires_grad=True)
        y = (x * 2).exp().sum()
        ref = weakref.ref(y.grad_fn)
        mid = weakref.ref(y.grad_fn.inputs[0])
        del y
        assert ref() is None and mid() is None
    finally:
        gc.enable()


def test_training_like_loop_keeps_memory_flat():
    import tracemalloc

    w = dp.randn(16, 16, requires_grad=True)
    x = dp.randn(32, 16)

    def step():
        loss = ((x @ w).tanh() ** 2).mean()
        loss.backward()
        w.grad = None

    for _ in range(200):
        step()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(10_000):
        step()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, f"memory grew by {grown} bytes over 10,000 iterations"


def test_detach_and_leaf_flags():
    x = dp.tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.grad_fn is not None
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.data is y.data


def test_retain_grad_keeps_non_leaf_gradient():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 12.0] and x.grad.tolist() == [18.0, 36.0]
    assert h.retains_grad


def test_autograd_grad_does_not_write_grad():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    (g,) = dp.autograd.grad((x**2).sum(), x)
    assert g.tolist() == [2.0, 4.0] and x.grad is None
    y = dp.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="does not appear in the graph"):
        dp.autograd.grad((x * 2).sum(), [x, y])
    gx, gy = dp.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx.tolist() == [2.0, 2.0]


def test_autograd_grad_wrt_intermediate():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    (gh,) = dp.autograd.grad((h * 3).sum(), h)
    assert gh.tolist() == [3.0, 3.0]


def test_second_derivative_of_cube_is_6x():
    x = dp.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    (dx,) = dp.autograd.grad((x**3).sum(), x, create_graph=True)
    np.testing.assert_allclose(dx.data, 3 * x.data**2)
    (dxx,) = dp.autograd.grad(dx.sum(), x)
    np.testing.assert_allclose(dxx.data, 6 * x.data)


def test_third_derivative_via_backward_create_graph():
    x = dp.tensor(1.5, dtype=dp.float64, requires_grad=True)
    y = x.tanh()
    (g1,) = dp.autograd.grad(y, x, create_graph=True)
    (g2,) = dp.autograd.grad(g1, x, create_graph=True)
    g2.backward()
    t = np.tanh(1.5)
    # d3/dx3 tanh = -2 (1 - t^2) (1 - 3 t^2)
    np.testing.assert_allclose(x.grad.item(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-10)


def test_backward_create_graph_makes_differentiable_grad():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g = x.grad
    x.grad = None
    g.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]


@needs_torch
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "softmax"])
def test_hessian_vector_product_of_small_mlp_matches_torch(act):
    x_np, t_np = rand(5, 3, seed=1), rand(5, 2, seed=2)
    w1_np, b1_np = rand(3, 4, seed=3), rand(4, seed=4)
    w2_np, b2_np = rand(4, 2, seed=5), rand(2, seed=6)
    v_np = [rand(3, 4, seed=7), rand(4, seed=8), rand(4, 2, seed=9), rand(2, seed=10)]

    def run(lib, tensor):
        ps = [tensor(a, requires_grad=True) for a in (w1_np, b1_np, w2_np, b2_np)]
        x, t = tensor(x_np), tensor(t_np)
        h = x @ ps[0] + ps[1]
        h = h.softmax(1) if act == "softmax" else getattr(h, act)()
        out = (h @ ps[2] + ps[3]).log_softmax(1)
        loss = ((out - t) ** 2).mean() + (h * h).sum() * 0.1
        grads = lib.autograd.grad(loss, ps, create_graph=True)
        gv = sum((g * tensor(v)).sum() for g, v in zip(grads, v_np))
        hv = lib.autograd.grad(gv, ps)
        return [g.detach().numpy() if lib is torch else g.data for g in hv]

    ours = run(
        dp,
        lambda a, requires_grad=False: dp.tensor(a, dtype=dp.float64, requires_grad=requires_grad),
    )
    theirs = run(torch, lambda a, requires_grad=False: torch.tensor(a, requires_grad=requires_grad))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-8, atol=1e-10)


def test_create_graph_second_order_through_indexing_and_reductions():
    x = dp.tensor(rand(3, 4, seed=1), dtype=dp.float64, requires_grad=True)

    def f(x):
        (g,) = dp.autograd.grad((x[[0, 0, 2]].exp() * x.max(1, keepdim=True).values).sum()
                                + x.var(1).sum() + x.softmax(1)[:, 0].sum(), x,
                                create_graph=True)  # fmt: skip
        return (g * g).sum()

    assert dp.gradcheck(f, (x,), atol=1e-4)


def test_gradcheck_reports_input_and_element():
    class BadSquare(dp.Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            (x,) = self.saved_inputs()
            return (gy * 3 * x,)  # wrong: should be 2x

    x = dp.tensor([[1.0, 2.0]], dtype=dp.float64, requires_grad=True)
    with pytest.raises(dp.GradcheckError, match=r"input 0 \(shape \(1, 2\)\) at element \(0, 0\)"):
        dp.gradcheck(lambda t: BadSquare().apply(t), (x,))


def test_setitem_and_inplace_rules():
    x = dp.zeros(3)
    x[1] = 5.0
    assert x.tolist() == [0.0, 5.0, 0.0]
    w = dp.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        w[0] = 1.0
    with dp.no_grad():
        w[0] = 1.0
    assert w.tolist()[0] == 1.0


def test_leaf_gradients_never_share_memory():
    """add passes one array to both inputs and reshape's gradient is a view: each leaf's .grad
    must still own its memory, since later backward calls accumulate into it in place."""
    x = dp.zeros(4, requires_grad=True)
    w = dp.zeros(2, 2, requires_grad=True)
    b = dp.zeros(4, requires_grad=True)
    (x + w.reshape(4) + b).sum().backward()
    x.grad.data[0] = 100.0
    assert w.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]] and b.grad.tolist() == [1.0] * 4
    (x + w.reshape(4) + b).sum().backward()
    assert x.grad.tolist() == [101.0, 2.0, 2.0, 2.0]
    assert w.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]] and b.grad.tolist() == [2.0] * 4


def test_user_gradient_array_is_not_aliased():
    g = np.ones(3, dtype=np.float32)
    x = dp.zeros(3, requires_grad=True)
    x.backward(g)
    x.grad.data[0] = 5.0
    assert g[0] == 1.0


def test_gradcheck_handles_non_contiguous_inputs():
    base = np.arange(6.0).reshape(2, 3) / 7
    for arr in (base.T, np.asfortranarray(base), base[:, ::2]):
        x = dp.tensor(arr, dtype=dp.float64, requires_grad=True)
        x.data = arr  # keep the strided layout
        assert dp.gradcheck(lambda t: t.tanh() * t, (x,))


# ----------------------------------------------------------------------------------------------
# anomaly detection
# ----------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's divide-by-zero warnings
def test_detect_anomaly_names_the_first_op_with_a_non_finite_gradient():
    from deltaprop.errors import AnomalyError

    x = dp.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    w = dp.ones(3, 2, requires_grad=True)
    # log(0) = -inf; exp(-inf) = 0 passes a finite gradient (0) back, log's backward 0/0 = NaN
    loss = (x.log().exp() @ w).sum()
    with dp.autograd.detect_anomaly():
        assert dp.autograd.is_anomaly_enabled()
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    assert not dp.autograd.is_anomaly_enabled()
    msg = str(info.value)
    assert "backward of Log (forward inputs of shape (1, 3))" in msg
    assert "a NaN gradient for input 0 (shape (1, 3))" in msg
    assert "upstream gradient was finite" in msg
    assert isinstance(info.value, RuntimeError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_shapes_of_a_binary_op_and_the_inactive_default():
    from deltaprop.errors import AnomalyError

    def run():
        a = dp.tensor([[1.0], [0.0]], requires_grad=True)
        b = dp.tensor([[0.0, 2.0, 3.0]], requires_grad=True)
        (b / a).sum().backward()  # d/db = 1/a = inf where a = 0
        return a

    a = run()  # off by default: the NaN reaches .grad silently, as in PyTorch
    assert not np.isfinite(a.grad.data).all()

    @dp.autograd.detect_anomaly()
    def checked():
        return run()

    want = (
        r"backward of Div \(forward inputs of shape \(1, 3\), \(2, 1\)\) returned an infinite "
        r"gradient for input 0 \(shape \(1, 3\)\)"
    )
    with pytest.raises(AnomalyError, match=want):
        checked()
    with dp.autograd.detect_anomaly(check_nan=False):
        run()  # check_nan=False: detection on, NaN checks off
    with dp.autograd.set_detect_anomaly(True):
        assert dp.autograd.is_anomaly_check_nan_enabled()
        with pytest.raises(AnomalyError):
            run()
    assert not dp.autograd.is_anomaly_enabled()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_checks_recorded_backward_and_passes_finite_graphs():
    from deltaprop.errors import AnomalyError

    x = dp.tensor([0.0, 4.0], dtype=dp.float64, requires_grad=True)
    with dp.autograd.detect_anomaly():
        y = dp.tensor([1.0, 4.0], dtype=dp.float64, requires_grad=True)
        (g,) = dp.autograd.grad((y.sqrt() * y).sum(), y, create_graph=True)
        np.testing.assert_allclose(g.data, 1.5 * np.sqrt([1.0, 4.0]))
        with pytest.raises(AnomalyError, match="backward of Sqrt"):
            dp.autograd.grad(x.sqrt().sum(), x, create_graph=True)
