"""Gradient utilities used in training loops, as ``torch.nn.utils``.

>>> import deltaprop as dp
>>> from deltaprop import nn
>>> p = nn.Parameter(dp.zeros(2))
>>> p.grad = dp.tensor([3.0, 4.0])
>>> nn.utils.clip_grad_norm_([p], max_norm=1.0).item()    # the norm before clipping
5.0
>>> [round(v, 4) for v in p.grad.tolist()]
[0.6, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from deltaprop.tensor import Tensor, _make

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameters_to_vector",
    "vector_to_parameters",
    "zero_grads",
]


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scale all gradients, in place, so that their joint ``norm_type``-norm is at most
    ``max_norm``: ``g <- g * min(1, max_norm / (total_norm + 1e-6))``. Returns the total norm
    (of all gradients seen as one vector) before clipping."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return _make(np.array(0.0, dtype=np.float32))
    dtype = grads[0].dtype
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g.data))) if g.data.size else 0.0 for g in grads)
    else:
        total = sum(
            float(np.sum(np.abs(g.data.astype(np.float64)) ** norm_type)) for g in grads
        ) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef < 1.0 or not math.isfinite(total):
        for g in grads:
            g.data *= coef
    return _make(np.array(total, dtype=dtype))


def zero_grads(tensors: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the gradients of ``tensors``: to None (default) or to zeros in place (what
    ``Module.zero_grad`` and ``Optimizer.zero_grad`` do)."""
    for p in tensors:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.data[...] = 0


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element, in place, to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            np.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (a copy)."""
    return _make(np.concatenate([p.data.reshape(-1) for p in parameters]))


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    ``vec`` must hold exactly as many elements as the parameters together; nothing is written
    otherwise.
    """
    data = vec.data if isinstance(vec, Tensor) else np.asarray(vec)
    params = list(parameters)
    total = sum(p.data.size for p in params)
    if data.ndim != 1 or data.size != total:
        raise ValueError(
            f"vector_to_parameters: expected a 1-D vector of {total} elements (the parameters' "
            f"total size), got shape {data.shape}"
        )
    offset = 0
    for p in params:
        n = p.data.size
        p.data[...] = data[offset : offset + n].reshape(p.shape)
        offset += n
