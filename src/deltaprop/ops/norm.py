"""Layer normalization and batch normalization, each one fused op with its closed-form backward.

Both normalise ``x`` over a set of axes (per sample for layer norm, per channel for batch norm):

    mu = mean(x),  var = mean((x - mu)^2)  (biased),  xhat = (x - mu) / sqrt(var + eps)
    y = gamma * xhat + beta

With ``n`` the number of elements normalised together and ``g = dL/dy * gamma``, the chain rule
through mu and var collapses to (backprop notes, "Layer normalization"):

    dL/dx     = (1 / sqrt(var + eps)) * (g - mean(g) - xhat * mean(g * xhat))
    dL/dgamma = sum dL/dy * xhat       dL/dbeta = sum dL/dy      (over the non-normalised axes)

Batch norm in eval mode uses fixed running statistics, so it is an affine map per channel:
``y = x * s + (beta - mu_run * s)`` with ``s = gamma / sqrt(var_run + eps)``, and
``dL/dx = dL/dy * s``.

Each op has a ``twin`` built from primitive ops (mean, sqrt, ...): the engine differentiates it
when the backward pass is recorded (``create_graph=True``), and tests compare the two.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deltaprop.errors import InvalidArgumentError, ShapeError
from deltaprop.ops.common import as_tensor, check_float, check_same_dtype
from deltaprop.tensor import Function, Tensor

# ----------------------------------------------------------------------------------------------
# layer norm
# ----------------------------------------------------------------------------------------------


class _NormFunction(Function):
    """What the normalisation ops share: optional weight and bias inputs after ``x``."""

    has_weight = has_bias = False

    def _affine(self, params: tuple) -> tuple[Any, Any]:
        """(weight, bias) among the inputs after x (None where the op has none)."""
        w = params[0] if self.has_weight else None
        b = params[-1] if self.has_bias else None
        return w, b


class LayerNormFunction(_NormFunction):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta over the last ``n_axes`` dims, per sample.

    gx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = gy * gamma,  rstd = 1/sqrt(var+eps);
    ggamma = sum_samples gy * xhat;  gbeta = sum_samples gy.
    Inputs: ``x`` then ``weight`` (if ``has_weight``) then ``bias`` (if ``has_bias``).
    """

    def __init__(self, n_axes: int, eps: float, has_weight: bool, has_bias: bool) -> None:
        self.n_axes, self.eps = n_axes, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        w, b = self._affine(params)
        n = int(np.prod(x.shape[x.ndim - self.n_axes :]))
        x2 = x.reshape(-1, n)
        xhat = x2 - x2.mean(axis=1, keepdims=True)
        var = np.einsum("ij,ij->i", xhat, xhat)[:, None]
        var /= n
        var += self.eps
        rstd = np.sqrt(var, out=var)
        np.divide(1.0, rstd, out=rstd)
        xhat *= rstd
        self.xhat, self.rstd, self.n = xhat, rstd, n
        if w is None and b is None:
            return xhat.reshape(x.shape)
        y = xhat * w.reshape(-1) if w is not None else xhat.copy()
        if b is not None:
            y += b.reshape(-1)
        return y.reshape(x.shape)

    def backward(self, gy):
        xs = self.inputs
        w, b = self._affine(xs[1:])
        xhat, rstd, n = self.xhat, self.rstd, self.n
        g2 = gy.reshape(-1, n)
        grads: list[Any] = [None]
        if self.needs_grad[0]:
            g = g2 * w.data.reshape(-1) if w is not None else g2.copy()
            mg = g.mean(axis=1, keepdims=True)
            mgx = np.einsum("ij,ij->i", g, xhat)[:, None]
            mgx /= n
            g -= mg
            mgx = xhat * mgx
            g -= mgx
            g *= rstd
            grads[0] = g.reshape(xs[0].shape)
        if w is not None:
            grads.append(
                np.einsum("ij,ij->j", g2, xhat).reshape(w.shape) if self.needs_grad[1] else None
            )
        if b is not None:
            grads.append(g2.sum(axis=0).reshape(b.shape) if self.needs_grad[-1] else None)
        return tuple(grads)

    def twin(self, x: Tensor, *params: Tensor) -> Tensor:
        w, b = self._affine(params)
        axes = tuple(range(x.ndim - self.n_axes, x.ndim))
        xc = x - x.mean(dim=axes, keepdim=True)
        var = (xc * xc).mean(dim=axes, keepdim=True)
        y = xc / (var + self.eps).sqrt()
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
        return y


def _shape_tuple(normalized_shape: Any) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    try:
        if isinstance(normalized_shape, str):
            raise TypeError
        shape = tuple(int(s) for s in normalized_shape)
    except (TypeError, ValueError):
        raise TypeError(
            "layer_norm: normalized_shape must be an int or a sequence of ints, got "
            f"{normalized_shape!r}"
        ) from None
    return shape


def layer_norm(
    x: Tensor,
    normalized_shape: int | tuple[int, ...] | list[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each sample over its last dims ``normalized_shape``, then scale and shift.

    ``x`` is ``(*, *normalized_shape)``; ``weight`` and ``bias`` (optional) have shape
    ``normalized_shape``. The variance is the biased one, as in ``torch.nn.functional.layer_norm``.

    >>> import deltaprop as dp
    >>> layer_norm(dp.tensor([[1.0, 3.0]]), 2)
    tensor([[-1.,  1.]])
    """
    x = as_tensor(x)
    check_float("layer_norm", "input", x)
    shape = _shape_tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or x.shape[x.ndim - k :] != shape:
        raise ShapeError(
            f"layer_norm: given normalized_shape={list(shape)}, expected an input of shape "
            f"[*, {', '.join(map(str, shape))}], but got input of shape {x.shape}"
        )
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            continue
        p = as_tensor(p)
        if p.shape != shape:
            raise ShapeError(
                f"layer_norm: expected {name} of the same shape as normalized_shape "
                f"{shape}, but got {name} of shape {p.shape}"
            )
        check_same_dtype("layer_norm", x, name, p)
        params.append(p)
    fn = LayerNormFunction(k, float(eps), weight is not None, bias is not None)
    return fn.apply(x, *params)


# ----------------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------------


class RunningStats(NamedTuple):
    """The running statistics a batch norm op reads (tensors, or None) and, in training mode,
    updates in place with ``momentum``, incrementing the ``num_batches_tracked`` counter (a
    layer's 0-d tensor, or None)."""

    mean: Tensor | None
    var: Tensor | None
    momentum: float | None = 0.1
    num_batches_tracked: Tensor | None = None


class BatchNormFunction(_NormFunction):
    """Batch normalization of ``x (N, C, *)`` per channel C.

    training:  y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta, batch statistics over (N, *)
               gx = gamma rstd (gy - sum(gy)/n - xhat * sum(gy * xhat)/n)
               (per channel, n = N * prod(*))
    eval:      y = x s + (beta - mu_run s),  s = gamma / sqrt(var_run + eps);  gx = gy s
    both:      ggamma = sum gy * xhat,  gbeta = sum gy  (over N and *).
    Inputs: ``x`` then ``weight`` (if ``has_weight``) then ``bias`` (if ``has_bias``). The running
    statistics (``running``, a :class:`RunningStats`) are read by ``forward``: in training mode
    it updates them in place, ``running = (1 - momentum) running + momentum batch_stat``
    (unbiased variance), and keeps the batch mean and biased variance on ``self.batch_mean`` /
    ``self.batch_var``; in evaluation mode it normalises with a copy of them
    (``self.running_mean`` / ``self.running_var``, arrays). All of an op's work is in
    ``forward``, so a replay by ``deltaprop.compile`` repeats the update too.
    """

    def __init__(
        self, training: bool, eps: float, has_weight: bool, has_bias: bool, running: RunningStats
    ) -> None:
        self.training, self.eps = training, eps
        self.has_weight, self.has_bias = has_weight, has_bias
        self.running = running

    @staticmethod
    def _by_channel(a: np.ndarray) -> np.ndarray:
        """``a (N, C, *)`` as ``(N, C, L)``: each sample's channel in one row (last axis)."""
        return a.reshape(a.shape[0], a.shape[1], -1)

    def forward(self, x, *params):
        w, b = self._affine(params)
        x3 = self._by_channel(x)
        n = x3.shape[0] * x3.shape[2]
        if self.training:
            mean, var, n, xhat, rstd = self._batch_statistics(x3)
            self.batch_mean, self.batch_var, self.n = mean, var, n
            xhat *= rstd[:, None]
            self.xhat, self.rstd = xhat, rstd
            y = xhat * w[:, None] if w is not None else xhat.copy()
            if b is not None:
                y += b[:, None]
            self.update_running(mean, var, n)
            return y.reshape(x.shape)
        # eval: one affine map per channel
        self.running_mean = self.running[0].data.copy()
        self.running_var = self.running[1].data.copy()
        rstd = 1.0 / np.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
        scale = rstd * w if w is not None else rstd
        shift = -self.running_mean.astype(x.dtype, copy=False) * scale
        if b is not None:
            shift += b
        self.rstd, self.n = rstd, n
        y = x3 * scale[:, None]
        y += shift[:, None]
        return y.reshape(x.shape)

    def _batch_statistics(self, x3: np.ndarray) -> tuple:
        """``(mean, biased var, n, x3 - mean, 1 / sqrt(var + eps))`` per channel of the batch
        ``x3 (N, C, L)``, ``n = N * L`` (``x3 - mean`` a new array, in ``x3``'s dtype)."""
        n = x3.shape[0] * x3.shape[2]
        mean = x3.mean(axis=(0, 2))
        xc = x3 - mean[:, None]
        var = np.einsum("ncl,ncl->c", xc, xc)
        var /= n
        return mean, var, n, xc, 1.0 / np.sqrt(var + self.eps)

    def _mean_sums(self, gb: np.ndarray, gw: np.ndarray, n: float, dtype: Any) -> tuple:
        """``sum(gy) / n`` and ``sum(gy * xhat) / n`` per channel, over the batch."""
        return gb / n, gw / n

    def update_running(self, mean: np.ndarray, var: np.ndarray, n: float) -> None:
        """The running statistics (and ``num_batches_tracked``) after a training batch of ``n``
        values per channel with mean ``mean`` and biased variance ``var``."""
        running_mean, running_var, m, count = self.running
        if count is not None:
            count.data += 1
            if m is None:  # cumulative moving average
                m = 1.0 / float(count.data)
        if running_mean is not None:
            rm = running_mean.data
            rm *= 1.0 - m
            rm += m * mean
        if running_var is not None:
            rv = running_var.data
            rv *= 1.0 - m
            rv += (m * n / (n - 1)) * var

    def backward(self, gy):
        xs = self.inputs
        x = xs[0].data
        w, b = self._affine(xs[1:])
        gy3 = self._by_channel(gy)
        rstd, n = self.rstd, self.n
        need_x = self.needs_grad[0]
        need_w = w is not None and self.needs_grad[1]
        need_b = b is not None and self.needs_grad[-1]
        train_x = self.training and need_x  # the training gx needs both sums
        if self.training:
            xhat = self.xhat
        elif need_w:
            xhat = x.reshape(gy3.shape) - self.running_mean.astype(x.dtype, copy=False)[:, None]
            xhat *= rstd[:, None]
        gb = gy3.sum(axis=(0, 2)) if need_b or train_x else None
        gw = np.einsum("ncl,ncl->c", gy3, xhat) if need_w or train_x else None
        grads: list[Any] = [None]
        if need_x:
            scale = rstd * w.data if w is not None else rstd
            if self.training:
                gb_n, gw_n = self._mean_sums(gb, gw, n, x.dtype)
                gx = xhat * gw_n[:, None]
                np.subtract(gy3, gx, out=gx)
                gx -= gb_n[:, None]
                gx *= scale[:, None]
            else:
                gx = gy3 * scale[:, None]
            grads[0] = gx.reshape(x.shape)
        if w is not None:
            grads.append(gw if need_w else None)
        if b is not None:
            grads.append(gb if need_b else None)
        return tuple(grads)

    def twin(self, x: Tensor, *params: Tensor) -> Tensor:
        w, b = self._affine(params)
        bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if self.training:
            axes = (0,) + tuple(range(2, x.ndim))
            xc = x - x.mean(dim=axes, keepdim=True)
            var = (xc * xc).mean(dim=axes, keepdim=True)
            y = xc / (var + self.eps).sqrt()
        else:
            mean = self.running_mean.astype(x.dtype).reshape(bshape)
            rstd = self.rstd.reshape(bshape)
            y = (x - mean) * rstd
        if w is not None:
            y = y * w.reshape(bshape)
        if b is not None:
            y = y + b.reshape(bshape)
        return y


def _stat(name: str, t: Any, x: Tensor) -> Tensor | None:
    if t is None:
        return None
    t = as_tensor(t)
    c = x.shape[1]
    if t.shape != (c,):
        want = f"expected input with {t.shape[0]} channels, got" if t.ndim == 1 else "input"
        raise ShapeError(
            f"batch_norm: {name} should contain {c} elements (one per channel, the input's "
            f"dim 1), not shape {t.shape} ({want} shape {x.shape})"
        )
    return t


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    num_batches_tracked: Tensor | None = None,
) -> Tensor:
    """Batch normalization of ``x (N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` per channel.

    ``training=True`` normalises with the batch mean and *biased* batch variance over N (and the
    spatial dims), and updates the running statistics in place (their ``.data`` arrays):
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the *unbiased* batch
    variance for ``running_var``, as PyTorch. They may be None in training mode. ``training=False``
    normalises with the running statistics. ``num_batches_tracked`` (a layer's 0-d integer
    counter, optional) is incremented in training mode; with ``momentum=None`` the update uses
    ``1 / num_batches_tracked`` (a cumulative average), as the layers do.

    >>> import deltaprop as dp
    >>> rm, rv = dp.zeros(1), dp.ones(1)
    >>> batch_norm(dp.tensor([[1.0], [3.0]]), rm, rv, training=True)
    tensor([[-1.],
            [ 1.]])
    >>> rm, rv   # 0.9 * 0 + 0.1 * 2;  0.9 * 1 + 0.1 * 2 (unbiased variance of [1, 3])
    (tensor([0.2]), tensor([1.1]))
    """
    x = as_tensor(x)
    check_float("batch_norm", "input", x)
    if x.ndim < 2:
        raise ShapeError(
            f"batch_norm: expected an input of shape (N, C) or (N, C, *), got shape {x.shape}"
        )
    c = x.shape[1]
    running_mean = _stat("running_mean", running_mean, x)
    running_var = _stat("running_var", running_var, x)
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        p = _stat(name, p, x)
        if p is not None:
            check_same_dtype("batch_norm", x, name, p)
            params.append(p)
    if training:
        n = x.data.size // c if c else 0
        if n <= 1:
            raise ValueError(
                "batch_norm: expected more than 1 value per channel when training, got input of "
                f"shape {x.shape}"
            )
        m = None if momentum is None and num_batches_tracked is not None else float(momentum)
        running = RunningStats(running_mean, running_var, m, num_batches_tracked)
        fn = BatchNormFunction(True, float(eps), weight is not None, bias is not None, running)
        return fn.apply(x, *params)
    if running_mean is None or running_var is None:
        raise InvalidArgumentError(
            "batch_norm: running_mean and running_var must be given in evaluation mode "
            "(training=False)"
        )
    running = RunningStats(running_mean, running_var)
    fn = BatchNormFunction(False, float(eps), weight is not None, bias is not None, running)
    return fn.apply(x, *params)


__all__ = ["layer_norm", "batch_norm", "LayerNormFunction", "BatchNormFunction", "RunningStats"]
