"""Layers: thin :class:`Module` wrappers holding parameters and calling ``nn.functional``.

Every layer follows PyTorch: the same constructor arguments, the same parameter names, shapes and
default initialisation (drawn from the global generator, so ``dp.manual_seed`` makes it
reproducible), the same ``repr``. The math of each forward (and its backward) lives in
:mod:`deltaprop.nn.functional`; the layers validate shapes and name themselves in errors.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from deltaprop.errors import ShapeError
from deltaprop.nn import functional as F
from deltaprop.nn import init
from deltaprop.nn.module import Module, Parameter
from deltaprop.tensor import Tensor, _make

__all__ = [
    "ShapeError",
    "Identity",
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "LayerNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "MSELoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]


def _dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt.kind != "f":
        raise TypeError(f"layer parameters must have a floating point dtype, got {dt}")
    return dt


def _check_device(device: Any) -> None:
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(f"deltaprop runs on the CPU only, got device {device!r}")


def _positive_int(layer: str, name: str, value: Any, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{layer}: {name} must be {'non-negative' if allow_zero else 'positive'}, got {value}"
        )
    return int(value)


def _pair(layer: str, name: str, value: Any, allow_zero: bool = False) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
        return (
            _positive_int(layer, name, value[0], allow_zero),
            _positive_int(layer, name, value[1], allow_zero),
        )
    v = _positive_int(layer, name, value, allow_zero)
    return (v, v)


def _check_tensor(layer: Module, x: Any) -> Tensor:
    """``x`` as a Tensor (an ndarray is wrapped), or a TypeError naming the layer."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return _make(x)
    raise TypeError(f"{layer._get_name()}: expected a Tensor input, got {type(x).__name__}")


def _affine_parameters(
    module: Module, shape: tuple[int, ...], affine: bool, bias: bool, dtype: np.dtype
) -> None:
    """A norm layer's learnable scale (ones) and shift (zeros), or None where disabled."""
    module.register_parameter("weight", Parameter(np.ones(shape, dtype=dtype)) if affine else None)
    module.register_parameter(
        "bias", Parameter(np.zeros(shape, dtype=dtype)) if affine and bias else None
    )


def _weight_and_bias(
    module: Module, weight_shape: tuple[int, ...], bias: bool, dtype: np.dtype
) -> None:
    """Register a layer's weight (and a bias of size weight_shape[0], or None), then draw them
    with the layer's ``reset_parameters``."""
    module.register_parameter("weight", _empty(weight_shape, dtype))
    module.register_parameter("bias", _empty((weight_shape[0],), dtype) if bias else None)
    module.reset_parameters()


def _default_init(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv2d: weight kaiming_uniform_(a=sqrt(5)), bias
    uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) (zero when fan_in is 0)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> Parameter:
    return Parameter(np.empty(shape, dtype=dtype))


# ----------------------------------------------------------------------------------------------
# Identity, Linear, Conv2d
# ----------------------------------------------------------------------------------------------


class Identity(Module):
    """Returns its input unchanged: ``y = x`` (any arguments to the constructor are ignored).

    >>> import deltaprop as dp
    >>> dp.nn.Identity()(dp.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    r"""Affine map ``y = x W^T + b``.

    Shapes: input ``(*, in_features)``; output ``(*, out_features)``; ``weight``
    ``(out_features, in_features)``; ``bias`` ``(out_features,)``.

    Backward: ``dL/dx = dL/dy W``, ``dL/dW = (dL/dy)^T x`` (summed over the leading dims),
    ``dL/db = sum of dL/dy`` over the leading dims: for one neuron, ``dE/dw_ij = delta_j o_i``.

    Initialisation (PyTorch's): ``W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))``
    (``kaiming_uniform_(a=sqrt(5))`` for the weight).

    >>> import deltaprop as dp
    >>> m = dp.nn.Linear(20, 30)
    >>> m(dp.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_device(device)
        self.in_features = _positive_int("Linear", "in_features", in_features, True)
        self.out_features = _positive_int("Linear", "out_features", out_features, True)
        dt = _dtype(dtype)
        _weight_and_bias(self, (self.out_features, self.in_features), bias, dt)

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's default initialisation."""
        _default_init(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if type(input) is not Tensor:
            input = _check_tensor(self, input)
        shape = input.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ShapeError(
                f"{self!r}: expected input with last dimension {self.in_features}, "
                f"got shape {tuple(shape)}"
            )
        # (reading the registry directly skips Module.__getattr__: a hot path for small nets)
        params = self._parameters
        return F.linear(input, params["weight"], params["bias"])

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    r"""2-D convolution (cross-correlation, as PyTorch) over ``(N, C_in, H, W)`` inputs.

    ``y[n, k, i, j] = b[k] + sum_{c, u, v} W[k, c, u, v] * x_pad[n, c, i*s + u*d, j*s + v*d]``
    with stride ``s``, dilation ``d`` and zero padding ``p``. Output size per spatial dim:
    ``H_out = floor((H + 2p - d (kh - 1) - 1) / s) + 1``.

    Shapes: input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; output ``(N, C_out, H_out, W_out)``;
    ``weight`` ``(C_out, C_in, kh, kw)``; ``bias`` ``(C_out,)``. Computed as one GEMM on the
    unrolled receptive fields (im2col); backward ``dW = cols^T dY``, ``dX = col2im(dY W)``.

    ``padding`` may be an int, a pair, ``"valid"`` (no padding) or ``"same"`` (stride 1; output
    size = input size, any extra padding on the bottom/right as PyTorch).

    Initialisation: ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in * kh * kw``.

    >>> import deltaprop as dp
    >>> m = dp.nn.Conv2d(3, 6, 5)
    >>> m
    Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> m(dp.randn(2, 3, 32, 32)).shape
    (2, 6, 28, 28)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_device(device)
        name = "Conv2d"
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.kernel_size = _pair(name, "kernel_size", kernel_size)
        self.stride = _pair(name, "stride", stride)
        self.dilation = _pair(name, "dilation", dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = _pair(name, "padding", padding, allow_zero=True)
        self.groups = _positive_int(name, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError("in_channels must be divisible by groups")
        if self.out_channels % self.groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"Conv2d: padding_mode={padding_mode!r} is not supported (only 'zeros')"
            )
        self.padding_mode = padding_mode
        self.output_padding = (0, 0)
        self.transposed = False
        dt = _dtype(dtype)
        kh, kw = self.kernel_size
        _weight_and_bias(
            self, (self.out_channels, self.in_channels // self.groups, kh, kw), bias, dt
        )

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's default initialisation."""
        _default_init(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        shape = tuple(input.shape)
        if input.ndim not in (3, 4) or shape[-3] != self.in_channels:
            raise ShapeError(
                f"{self!r}: expected 4-D input (N, C, H, W) (or 3-D (C, H, W)) with "
                f"C={self.in_channels}, got shape {shape}"
            )
        if isinstance(self.padding, tuple):
            for size, p, d, k, axis in zip(
                shape[-2:], self.padding, self.dilation, self.kernel_size, "HW"
            ):
                if size + 2 * p - d * (k - 1) - 1 < 0:
                    raise ShapeError(
                        f"{self!r}: input {axis} = {size} (padded: {size + 2 * p}) is smaller than "
                        f"the kernel extent {d * (k - 1) + 1}; got input shape {shape}"
                    )
        params = self._parameters
        return F.conv2d(
            input, params["weight"], params["bias"], self.stride, self.padding, self.dilation,
            self.groups,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


# ----------------------------------------------------------------------------------------------
# pooling, flatten
# ----------------------------------------------------------------------------------------------


def _check_pool_input(layer: Module, x: Tensor) -> None:
    if x.ndim not in (3, 4):
        raise ShapeError(
            f"{layer!r}: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
            f"{tuple(x.shape)}"
        )


class MaxPool2d(Module):
    r"""2-D max pooling: ``y[n, c, i, j] = max_{u, v} x_pad[n, c, i*s + u, j*s + v]``.

    ``stride`` defaults to ``kernel_size``; padding is implicit minus infinity. Backward sends
    each window's upstream gradient to the position of its maximum (one element on ties), zero
    elsewhere. Shapes: ``(N, C, H, W) -> (N, C, H_out, W_out)`` (or unbatched ``(C, H, W)``),
    ``H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1`` (ceil with ``ceil_mode``).
    ``return_indices=True`` also returns the flat index of each maximum in its input plane.

    >>> import deltaprop as dp
    >>> pool = dp.nn.MaxPool2d(2)
    >>> pool
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> pool(dp.arange(16.0).reshape(1, 1, 4, 4)).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        _pair("MaxPool2d", "kernel_size", kernel_size)
        if stride is not None:
            _pair("MaxPool2d", "stride", stride)
        _pair("MaxPool2d", "padding", padding, allow_zero=True)
        _pair("MaxPool2d", "dilation", dilation)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        _check_pool_input(self, input)
        return F.max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    r"""2-D average pooling: ``y[n, c, i, j] = 1/(kh kw) sum_{u, v} x_pad[n, c, i*s + u, j*s + v]``.

    ``stride`` defaults to ``kernel_size``; zero padding counts in the average
    (``count_include_pad=True``; with False only real elements count; ``divisor_override``
    fixes the divisor). Backward gives every position of a window ``upstream / divisor``.

    >>> import deltaprop as dp
    >>> dp.nn.AvgPool2d(2)(dp.arange(16.0).reshape(1, 1, 4, 4)).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        _pair("AvgPool2d", "kernel_size", kernel_size)
        if stride is not None:
            _pair("AvgPool2d", "stride", stride)
        _pair("AvgPool2d", "padding", padding, allow_zero=True)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        _check_pool_input(self, input)
        return F.avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default.

    >>> import deltaprop as dp
    >>> dp.nn.Flatten()(dp.zeros(32, 1, 5, 5)).shape
    (32, 25)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return _check_tensor(self, input).flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ----------------------------------------------------------------------------------------------
# normalisation, dropout
# ----------------------------------------------------------------------------------------------


class LayerNorm(Module):
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
        super().__init__()
        _check_device(device)
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(
            _positive_int("LayerNorm", "normalized_shape", s) for s in normalized_shape
        )
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dt = _dtype(dtype)
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dt)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        k = len(self.normalized_shape)
        if tuple(input.shape[input.ndim - k :]) != self.normalized_shape or input.ndim < k:
            raise ShapeError(
                f"{self!r}: given normalized_shape={list(self.normalized_shape)}, expected input "
                f"with shape [*, {', '.join(map(str, self.normalized_shape))}], but got input of "
                f"shape {tuple(input.shape)}"
            )
        params = self._parameters
        return F.layer_norm(
            input, self.normalized_shape, params["weight"], params["bias"], self.eps
        )

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class _BatchNorm(Module):
    """Shared code of BatchNorm1d/2d (PyTorch's ``_BatchNorm``)."""

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
        super().__init__()
        _check_device(device)
        self.num_features = _positive_int(self._get_name(), "num_features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = _dtype(dtype)
        _affine_parameters(self, (self.num_features,), affine, bias, dt)
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
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self._expected_dims:
            want = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ShapeError(
                f"{self!r}: expected {want} input (N, C{', L' if 3 in self._expected_dims else ''}"
                f"{', H, W' if 4 in self._expected_dims else ''}), got {x.ndim}D input of shape "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self!r}: expected input with {self.num_features} channels (dim 1), got shape "
                f"{tuple(x.shape)}"
            )

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        self._check_input(input)
        params, buffers = self._parameters, self._buffers
        running_mean, running_var = buffers["running_mean"], buffers["running_var"]
        count = buffers["num_batches_tracked"]
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and count is not None:
            count.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(count.data)
        bn_training = self.training or (running_mean is None and running_var is None)
        if bn_training and input.shape[0] * math.prod(input.shape[2:]) <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"{list(input.shape)}"
            )
        use_running = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            running_mean if use_running else None,
            running_var if use_running else None,
            params["weight"],
            params["bias"],
            bn_training,
            factor,
            self.eps,
        )

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


class Dropout(Module):
    r"""During training, zeroes each element with probability ``p`` and scales the rest by
    ``1 / (1 - p)`` (so the expectation is unchanged); the identity in evaluation mode.

    Backward: the upstream gradient times the same mask and scale.

    >>> import deltaprop as dp
    >>> drop = dp.nn.Dropout(0.5).eval()
    >>> drop(dp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(_check_tensor(self, input), self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------


class ReLU(Module):
    """``y = max(0, x)``; backward passes the gradient where ``x > 0``.

    >>> import deltaprop as dp
    >>> dp.nn.ReLU()(dp.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(_check_tensor(self, input))

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``y = x`` for ``x >= 0``, ``negative_slope * x`` otherwise.

    >>> import deltaprop as dp
    >>> dp.nn.LeakyReLU(0.1)(dp.tensor([-1.0, 2.0])).tolist()
    [-0.10000000149011612, 2.0]
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(_check_tensor(self, input), self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    r"""``y = x * Phi(x)`` with ``Phi`` the standard normal CDF (``approximate='none'``, the erf
    form) or ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate='tanh'``).

    >>> import deltaprop as dp
    >>> dp.nn.GELU()
    GELU(approximate='none')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(_check_tensor(self, input), approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))``; local derivative ``y (1 - y)``.

    >>> import deltaprop as dp
    >>> dp.nn.Sigmoid()(dp.tensor([0.0])).tolist()
    [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(_check_tensor(self, input))


class Tanh(Module):
    """``y = tanh(x)``; local derivative ``1 - y^2``.

    >>> import deltaprop as dp
    >>> dp.nn.Tanh()(dp.tensor([0.0])).tolist()
    [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(_check_tensor(self, input))


def _softmax_dim(layer: Module, ndim: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {layer._get_name().lower()} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    r"""``y_i = exp(x_i) / sum_k exp(x_k)`` along ``dim``; backward
    ``dx = y * (dy - sum(dy * y))``. With ``dim=None`` PyTorch's legacy choice is made
    (dim 0 for 0-, 1- and 3-D inputs, else 1) with a warning.

    >>> import deltaprop as dp
    >>> dp.nn.Softmax(dim=1)(dp.zeros(1, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        dim = self.dim if self.dim is not None else _softmax_dim(self, input.ndim)
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    r"""``y_i = x_i - log sum_k exp(x_k)`` along ``dim`` (computed stably); backward
    ``dx = dy - softmax(x) * sum(dy)``.

    >>> import deltaprop as dp
    >>> dp.nn.LogSoftmax(dim=1)
    LogSoftmax(dim=1)
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        input = _check_tensor(self, input)
        dim = self.dim if self.dim is not None else _softmax_dim(self, input.ndim)
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if weight is not None and not isinstance(weight, Tensor):
            weight = _make(np.asarray(weight))
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    r"""Mean squared error: ``l_n = (x_n - y_n)^2``, then mean (default), sum or none.

    Backward: ``dL/dx = 2 (x - y) / N`` for the mean. (The backprop notes' ``E = 1/2 sum (t-o)^2``
    is ``0.5 * MSELoss(reduction='sum')``.)

    >>> import deltaprop as dp
    >>> dp.nn.MSELoss()(dp.tensor([1.0, 2.0]), dp.tensor([0.0, 0.0])).item()
    2.5
    """

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    r"""Cross entropy of logits and class indices (or class probabilities):
    ``l_n = -w_{y_n} log softmax(x_n)_{y_n}``; the mean divides by ``sum_n w_{y_n}``.

    Input ``(N, C)`` (or ``(N, C, d1, ...)``) logits; target ``(N,)`` int64 class indices
    (entries equal to ``ignore_index`` are skipped) or ``(N, C)`` probabilities.
    ``label_smoothing`` mixes the target with the uniform distribution. Backward (no weights, no
    smoothing, mean): ``dL/dx = (softmax(x) - onehot(y)) / N``.

    >>> import deltaprop as dp
    >>> loss = dp.nn.CrossEntropyLoss()
    >>> round(loss(dp.zeros(2, 4), dp.tensor([0, 3])).item(), 4)    # log(4)
    1.3863
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    r"""Negative log likelihood of log-probabilities: ``l_n = -w_{y_n} x_{n, y_n}``; the mean
    divides by ``sum_n w_{y_n}`` (``LogSoftmax`` + ``NLLLoss`` = ``CrossEntropyLoss``).

    >>> import deltaprop as dp
    >>> dp.nn.NLLLoss()(dp.tensor([[-1.0, -2.0]]), dp.tensor([1])).item()
    2.0
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction,
        )  # fmt: skip


class BCELoss(_WeightedLoss):
    r"""Binary cross entropy of probabilities: ``l_n = -w_n [y_n log x_n + (1 - y_n) log(1 - x_n)]``
    (the logs are clamped at -100, as PyTorch). Backward ``dL/dx = (x - y) / (x (1 - x))``
    (times ``w / N`` for the mean).

    >>> import deltaprop as dp
    >>> round(dp.nn.BCELoss()(dp.tensor([0.5]), dp.tensor([1.0])).item(), 4)
    0.6931
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    r"""Sigmoid + binary cross entropy in one stable step:
    ``l_n = -w_n [p y_n log sigmoid(x_n) + (1 - y_n) log(1 - sigmoid(x_n))]`` with ``p`` the
    ``pos_weight`` (per class, broadcast over the last dim). Backward (``p = 1``):
    ``dL/dx = sigmoid(x) - y`` (the ``o (1 - o)`` cancels).

    >>> import deltaprop as dp
    >>> round(dp.nn.BCEWithLogitsLoss()(dp.tensor([0.0]), dp.tensor([1.0])).item(), 4)
    0.6931
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if weight is not None and not isinstance(weight, Tensor):
            weight = _make(np.asarray(weight))
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            pos_weight = _make(np.asarray(pos_weight))
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
