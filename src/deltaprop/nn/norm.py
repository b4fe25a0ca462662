"""Normalisation layers :class:`LayerNorm`, :class:`BatchNorm1d` and :class:`BatchNorm2d` (over
:mod:`deltaprop.ops.norm`); all three share :class:`_AffineNorm`, the batch norms
:class:`_BatchNorm`."""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.errors import ShapeError
from deltaprop.nn import init
from deltaprop.nn.common import (
    affine_parameters,
    as_input,
    call_op,
    parameter_dtype,
    positive_int,
)
from deltaprop.nn.module import Module
from deltaprop.ops.norm import batch_norm, layer_norm
from deltaprop.tensor import Tensor, _make

__all__ = ["LayerNorm", "BatchNorm1d", "BatchNorm2d"]


class _AffineNorm(Module):
    """What the normalisation layers share: ``eps``, and the learnable scale ``weight`` (ones)
    and shift ``bias`` (zeros) of shape ``shape``, or None where disabled."""

    def __init__(
        self, shape: tuple[int, ...], eps: float, affine: bool, bias: bool, dtype: np.dtype
    ) -> None:
        super().__init__()
        self.eps = eps
        affine_parameters(self, shape, affine, bias, dtype)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)


class LayerNorm(_AffineNorm):
    r"""Layer normalisation over the last ``len(normalized_shape)`` dims, per sample.

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` with the biased variance over the
    normalized dims. Backward (``g = dL/dy * gamma``, ``xhat`` the normalized input):
    ``dL/dx = (g - mean(g) - xhat mean(g xhat)) / sqrt(var + eps)``.

    Shapes: input ``(*, *normalized_shape)``, output the same; ``weight`` (gamma, ones) and
    ``bias`` (beta, zeros) of shape ``normalized_shape`` when ``elementwise_affine``.

    >>> import deltaprop as dp
    >>> ln = dp.nn.LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> ln(dp.randn(2, 3, 4)).shape
    (2, 3, 4)
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        shape = tuple(positive_int("LayerNorm", "normalized_shape", s) for s in normalized_shape)
        super().__init__(shape, eps, elementwise_affine, bias, parameter_dtype(device, dtype))
        self.normalized_shape = shape
        self.elementwise_affine = elementwise_affine

    def forward(self, input: Tensor) -> Tensor:
        params = self._parameters
        return call_op(
            self, layer_norm, as_input(self, input), self.normalized_shape, params["weight"],
            params["bias"], self.eps,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class _BatchNorm(_AffineNorm):
    """Shared code of BatchNorm1d/2d (PyTorch's ``_BatchNorm``): parameters, running statistics,
    the momentum rule; a subclass names the input ranks it accepts in ``_expected_dims``."""

    _expected_dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        num_features = positive_int(self._get_name(), "num_features", num_features)
        dt = parameter_dtype(device, dtype)
        super().__init__((num_features,), eps, affine, bias, dt)
        self.num_features = num_features
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if track_running_stats:
            self.register_buffer("running_mean", _make(np.zeros(self.num_features, dtype=dt)))
            self.register_buffer("running_var", _make(np.ones(self.num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", _make(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        super().reset_parameters()

    def _check_input_dim(self, x: Tensor) -> None:
        """The input rank this layer accepts (the functional op accepts any rank >= 2)."""
        if x.ndim not in self._expected_dims:
            want = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ShapeError(
                f"{self!r}: expected {want} input (N, C{', L' if 3 in self._expected_dims else ''}"
                f"{', H, W' if 4 in self._expected_dims else ''}), got {x.ndim}D input of shape "
                f"{tuple(x.shape)}"
            )

    def forward(self, input: Tensor) -> Tensor:
        input = as_input(self, input)
        self._check_input_dim(input)
        params, buffers = self._parameters, self._buffers
        running_mean, running_var = buffers["running_mean"], buffers["running_var"]
        count = buffers["num_batches_tracked"]
        tracked = self.training and self.track_running_stats and count is not None
        # the op increments the counter (and, with momentum None, uses 1 / count)
        factor = self.momentum if tracked or self.momentum is not None else 0.0
        bn_training = self.training or (running_mean is None and running_var is None)
        use_running = not self.training or self.track_running_stats
        return call_op(
            self, batch_norm, input, running_mean if use_running else None,
            running_var if use_running else None, params["weight"], params["bias"], bn_training,
            factor, self.eps, num_batches_tracked=count if tracked else None,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs, per channel ``C``.

    Training: ``y = (x - mean_B) / sqrt(var_B + eps) * gamma + beta`` with the batch mean and
    biased batch variance over ``N`` (and ``L``); the running statistics are updated in place,
    ``running = (1 - momentum) * running + momentum * batch_stat`` (the unbiased variance for
    ``running_var``; a cumulative average when ``momentum=None``). Evaluation: the running
    statistics replace the batch ones.

    Parameters: ``weight`` (gamma, ones) and ``bias`` (beta, zeros) of shape ``(C,)``; buffers
    ``running_mean``, ``running_var``, ``num_batches_tracked``.

    >>> import deltaprop as dp
    >>> bn = dp.nn.BatchNorm1d(3)
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation over ``(N, C, H, W)`` inputs, per channel ``C``.

    As :class:`BatchNorm1d`, with the statistics over ``N``, ``H`` and ``W``.

    >>> import deltaprop as dp
    >>> dp.nn.BatchNorm2d(6)(dp.randn(4, 6, 5, 5)).shape
    (4, 6, 5, 5)
    """

    _expected_dims = (4,)
