"""Adam and AdamW (decoupled weight decay), with PyTorch's exact update rule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from deltaprop.optim.optimizer import (
    Optimizer,
    check_hyperparameter,
    check_hyperparameters,
    implementation_flags,
)

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation, PyTorch's update rule.

    For each parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``::

        g <- -g                                      if maximize
        p <- p * (1 - eta * lambda)                  if decoupled_weight_decay (AdamW)
        g <- g + lambda * p                          otherwise, if weight_decay != 0
        m <- m + (1 - beta1) * (g - m)               (= beta1 m + (1 - beta1) g; exp_avg)
        v <- beta2 * v + (1 - beta2) * g^2           (exp_avg_sq)
        v_max <- max(v_max, v)                       if amsgrad (max_exp_avg_sq)
        denom <- sqrt(v [or v_max]) / sqrt(1 - beta2^t) + eps
        p <- p - eta / (1 - beta1^t) * m / denom

    ``m`` and ``v`` start at zero; the bias corrections ``1 - beta^t`` undo that start.
    State per parameter: ``step`` (a float32 scalar tensor, as PyTorch), ``exp_avg``,
    ``exp_avg_sq`` (and ``max_exp_avg_sq``). Updates are in place on ``p.data``.

    >>> import deltaprop as dp
    >>> from deltaprop import nn, optim
    >>> w = nn.Parameter(dp.tensor([1.0, -2.0]))
    >>> opt = optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                          # the first Adam step moves each weight by ~lr
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, -1.9]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps, weight_decay=weight_decay)
        for i, beta in enumerate(betas):
            check_hyperparameter(beta, f"Invalid beta parameter at index {i}", high=1.0)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            **implementation_flags(
                type(self).__name__,
                maximize=maximize,
                foreach=foreach,
                capturable=capturable,
                differentiable=differentiable,
                fused=fused,
            ),
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        """The Adam update of one group's parameters (see the class docstring)."""
        lr, eps, weight_decay = (float(group[k]) for k in ("lr", "eps", "weight_decay"))
        beta1, beta2 = (float(b) for b in group["betas"])
        amsgrad, maximize = bool(group["amsgrad"]), bool(group["maximize"])
        decoupled = bool(group["decoupled_weight_decay"])
        buffers = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
        for p, d, g in self._with_grads(group):
            state = self._state_of(p, buffers)
            step_t = state["step"].data
            step_t += 1
            step = float(step_t)
            if decoupled and weight_decay != 0:  # AdamW: decay the weights directly
                d *= 1 - lr * weight_decay
                g, _ = self._effective_grad(d, g, 0.0, maximize)
            else:
                g, _ = self._effective_grad(d, g, weight_decay, maximize)
            m = state["exp_avg"].data
            v = state["exp_avg_sq"].data
            # m <- m + (1 - beta1) (g - m)   (torch's lerp)
            tmp = np.subtract(g, m)
            tmp *= 1 - beta1
            m += tmp
            # v <- beta2 v + (1 - beta2) g^2
            v *= beta2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - beta2
            v += tmp
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bc2_sqrt = math.sqrt(bias_correction2)
            if amsgrad:
                vmax = state["max_exp_avg_sq"].data
                np.maximum(vmax, v, out=vmax)
                np.sqrt(vmax, out=tmp)
            else:
                np.sqrt(v, out=tmp)
            tmp /= bc2_sqrt
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            d -= tmp


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's rule.

    The weight decay shrinks the parameter directly, ``p <- p * (1 - eta * lambda)``, instead of
    being added to the gradient (so it does not pass through the moment estimates); the rest is
    :class:`Adam`. Default ``weight_decay=1e-2``.

    >>> import deltaprop as dp
    >>> from deltaprop import nn, optim
    >>> opt = optim.AdamW(nn.Linear(2, 2).parameters())
    >>> opt.param_groups[0]["weight_decay"], opt.param_groups[0]["decoupled_weight_decay"]
    (0.01, True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )
