"""Array transforms: small callables on NumPy arrays whose first axis indexes the samples.

Each transform maps an array of shape ``(N, ...)`` (a batch, or a whole dataset's array) to a
new array, so the same object works on a dataset up front or on each batch:

>>> import numpy as np
>>> images = np.full((2, 1, 2, 2), 255, dtype=np.uint8)
>>> prepare = Compose([ToFloat(), Normalize(0.5, 0.5), Flatten()])
>>> out = prepare(images)
>>> out.shape, out.dtype, float(out.max())
((2, 4), dtype('float32'), 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["Compose", "ToFloat", "Normalize", "Flatten"]


class Compose:
    """Apply transforms one after the other.

    >>> import numpy as np
    >>> Compose([ToFloat(scale=2.0), Flatten()])(np.ones((3, 2, 2))).shape
    (3, 4)
    """

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToFloat:
    """Convert to float32, dividing by ``scale``.

    By default the scale follows the input: 255 for uint8 images (pixels 0..255 become 0..1)
    and 1 for anything else; pass ``scale=16.0`` for the 0..16 pixels of the digits data.

    >>> import numpy as np
    >>> ToFloat()(np.array([0, 51, 255], dtype=np.uint8)).tolist()
    [0.0, 0.20000000298023224, 1.0]
    """

    def __init__(self, scale: float | None = None) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(f"ToFloat: scale must be positive, got {scale}")
        self.scale = scale

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        scale = self.scale
        if scale is None:
            scale = 255.0 if x.dtype == np.uint8 else 1.0
        out = x.astype(np.float32)
        if scale != 1.0:
            out /= np.float32(scale)
        return out

    def __repr__(self) -> str:
        return f"ToFloat(scale={self.scale})"


class Normalize:
    """``(x - mean) / std``, per channel or feature (as torchvision's ``Normalize``).

    ``mean`` and ``std`` are scalars or 1-D sequences; a sequence of length C is matched
    against axis ``axis`` of the input (default 1: the channel axis of ``(N, C, H, W)``
    images and the feature axis of ``(N, D)`` tables). The result keeps a float input's
    dtype (float32 stays float32); integer input becomes float32.

    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> Normalize([2.0, 20.0], [1.0, 10.0])(x).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """

    def __init__(
        self, mean: float | Sequence[float], std: float | Sequence[float], axis: int = 1
    ) -> None:
        mean_array = np.asarray(mean, dtype=np.float64).reshape(-1)
        std_array = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean_array.size == 0 or std_array.size == 0:
            raise ValueError("Normalize: mean and std must not be empty")
        if np.any(std_array <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std_array.tolist()}")
        if mean_array.size != 1 and std_array.size != 1 and mean_array.size != std_array.size:
            raise ValueError(
                f"Normalize: mean has {mean_array.size} values but std has {std_array.size}"
            )
        self.mean = mean_array
        self.std = std_array
        self.axis = axis

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        mean = self._shaped(self.mean, x, dtype)
        std = self._shaped(self.std, x, dtype)
        return ((x.astype(dtype, copy=False) - mean) / std).astype(dtype, copy=False)

    def _shaped(self, values: np.ndarray, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """``values`` reshaped to broadcast along ``self.axis`` of ``x``."""
        if values.size == 1:
            return values.reshape(()).astype(dtype)
        if x.ndim == 0:
            raise ValueError("Normalize: per-channel mean/std need an array, got a scalar")
        axis = self.axis % x.ndim
        if x.shape[axis] != values.size:
            raise ValueError(
                f"Normalize: {values.size} mean/std values but the input has "
                f"{x.shape[axis]} entries along axis {self.axis} (shape {x.shape})"
            )
        shape = [1] * x.ndim
        shape[axis] = values.size
        return values.reshape(shape).astype(dtype)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()}, axis={self.axis})"


class Flatten:
    """Flatten the axes from ``start_dim`` on (as ``nn.Flatten``): ``(N, C, H, W) -> (N, C*H*W)``.

    >>> import numpy as np
    >>> Flatten()(np.zeros((5, 1, 8, 8))).shape
    (5, 64)
    """

    def __init__(self, start_dim: int = 1) -> None:
        self.start_dim = start_dim

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        start = self.start_dim % x.ndim if x.ndim else 0
        return x.reshape(x.shape[:start] + (-1,))

    def __repr__(self) -> str:
        return f"Flatten(start_dim={self.start_dim})"
