"""Stochastic gradient descent, with PyTorch's momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from deltaprop.optim.optimizer import (
    Optimizer,
    check_hyperparameter,
    check_hyperparameters,
    implementation_flags,
)
from deltaprop.tensor import _make

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), PyTorch's update rule.

    For each parameter ``p`` with gradient ``g`` (``mu`` momentum, ``tau`` dampening,
    ``lambda`` weight decay, ``eta`` the learning rate)::

        g <- -g                                   if maximize
        g <- g + lambda * p                       if weight_decay != 0
        if mu != 0:
            b <- g                                at the first step (b is the momentum_buffer)
            b <- mu * b + (1 - tau) * g           afterwards
            g <- g + mu * b                       if nesterov
            g <- b                                otherwise
        p <- p - eta * g

    Without momentum this is the backprop notes' rule ``w <- w - eta * dE/dw``. Updates are in
    place on ``p.data`` (float32 stays float32).

    >>> import deltaprop as dp
    >>> from deltaprop import nn, optim
    >>> w = nn.Parameter(dp.tensor([1.0, -2.0]))
    >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()            # g = 2w = [2, -4]
    >>> opt.step()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)
        check_hyperparameter(dampening, "Invalid dampening value", low=float("-inf"))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            **implementation_flags(
                "SGD",
                maximize=maximize,
                foreach=foreach,
                differentiable=differentiable,
                fused=fused,
            ),
        }
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        """The SGD update of one group's parameters (see the class docstring)."""
        lr, momentum, dampening, weight_decay = (
            float(group[k]) for k in ("lr", "momentum", "dampening", "weight_decay")
        )
        nesterov, maximize = bool(group["nesterov"]), bool(group["maximize"])
        for p, d, g in self._with_grads(group):
            # owned: whether g is a temporary of ours (safe to modify in place)
            g, owned = self._effective_grad(d, g, weight_decay, maximize)
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = _make(g if owned else g.copy(order="K"))
                    state["momentum_buffer"] = buf
                    owned = False  # g is now the buffer itself
                    b = buf.data
                else:
                    b = buf.data
                    b *= momentum
                    if dampening == 0:
                        b += g
                    else:
                        b += (1 - dampening) * g
                if nesterov:
                    t = b * momentum
                    t += g
                    g, owned = t, True
                else:
                    g, owned = b, False
            if owned:
                g *= lr
                d -= g
            else:  # lr * g into a reused buffer: no new array per step
                d -= np.multiply(g, lr, out=self._scratch(g))
