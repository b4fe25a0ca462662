"""Tensor, the graph node ``Function``, and reverse-mode backpropagation.

The whole engine in one page
----------------------------
* A :class:`Tensor` wraps a NumPy array ``data``. When an op is applied to tensors that require
  gradients (and grad mode is on), the op's :class:`Function` instance is recorded as the new
  tensor's ``grad_fn``. The Function holds strong references to its *inputs* and only a weak one to
  its output, so a graph has no reference cycles and is freed as soon as its last tensor is dropped.
* ``backward()`` walks the recorded Functions from the output back to the leaves, in an order
  where every Function runs after all the Functions that consumed its output (Kahn's algorithm:
  iterative, so a chain of 100,000 ops is fine). Each Function multiplies the upstream gradient by
  its local derivative (its ``backward``); where a value fed several consumers, the gradients add.
* ``backward`` formulas are written once and run in two modes. Normally they receive NumPy arrays
  and compute NumPy arrays: nothing is recorded, so backward costs what raw NumPy costs. With
  ``create_graph=True`` they receive Tensors instead, so the same formula is itself recorded as a
  graph that can be differentiated again (higher-order gradients). Formulas therefore use
  arithmetic operators and the helpers of :mod:`deltaprop.ops.dual`, which work on both.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# grad mode
# ----------------------------------------------------------------------------------------------

_grad_enabled: bool = True  # read by Function.apply: record the graph or not
_any_retains_grad: bool = False  # set once any tensor calls retain_grad(): backward then checks
_any_post_accumulate_hooks: bool = False  # set once a post-accumulate-grad hook is registered
_create_graph: bool = False  # True while a backward pass records itself (create_graph=True)


class no_grad:
    """Context manager (and decorator) in which no graph is recorded, as ``torch.no_grad``.

    >>> import deltaprop as dp
    >>> x = dp.tensor([1.0], requires_grad=True)
    >>> with dp.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._mode

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, func):  # use as a decorator
        def wrapper(*args, **kwargs):
            with self.__class__():
                return func(*args, **kwargs)

        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on (inside ``no_grad``)."""

    _mode = True


def is_grad_enabled() -> bool:
    """Whether ops currently record a graph."""
    return _grad_enabled


# ----------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
half, double, long = float16, float64, int64  # torch aliases (not `float`/`int`: builtins)

_SUPPORTED_KINDS = "fiub"  # float, signed int, unsigned int, bool


def _check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    if dtype.kind not in _SUPPORTED_KINDS:
        raise TypeError(
            f"{where}: unsupported dtype {dtype}; expected a float, integer or bool dtype"
        )
    return dtype


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """Convert user data to an ndarray with deltaprop's dtype rules.

    Python floats become float32 (the default float dtype); a float64 NumPy array stays float64;
    Python ints become int64; ``dtype`` overrides everything.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = _check_dtype(np.dtype(dtype), "tensor")
        return np.array(data, dtype=dtype, copy=copy) if copy else np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        _check_dtype(data.dtype, "tensor")
        return data.copy() if copy else data
    if isinstance(data, np.generic):
        return np.array(data)
    arr = np.array(data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind == "O":
        raise TypeError(
            f"tensor: could not convert data of type {type(data).__name__} to a numeric array "
            "(expected a number, a nested list of numbers, or an ndarray)"
        )
    _check_dtype(arr.dtype, "tensor")
    return arr


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``handle.remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# ----------------------------------------------------------------------------------------------
# Function: one recorded op
# ----------------------------------------------------------------------------------------------


class Function:
    """Base class of every op: ``forward`` on arrays, ``backward`` from the derivation.

    Subclasses implement ``forward(*arrays) -> array`` (saving on ``self`` what backward needs)
    and ``backward(gy) -> tuple`` returning one gradient per input (``None`` where an input needs
    none; ``self.needs_grad[i]`` says which are needed). ``backward`` reads the inputs and output
    through :meth:`saved_inputs` and :meth:`saved_output`, which give arrays normally and Tensors
    when the backward pass is itself being recorded (``create_graph=True``).

    An op whose backward cannot be written with those dual helpers (a fused op such as conv2d)
    defines ``twin(*inputs)``: the same function composed of primitive ops. With
    ``create_graph=True`` the engine differentiates the twin instead, so higher-order gradients
    work for fused ops too.

    Naming: every subclass is called ``<Op>Function`` (``MulFunction``, ``LinearFunction``), so
    an op is never confused with the ``nn`` Module of the same name; :attr:`name` drops the
    suffix (``grad_fn`` prints as ``<MulBackward>``).
    """

    __slots__ = ("inputs", "needs_grad", "_out", "_y", "__dict__")
    twin = None

    def apply(self, *inputs: Tensor) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record this op when a gradient is needed."""
        if len(inputs) == 1:  # the most common arity, without building lists
            x = inputs[0]
            y = self.forward(x.data)
            if type(y) is not np.ndarray:
                y = np.asarray(y)
            if _grad_enabled and x.requires_grad:
                return self._record(inputs, y, (True,))
            return _make(y)
        if len(inputs) == 2:  # binary ops, likewise
            a, b = inputs
            y = self.forward(a.data, b.data)
            if type(y) is not np.ndarray:
                y = np.asarray(y)
            if _grad_enabled and (a.requires_grad or b.requires_grad):
                return self._record(inputs, y, (a.requires_grad, b.requires_grad))
            return _make(y)
        y = self.forward(*[t.data for t in inputs])
        if type(y) is not np.ndarray:
            y = np.asarray(y)
        if _grad_enabled:
            needs = tuple([t.requires_grad for t in inputs])
            if True in needs:
                return self._record(inputs, y, needs)
        return _make(y)

    def _record(self, inputs: tuple[Tensor, ...], y: np.ndarray, needs: tuple[bool, ...]) -> Tensor:
        """The output tensor, with this Function as its ``grad_fn``."""
        self.inputs = inputs
        self.needs_grad = needs
        out = _make(y, True, self)
        self._out = weakref.ref(out)  # weak: no reference cycle
        self._y = y  # the output array (its tensor may be gone before backward)
        return out

    def forward(self, *xs: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, gy: Any) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    # what backward formulas read -------------------------------------------------------------
    def saved_inputs(self) -> list:
        """The inputs: arrays, or Tensors while the backward pass is recorded."""
        if _create_graph:
            return list(self.inputs)
        return [t.data for t in self.inputs]

    def saved_output(self) -> Any:
        """The output: an array, or the output Tensor while the backward pass is recorded."""
        return self._out() if _create_graph else self._y

    def release(self) -> None:
        """Drop the saved buffers and the links to the inputs (after a backward pass)."""
        self.inputs = None
        self._y = None
        if self.__dict__:
            self.__dict__.clear()

    @property
    def name(self) -> str:
        """The op's name: the class name without its ``Function`` suffix (``Mul``)."""
        return type(self).__name__.removesuffix("Function")

    @property
    def next_functions(self) -> tuple:
        """The Functions (or leaf tensors) feeding this one, as in PyTorch."""
        if self.inputs is None:
            return ()
        return tuple(t._ctx if t._ctx is not None else t for t in self.inputs)

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


# ----------------------------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------------------------

_new = object.__new__


def _make(data: np.ndarray, requires_grad: bool = False, ctx: Function | None = None) -> Tensor:
    """Internal fast constructor: wraps ``data`` (already an ndarray) without checks."""
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t._ctx = ctx
    t._retains_grad = False
    return t


class Tensor:
    """An n-dimensional array that records the ops applied to it, for backpropagation.

    ``data`` is the underlying ``numpy.ndarray``; ``grad`` is a Tensor (or None) filled by
    ``backward()``; ``grad_fn`` is the op that produced the tensor (None for leaves).

    >>> import deltaprop as dp
    >>> x = dp.tensor([2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([4., 6.])
    """

    __slots__ = (
        "data", "grad", "requires_grad", "_ctx", "_retains_grad", "_post_acc_hooks", "__weakref__"
    )  # fmt: skip
    __array_priority__ = 1000
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # hashable by identity although == is elementwise

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self._init_leaf(_to_array(data, dtype), requires_grad)

    def _init_leaf(self, arr: np.ndarray, requires_grad: bool) -> None:
        """Make this tensor a leaf holding ``arr`` (also ``Parameter``'s constructor)."""
        self.data = arr
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- attributes --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        return self._ctx

    @property
    def T(self) -> Tensor:
        return _shape.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:
        return _shape.transpose(self, -2, -1)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self.data.shape
        return self.data.shape[_shape.normalize_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    # -- autograd ----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(
                f"only tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        if not self.is_leaf and not requires_grad:
            raise RuntimeError(
                "requires_grad_: can only change requires_grad of leaf tensors "
                "(use detach() to get a tensor that does not require grad)"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError(
                "retain_grad: can't retain_grad on a tensor that has requires_grad=False"
            )
        self._retains_grad = True
        global _any_retains_grad
        _any_retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def register_post_accumulate_grad_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(self)`` during ``backward()`` as soon as this leaf's ``.grad`` is final.

        The backward pass stores a leaf's gradient as soon as every op that consumed the leaf has
        delivered its part, and then calls the hooks, while the rest of the backward pass is still
        to run (as PyTorch's hook of the same name): distributed data parallelism starts sending
        a layer's gradients from here. The hook reads ``self.grad`` and returns None; it must not
        replace ``self.grad``'s array. Only ``Tensor.backward`` calls it (``autograd.grad`` writes
        no ``.grad``). Backward passes of graphs without such hooks pay nothing.

        >>> import deltaprop as dp
        >>> w = dp.tensor([1.0, 2.0], requires_grad=True)
        >>> seen = []
        >>> handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.tolist()))
        >>> (w * w).sum().backward()
        >>> seen
        [[2.0, 4.0]]
        >>> handle.remove()
        """
        if not self.is_leaf:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only leaf tensors have an accumulated "
                "gradient; this tensor was produced by an op (register it on the leaves)"
            )
        if not self.requires_grad:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: can't register a hook on a tensor that has "
                "requires_grad=False"
            )
        if not callable(hook):
            raise TypeError(
                f"register_post_accumulate_grad_hook: hook must be callable, got "
                f"{type(hook).__name__}"
            )
        hooks = getattr(self, "_post_acc_hooks", None)
        if hooks is None:
            hooks = self._post_acc_hooks = {}
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        global _any_post_accumulate_hooks
        _any_post_accumulate_hooks = True
        return handle

    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Backpropagate from this tensor, accumulating into the leaves' ``.grad``.

        ``gradient`` is dL/dself (required unless self has one element). The graph's buffers are
        freed afterwards unless ``retain_graph`` (default: ``create_graph``) is True.
        """
        _autograd.run_backward(
            [self],
            [gradient],
            retain_graph=retain_graph,
            create_graph=create_graph,
            accumulate=True,
        )

    def detach(self) -> Tensor:
        """A tensor sharing the same data, cut from the graph."""
        return _make(self.data)

    def detach_(self) -> Tensor:
        self._ctx = None
        self.requires_grad = False
        return self

    # -- conversions -------------------------------------------------------------------------
    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to Python scalars, "
                f"got shape {self.shape}"
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError(
                "numpy: can't call numpy() on a tensor that requires grad; use detach().numpy()"
            )
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous"
            )
        return bool(self.data)

    def to(self, dtype: Any) -> Tensor:
        """Convert to ``dtype`` (differentiable between float dtypes)."""
        return _ew.cast(self, dtype)

    astype = type = to

    def float(self) -> Tensor:
        return _ew.cast(self, float32)

    def double(self) -> Tensor:
        return _ew.cast(self, float64)

    def half(self) -> Tensor:
        return _ew.cast(self, float16)

    def long(self) -> Tensor:
        return _ew.cast(self, int64)

    def int(self) -> Tensor:
        return _ew.cast(self, int32)

    def bool(self) -> Tensor:
        return _ew.cast(self, bool_)

    def clone(self) -> Tensor:
        """A differentiable copy."""
        return _ew.CloneFunction().apply(self)

    def contiguous(self) -> Tensor:
        return self

    # -- in-place, outside the graph ---------------------------------------------------------
    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and _grad_enabled:
            raise RuntimeError(
                f"{op}: a tensor that requires grad cannot be modified in place while grad mode "
                "is on (use `with dp.no_grad():` or modify .data)"
            )

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value: float) -> Tensor:
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def copy_(self, src: Any) -> Tensor:
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else np.asarray(src)
        if src.shape != self.shape and np.broadcast_shapes(src.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: source shape {src.shape} does not match {self.shape}")
        self.data[...] = src
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__")
        _shape.setitem(self.data, index, value.data if isinstance(value, Tensor) else value)

    # -- display -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.data.dtype not in (float32, int64, bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- arithmetic (see ops/elementwise.py for each derivative) -----------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ew.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ew.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ew.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ew.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ew.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ew.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ew.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ew.div(other, self)

    def __pow__(self, exponent: Any) -> Tensor:
        return _ew.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _ew.pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _mm.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _mm.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ew.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ew.abs(self)

    # comparisons: elementwise, no gradient
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ew.compare(self, other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ew.compare(self, other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.greater_equal)

    def __invert__(self) -> Tensor:
        if self.dtype != bool_:
            raise TypeError(f"~ is defined for bool tensors only, got {self.dtype}")
        return _make(~self.data)

    def __and__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.logical_and)

    def __or__(self, other: Any) -> Tensor:
        return _ew.compare(self, other, np.logical_or)

    # the named forms of the operators (as PyTorch's)
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    add, sub, mul, div, pow, matmul = __add__, __sub__, __mul__, __truediv__, __pow__, __matmul__

    def exp(self) -> Tensor:
        return _ew.exp(self)

    def log(self) -> Tensor:
        return _ew.log(self)

    def sqrt(self) -> Tensor:
        return _ew.sqrt(self)

    def abs(self) -> Tensor:
        return _ew.abs(self)

    def tanh(self) -> Tensor:
        return _act.TanhFunction().apply(self)

    def sigmoid(self) -> Tensor:
        return _act.SigmoidFunction().apply(self)

    def relu(self) -> Tensor:
        return _act.ReluFunction().apply(self)

    def square(self) -> Tensor:
        return _ew.pow(self, 2)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return _ew.clamp(self, min, max)

    clip = clamp

    def maximum(self, other: Any) -> Tensor:
        return _ew.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return _ew.minimum(self, other)

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        return _ew.where(mask, value, self)

    def softmax(self, dim: int = -1) -> Tensor:
        return _act.softmax_along(self, dim)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return _act.log_softmax_along(self, dim)

    # -- reductions (ops/reduce.py) ----------------------------------------------------------
    def sum(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        return _red.sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        return _red.mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def max(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Any:
        return _red.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Any:
        return _red.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.amax(self, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.amin(self, dim, keepdim)

    def var(self, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Tensor:
        """Keyword options: unbiased, correction (default 1), axis, keepdims."""
        return _red.var(self, dim, keepdim, **kwargs)

    def std(self, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Tensor:
        """Keyword options: unbiased, correction (default 1), axis, keepdims."""
        return _red.std(self, dim, keepdim, **kwargs)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _red.argmax(self, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _red.argmin(self, dim, keepdim)

    def all(self, dim: int | None = None) -> Tensor:
        return _make(np.asarray(self.data.all(axis=dim)))

    def any(self, dim: int | None = None) -> Tensor:
        return _make(np.asarray(self.data.any(axis=dim)))

    # -- shape (ops/shape.py) ----------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        return _shape.reshape(self, *shape)

    def view(self, *shape: Any) -> Tensor:
        return _shape.reshape(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        return _shape.reshape(self, other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _shape.transpose(self, dim0, dim1)

    def swapaxes(self, axis0: int, axis1: int) -> Tensor:
        return _shape.transpose(self, axis0, axis1)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {self.shape}")
        return self.T

    def permute(self, *dims: Any) -> Tensor:
        return _shape.permute(self, *dims)

    def unsqueeze(self, dim: int) -> Tensor:
        return _shape.unsqueeze(self, dim)

    def squeeze(self, dim: Any = None) -> Tensor:
        return _shape.squeeze(self, dim)

    def expand(self, *sizes: Any) -> Tensor:
        return _shape.expand(self, *sizes)

    def expand_as(self, other: Tensor) -> Tensor:
        return _shape.expand(self, other.shape)

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.getitem(self, index)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


# Op modules import Tensor from here, so they are imported after the class exists.
from deltaprop import autograd as _autograd  # noqa: E402
from deltaprop.ops import activation as _act  # noqa: E402
from deltaprop.ops import elementwise as _ew  # noqa: E402
from deltaprop.ops import matmul as _mm  # noqa: E402
from deltaprop.ops import reduce as _red  # noqa: E402
from deltaprop.ops import shape as _shape  # noqa: E402

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "is_tensor"]
