"""The exceptions deltaprop raises for bad input.

Each is a subclass of the Python exception a user would expect (ValueError for a bad value or
shape, TypeError for a bad type) *and* of the one PyTorch raises in the same situation, so code
and tests written against either keep working. Messages name the op, the argument and the shapes
or values involved.
"""


class ShapeError(ValueError, RuntimeError):
    """Incompatible shapes: a ValueError, and a RuntimeError as PyTorch raises for them."""


class DTypeError(TypeError, RuntimeError):
    """An unsupported or mismatched dtype: a TypeError, and a RuntimeError as PyTorch raises."""


class InvalidArgumentError(ValueError, RuntimeError):
    """A bad argument value where PyTorch raises RuntimeError: also a ValueError."""


class DimError(IndexError, ValueError):
    """A ``dim`` argument out of range: an IndexError as in PyTorch, and a ValueError."""


__all__ = ["ShapeError", "DTypeError", "InvalidArgumentError", "DimError"]
