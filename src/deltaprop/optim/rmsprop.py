"""RMSprop, with PyTorch's centered and momentum variants."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from deltaprop.optim.optimizer import Optimizer, _check_flags, check_hyperparameters
from deltaprop.tensor import _make

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop: divide the gradient by a running root mean square, PyTorch's rule.

    For each parameter ``p`` with gradient ``g``::

        g <- -g                                         if maximize
        g <- g + lambda * p                             if weight_decay != 0
        v <- alpha * v + (1 - alpha) * g^2              (square_avg)
        if centered:
            gbar <- gbar + (1 - alpha) * (g - gbar)     (grad_avg)
            avg <- sqrt(v - gbar^2) + eps
        else:
            avg <- sqrt(v) + eps
        if momentum > 0:
            b <- momentum * b + g / avg                 (momentum_buffer, starts at 0)
            p <- p - eta * b
        else:
            p <- p - eta * g / avg

    State per parameter: ``step``, ``square_avg`` (and ``momentum_buffer``, ``grad_avg``).

    >>> import deltaprop as dp
    >>> from deltaprop import nn, optim
    >>> w = nn.Parameter(dp.tensor([1.0]))
    >>> opt = optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward()            # g = 2: v = 0.01 * 4, step = 0.01 * 2 / 0.2
    >>> opt.step()
    >>> round(w.item(), 6)
    0.9
    """

    _records_steps = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(
            lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha
        )
        _check_flags("RMSprop", differentiable, None, capturable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RMSprop update of every parameter that has a gradient (see the class docstring)."""
        loss = self._closure_loss(closure)
        self._step_called = True
        for group in self.param_groups:
            lr = float(group["lr"])
            alpha = float(group["alpha"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            maximize = bool(group["maximize"])
            for p, d, g in self._with_grads(group):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = _make(np.array(0.0, dtype=np.float32))
                    state["square_avg"] = _make(np.zeros_like(d))
                    if momentum > 0:
                        state["momentum_buffer"] = _make(np.zeros_like(d))
                    if centered:
                        state["grad_avg"] = _make(np.zeros_like(d))
                state["step"].data += 1
                g, _ = self._effective_grad(d, g, weight_decay, maximize)
                v = state["square_avg"].data
                v *= alpha
                tmp = np.multiply(g, g)
                tmp *= 1 - alpha
                v += tmp
                if centered:
                    gbar = state["grad_avg"].data
                    np.subtract(g, gbar, out=tmp)
                    tmp *= 1 - alpha
                    gbar += tmp
                    np.multiply(gbar, gbar, out=tmp)
                    np.subtract(v, tmp, out=tmp)
                    np.sqrt(tmp, out=tmp)
                else:
                    np.sqrt(v, out=tmp)
                tmp += eps
                np.divide(g, tmp, out=tmp)
                if momentum > 0:
                    b = state["momentum_buffer"].data
                    b *= momentum
                    b += tmp
                    np.multiply(b, lr, out=tmp)
                else:
                    tmp *= lr
                d -= tmp
        return loss
