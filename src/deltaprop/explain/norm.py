"""Layer and batch normalization of one step, rebuilt from the engine's input for display.

Both normalise groups of ``N`` values: a layer norm each sample over its features, a batch norm
(training mode) each feature or channel over the mini-batch. With ``g = dE/dy * gamma``::

    mu = mean(x)     var = mean((x - mu)^2)     sigma = sqrt(var + eps)     xhat = (x - mu) / sigma
    y = gamma * xhat + beta

    dE/dvar  = sum g * (x - mu) * (-1/2) sigma^-3
    dE/dmu   = -sum g / sigma            (the path through the variance adds 0: sum (x - mu) = 0)
    dE/dx    = g / sigma  +  dE/dmu / N  +  dE/dvar * 2 (x - mu) / N
             = (1/sigma) (g - mean(g) - xhat * mean(g * xhat))

:func:`norm_display` computes these three parts and checks that ``y``, ``dE/dgamma``,
``dE/dbeta`` and their sum ``dE/dx`` equal the engine's values and gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deltaprop.explain.conv import agree
from deltaprop.explain.records import LayerRecord, NormDisplay


def _layout(
    rec: LayerRecord,
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """``(to_groups, from_groups)``: the input as a (groups, N) matrix, and back."""
    x = rec.input
    if rec.type == "layernorm":
        n = rec.norm_size
        return (lambda a: a.reshape(-1, n)), (lambda a: a.reshape(x.shape))
    shape = x.shape
    c = shape[1]
    moved = (c, shape[0]) + tuple(shape[2:])
    return (
        (lambda a: np.moveaxis(a, 1, 0).reshape(c, -1)),
        (lambda a: np.moveaxis(a.reshape(moved), 0, 1)),
    )


def norm_display(rec: LayerRecord) -> NormDisplay:
    """The statistics and the three parts of the backward pass (see the module docstring)."""
    to2, back = _layout(rec)
    x2 = to2(rec.input).astype(np.float64)
    dy2 = to2(rec.delta).astype(np.float64)
    groups, n = x2.shape
    if rec.weights is not None:
        gamma = to2(np.broadcast_to(_param_shape(rec, rec.weights), rec.input.shape))
    else:
        gamma = np.ones_like(x2)
    beta = (
        to2(np.broadcast_to(_param_shape(rec, rec.biases), rec.input.shape))
        if rec.biases is not None
        else np.zeros_like(x2)
    )
    mean = x2.mean(axis=1)
    xc = x2 - mean[:, None]
    var = (xc * xc).mean(axis=1)
    std = np.sqrt(var + rec.eps)
    xhat = xc / std[:, None]
    agree(
        "normalized output gamma * xhat + beta",
        back(gamma * xhat + beta),
        rec.net,
        back(np.abs(gamma * xhat) + np.abs(beta)),
    )
    g = dy2 * gamma
    dvar = (g * xc).sum(axis=1) * -0.5 / std**3  # huge (even inf) when var + eps is tiny
    dmean = -g.sum(axis=1) / std
    part_xhat = g / std[:, None]
    part_mean = np.broadcast_to((dmean / n)[:, None], x2.shape)
    # dE/dvar * 2 (x - mu) / n, written as -xhat * mean(g * xhat) / sigma: the same number,
    # without sigma^-3 (which overflows where the engine's closed form does not)
    part_var = -xhat * (g * xhat).mean(axis=1, keepdims=True) / std[:, None]
    dx = part_xhat + part_mean + part_var
    mean_g = g.mean(axis=1)
    mean_gx = (g * xhat).mean(axis=1)
    closed = (g - mean_g[:, None] - xhat * mean_gx[:, None]) / std[:, None]
    size = back(np.abs(part_xhat) + np.abs(part_mean) + np.abs(part_var))
    dtype = rec.input.dtype
    agree(
        "input gradient (the sum of the three parts)", back(dx).astype(dtype), rec.input_grad, size
    )
    agree("input gradient (the closed form)", back(closed).astype(dtype), rec.input_grad, size)
    if rec.weight_grad is not None:
        dgamma = _param_sum(rec, back(dy2 * xhat))
        agree(
            "dE/dgamma = sum dE/dy * xhat",
            dgamma.astype(rec.weights.dtype),
            rec.weight_grad,
            _param_sum(rec, back(np.abs(dy2 * xhat))),
        )
    if rec.bias_grad is not None:
        dbeta = _param_sum(rec, back(dy2))
        agree(
            "dE/dbeta = sum dE/dy",
            dbeta.astype(rec.biases.dtype),
            rec.bias_grad,
            _param_sum(rec, back(np.abs(dy2))),
        )
    return NormDisplay(
        over="sample" if rec.type == "layernorm" else "batch",
        n=n,
        mean=mean,
        var=var,
        std=std,
        xhat=back(xhat),
        g=back(g),
        dvar=dvar,
        dmean=dmean,
        part_xhat=back(part_xhat),
        part_mean=back(np.ascontiguousarray(part_mean)),
        part_var=back(part_var),
        mean_g=mean_g,
        mean_gx=mean_gx,
        dx=back(dx),
    )


def _param_shape(rec: LayerRecord, p: np.ndarray) -> np.ndarray:
    """A norm layer's gamma or beta, shaped to broadcast against its input."""
    if rec.type == "layernorm":
        return p
    return p.reshape((1, -1) + (1,) * (rec.input.ndim - 2))


def _param_sum(rec: LayerRecord, a: np.ndarray) -> np.ndarray:
    """Sum an element array over everything but the parameter's own axes."""
    if rec.type == "layernorm":
        return a.reshape((-1,) + rec.weights.shape).sum(axis=0)
    return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).sum(axis=1)
