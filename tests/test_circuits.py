"""The worked circuits and gate behaviours of backprop-notes.md."""

import numpy as np

import deltaprop as dp


def test_x_plus_y_times_z_circuit():
    """q = x + y, f = q z with x=-2, y=5, z=-4: f=-12, df/dx = df/dy = z = -4, df/dz = q = 3."""
    x = dp.tensor(-2.0, requires_grad=True)
    y = dp.tensor(5.0, requires_grad=True)
    z = dp.tensor(-4.0, requires_grad=True)
    q = x + y
    q.retain_grad()
    f = q * z
    f.backward()
    assert f.item() == -12.0
    assert (x.grad.item(), y.grad.item(), z.grad.item(), q.grad.item()) == (-4.0, -4.0, 3.0, -4.0)


def test_add_gate_distributes():
    a, b = dp.tensor(3.0, requires_grad=True), dp.tensor(-1.0, requires_grad=True)
    (a + b).backward(dp.tensor(2.5))
    assert a.grad.item() == b.grad.item() == 2.5


def test_mul_gate_swaps():
    a, b = dp.tensor(3.0, requires_grad=True), dp.tensor(-1.0, requires_grad=True)
    (a * b).backward(dp.tensor(2.0))
    assert a.grad.item() == -2.0 and b.grad.item() == 6.0


def test_max_gate_routes():
    a, b = dp.tensor(3.0, requires_grad=True), dp.tensor(-1.0, requires_grad=True)
    dp.maximum(a, b).backward(dp.tensor(2.0))
    assert a.grad.item() == 2.0 and b.grad.item() == 0.0


def test_sigmoid_gate_is_one_gate_with_s_times_1_minus_s():
    x = dp.tensor(0.7, dtype=dp.float64, requires_grad=True)
    s = x.sigmoid()
    s.backward()
    sv = 1 / (1 + np.exp(-0.7))
    assert s.grad_fn.name == "Sigmoid"
    np.testing.assert_allclose(x.grad.item(), sv * (1 - sv), rtol=1e-15)
    # the same function from four small gates gives the same gradient
    x2 = dp.tensor(0.7, dtype=dp.float64, requires_grad=True)
    (1 / (1 + (-x2).exp())).backward()
    np.testing.assert_allclose(x2.grad.item(), x.grad.item(), rtol=1e-14)


def test_fan_out_gradients_add_up():
    x = dp.tensor(2.0, requires_grad=True)
    y = x * 3 + x * x  # x feeds two consumers: 3 + 2x = 7
    y.backward()
    assert x.grad.item() == 7.0


def test_vectorised_two_layer_minibatch_form():
    """The notes' mini-batch equations D2, dW2, D1, dW1 vs the engine."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3)), rng.uniform(size=(5, 2))
    W1, b1, W2, b2 = (rng.normal(size=s) for s in [(3, 4), (4,), (4, 2), (2,)])
    m = X.shape[0]
    i1 = X @ W1 + b1
    o1 = 1 / (1 + np.exp(-i1))
    i2 = o1 @ W2 + b2
    o2 = 1 / (1 + np.exp(-i2))
    D2 = (o2 - Y) * o2 * (1 - o2) / m
    dW2, db2 = o1.T @ D2, D2.sum(0)
    D1 = (D2 @ W2.T) * o1 * (1 - o1)
    dW1, db1 = X.T @ D1, D1.sum(0)

    ps = [dp.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    h = (dp.tensor(X) @ ps[0] + ps[1]).sigmoid()
    out = (h @ ps[2] + ps[3]).sigmoid()
    cost = ((out - dp.tensor(Y)) ** 2).sum() / (2 * m)
    cost.backward()
    for p, g in zip(ps, (dW1, db1, dW2, db2)):
        np.testing.assert_allclose(p.grad.data, g, rtol=1e-12)
