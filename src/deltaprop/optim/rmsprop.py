"""RMSprop, with PyTorch's centered and momentum variants."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from deltaprop.optim.optimizer import Optimizer, check_hyperparameters, implementation_flags

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
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            **implementation_flags(
                "RMSprop",
                capturable=capturable,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
            ),
        }
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        """The RMSprop update of one group's parameters (see the class docstring)."""
        lr, alpha, eps, weight_decay, momentum = (
            float(group[k]) for k in ("lr", "alpha", "eps", "weight_decay", "momentum")
        )
        centered, maximize = bool(group["centered"]), bool(group["maximize"])
        buffers = ["square_avg"]
        if momentum > 0:
            buffers.append("momentum_buffer")
        if centered:
            buffers.append("grad_avg")
        for p, d, g in self._with_grads(group):
            state = self._state_of(p, buffers)
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
