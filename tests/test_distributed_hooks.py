"""Tensor.register_post_accumulate_grad_hook: the engine hook data parallelism is built on.

The hook of a leaf runs during the backward pass, as soon as the leaf's gradient is complete,
before the ops nearer the inputs have run; it sees the final (accumulated) gradient.
"""

import numpy as np
import pytest

import deltaprop as dp


def _mlp():
    rng = np.random.default_rng(0)
    w1 = dp.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    w2 = dp.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    x = dp.tensor(rng.standard_normal((6, 4)))
    return x, w1, w2


def test_hook_runs_once_with_the_complete_gradient_while_backward_is_running():
    x, w1, w2 = _mlp()
    events = []

    class Spy(dp.Function):  # an op between w1 and the loss: runs after w2's hook, before w1's
        def forward(self, a):
            return a

        def backward(self, gy):
            events.append("spy backward")
            return (gy,)

    w1.register_post_accumulate_grad_hook(lambda p: events.append(("w1", p.grad.numpy().copy())))
    w2.register_post_accumulate_grad_hook(lambda p: events.append(("w2", p.grad.numpy().copy())))
    h = Spy().apply((x @ w1).relu())
    loss = ((h @ w2) * (h @ w2)).sum()  # w2 is used twice: its hook waits for both uses
    loss.backward()
    names = [e if isinstance(e, str) else e[0] for e in events]
    assert names == ["w2", "spy backward", "w1"]
    # the gradients the hooks saw are the final ones (checked against autograd.grad)
    x2, v1, v2 = _mlp()
    hh = (x2 @ v1).relu()
    g1, g2 = dp.autograd.grad(((hh @ v2) * (hh @ v2)).sum(), [v1, v2])
    np.testing.assert_allclose(events[0][1], g2.numpy(), rtol=1e-13)
    np.testing.assert_allclose(events[2][1], g1.numpy(), rtol=1e-13)


def test_hook_sees_accumulated_gradient_and_remove_unregisters():
    w = dp.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.tolist()))
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    assert seen == [[3.0, 3.0], [6.0, 6.0]]
    handle.remove()
    (w * 3).sum().backward()
    assert len(seen) == 2


def test_hook_not_called_by_autograd_grad_nor_without_a_gradient():
    w = dp.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(calls.append)
    dp.autograd.grad((w * w).sum(), w)
    assert calls == [] and w.grad is None
    w.sum().backward()  # a leaf whose only consumer is the root's op
    assert calls == [w]


def test_hook_on_a_root_leaf():
    w = dp.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(calls.append)
    w.backward(dp.tensor([1.0, 1.0]))
    assert calls == [w] and w.grad.tolist() == [1.0, 1.0]


def test_hook_registration_errors():
    w = dp.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        dp.tensor([1.0]).register_post_accumulate_grad_hook(print)
    with pytest.raises(TypeError, match="callable"):
        w.register_post_accumulate_grad_hook(3)


def test_parameters_take_hooks():
    lin = dp.nn.Linear(3, 2)
    calls = []
    for p in lin.parameters():
        p.register_post_accumulate_grad_hook(lambda p: calls.append(p.shape))
    lin(dp.ones(4, 3)).sum().backward()
    assert sorted(calls) == [(2,), (2, 3)]
