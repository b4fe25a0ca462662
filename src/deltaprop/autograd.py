"""Reverse-mode automatic differentiation: the backward walk, ``grad`` and ``gradcheck``.

The walk (``run_backward``)
---------------------------
1. Count, for every recorded Function reachable from the outputs, how many consumers its output
   has inside this graph (an iterative depth-first pass: no recursion, any depth).
2. Start from the outputs with their upstream gradients (1 for a scalar loss). Take a Function
   whose consumers have all delivered their gradients, call its ``backward`` with the summed
   upstream gradient, and hand each input's gradient on: to the producing Function (summed with
   what other consumers sent: a value used twice gets both gradients) or, for a leaf, into
   ``.grad``. Repeat until no Function is left (Kahn's algorithm).
3. Unless ``retain_graph``, each Function releases its saved buffers once it has run; a second
   backward through it raises a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltaprop import tensor as _t
from deltaprop.errors import AnomalyError
from deltaprop.tensor import Tensor, enable_grad, no_grad

__all__ = [
    "grad", "gradcheck", "GradcheckError", "no_grad", "enable_grad", "run_backward",
    "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled",
    "central_difference", "AnomalyError",
]  # fmt: skip

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you "
    "call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward "
    "through the graph a second time."
)


def graph_functions(outputs: Sequence[Tensor]) -> list[_t.Function]:
    """The recorded Functions behind ``outputs``, each once, outputs first (an iterative
    depth-first walk, any depth). A Function whose graph was freed has no inputs: its branch
    ends there."""
    seen: set[int] = set()
    order: list[_t.Function] = []
    stack = [t._ctx for t in outputs if isinstance(t, Tensor) and t._ctx is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        order.append(fn)
        stack.extend(t._ctx for t in fn.inputs or () if t._ctx is not None)
    return order


def _root_grad(root: Tensor, g: Any, create_graph: bool) -> Any:
    """The upstream gradient of one output: given, or 1 for a one-element output."""
    if g is None and root.requires_grad and root.data.size == 1 and not create_graph:
        return np.ones(root.data.shape, dtype=root.data.dtype)  # the common case: a loss
    if not root.requires_grad:
        raise RuntimeError(
            "backward: element 0 of tensors does not require grad and does not have a grad_fn"
        )
    if g is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; this output "
                f"has shape {root.shape}, so pass gradient= of that shape"
            )
        arr = np.ones(root.data.shape, dtype=root.data.dtype)
        return _t._make(arr) if create_graph else arr
    if isinstance(g, Tensor):
        if g.shape != root.shape:
            raise RuntimeError(
                f"backward: gradient has shape {g.shape} but the output has shape {root.shape}"
            )
        # a copy: the gradient may reach a leaf's .grad as is and be accumulated into later,
        # which must not write into the caller's tensor
        return g if create_graph else g.data.copy()
    arr = np.array(g, dtype=root.dtype)  # a copy: never alias the caller's array
    if arr.shape != root.shape:
        raise RuntimeError(
            f"backward: gradient has shape {arr.shape} but the output has shape {root.shape}"
        )
    return _t._make(arr) if create_graph else arr


def _as_grad_tensor(g: Any, like: Tensor) -> Tensor:
    """Wrap a computed gradient for storage in ``.grad`` (own, writable memory; input's dtype)."""
    if type(g) is np.ndarray:
        if g.dtype == like.data.dtype and g.shape == like.data.shape and g.flags.writeable:
            return _t._make(g)  # the common case: nothing to convert
    elif isinstance(g, Tensor):
        return g if g.dtype == like.dtype else g.to(like.dtype)
    g = np.array(g, dtype=like.data.dtype)
    if g.shape != like.shape:  # a 0-d gradient of a 1-element tensor and the like
        g = np.broadcast_to(g, like.shape).copy()
    return _t._make(g)


def run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Any],
    inputs: Sequence[Tensor] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    accumulate: bool = True,
    allow_unused: bool = False,
) -> list | None:
    """Backpropagate from ``roots``.

    ``accumulate=True`` (``Tensor.backward``) adds into the leaves' ``.grad``; otherwise
    (``autograd.grad``) the gradients of ``inputs`` are returned and no ``.grad`` is written.
    """
    if retain_graph is None:
        retain_graph = create_graph
    grads: dict[Any, Any] = {}  # Function -> gradient of its output; leaf Tensor -> its gradient
    deps: dict[_t.Function, int] = {}
    stack: list[_t.Function] = []
    for root, g in zip(roots, root_grads):
        g = _root_grad(root, g, create_graph)
        key = root._ctx if root._ctx is not None else root
        grads[key] = g if key not in grads else grads[key] + g
        if root._ctx is not None and root._ctx not in deps:
            deps[root._ctx] = 0
            stack.append(root._ctx)
    ready = stack[:]  # the roots' Functions: nothing inside the graph consumes their output...
    # 1. count consumers (iterative DFS)
    while stack:
        fn = stack.pop()
        inputs_ = fn.inputs
        if inputs_ is None:
            raise RuntimeError(_FREED)
        for t in inputs_:
            p = t._ctx
            if p is not None:
                if p in deps:
                    deps[p] += 1
                else:
                    deps[p] = 1
                    stack.append(p)
    if len(ready) > 1 and any(deps[fn] for fn in ready):
        ready = [fn for fn, n in deps.items() if n == 0]  # ...unless one root feeds another
    # leaves with post-accumulate-grad hooks: count their consumers too, so that each one's
    # gradient is stored (and its hooks run) as soon as it is complete
    hooked = _hooked_leaf_consumers(deps) if accumulate and _t._any_post_accumulate_hooks else None
    stored: set[int] = set()  # ids of the arrays stored as a leaf's .grad during this pass
    # what to capture for autograd.grad: non-leaf inputs are read when their Function runs
    wanted_fns: dict[_t.Function, list[int]] = {}
    captured: list[Any] = []
    if inputs is not None:
        captured = [None] * len(inputs)
        for i, t in enumerate(inputs):
            if t._ctx is not None:
                wanted_fns.setdefault(t._ctx, []).append(i)

    # 2. Kahn's walk
    done: list[_t.Function] = []
    special = create_graph or _anomaly_enabled
    prev_mode, prev_enabled = _t._create_graph, _t._grad_enabled
    _t._create_graph, _t._grad_enabled = create_graph, create_graph
    try:
        while ready:
            fn = ready.pop()
            g = grads.pop(fn, None)
            fn_inputs = fn.inputs
            if g is None:  # nothing flows through this Function: just release its inputs
                in_grads = (None,) * len(fn_inputs)
            else:
                if wanted_fns and fn in wanted_fns:
                    for i in wanted_fns[fn]:
                        captured[i] = g
                if accumulate and _t._any_retains_grad:
                    out = fn._out()
                    if out is not None and out._retains_grad:
                        out.grad = _accumulate(out.grad, g, out, create_graph)
                if special:  # create_graph, or anomaly detection: one test on the hot path
                    in_grads = _special_backward(fn, g, create_graph)
                else:
                    in_grads = fn.backward(g)
            for t, gi in zip(fn_inputs, in_grads):
                p = t._ctx
                if p is None:
                    if gi is not None and t.requires_grad:
                        grads[t] = gi if t not in grads else grads[t] + gi
                    if hooked and t in hooked:
                        hooked[t] -= 1
                        if hooked[t] == 0 and t in grads:
                            _store_leaf_grad(t, grads.pop(t), create_graph, stored)
                            _run_post_accumulate_hooks(t)
                    continue
                if gi is not None:
                    grads[p] = gi if p not in grads else grads[p] + gi
                n = deps[p] - 1
                deps[p] = n
                if n == 0:
                    ready.append(p)
            if not retain_graph:
                if create_graph:  # recorded formulas may still read outputs: release at the end
                    done.append(fn)
                else:
                    fn.release()
        for fn in done:
            fn.release()
    finally:
        _t._create_graph, _t._grad_enabled = prev_mode, prev_enabled

    # 3. leaves (only leaf keys are left in `grads` now; hooked leaves were stored on the way)
    if accumulate:
        for leaf, g in grads.items():
            _store_leaf_grad(leaf, g, create_graph, stored)
            if hooked is not None and getattr(leaf, "_post_acc_hooks", None):
                _run_post_accumulate_hooks(leaf)  # a root that is itself a leaf
        return None
    result = []
    for i, t in enumerate(inputs or ()):
        g = captured[i] if t._ctx is not None else grads.get(t)
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} (shape {t.shape}) does not appear in the graph of the "
                    "outputs; pass allow_unused=True to get None for it"
                )
            result.append(None)
        else:
            result.append(_as_grad_tensor(g, t))
    return result


def _store_leaf_grad(leaf: Tensor, g: Any, create_graph: bool, stored: set[int]) -> None:
    """Add a leaf's gradient of this pass into its ``.grad``.

    A stored gradient must own its memory (it is accumulated into in place later): one array can
    reach two leaves (add passes gy to both) and a view (reshape's gradient) shares its base, so
    those are copied first. ``stored`` holds the ids of the arrays already stored in this pass.
    """
    if type(g) is np.ndarray:
        if id(g) in stored or g.base is not None:
            g = g.copy()
        stored.add(id(g))
        old = leaf.grad
        if old is None:
            # (views were copied above and user gradients on entry: g is writable)
            if g.dtype == leaf.data.dtype and g.shape == leaf.data.shape:
                leaf.grad = _t._make(g)  # the common case: store as is
                return
        elif (
            not create_graph
            and type(old.data) is np.ndarray
            and old.data.shape == leaf.data.shape
            and old.data.flags.writeable
        ):
            old.data += g  # accumulate in place, as PyTorch
            return
    leaf.grad = _accumulate(leaf.grad, g, leaf, create_graph)


def _hooked_leaf_consumers(fns: Any) -> dict[Tensor, int]:
    """For each leaf with post-accumulate-grad hooks: how many inputs slots of ``fns`` it fills."""
    counts: dict[Tensor, int] = {}
    for fn in fns:
        for t in fn.inputs:
            if t._ctx is None and t.requires_grad and getattr(t, "_post_acc_hooks", None):
                counts[t] = counts.get(t, 0) + 1
    return counts


def _run_post_accumulate_hooks(leaf: Tensor) -> None:
    for hook in list(leaf._post_acc_hooks.values()):
        hook(leaf)


def _accumulate(old: Tensor | None, g: Any, like: Tensor, create_graph: bool) -> Tensor:
    """``.grad`` after adding ``g`` (the general path: conversions, or a recorded sum)."""
    new = _as_grad_tensor(g, like)
    if old is None:
        return new
    if create_graph or isinstance(g, Tensor):
        return old + new
    return _t._make(old.data + new.data)


def _special_backward(fn: _t.Function, g: Any, create_graph: bool) -> Any:
    """One Function's backward when the walk is recorded (``create_graph``: a fused op
    differentiates its twin) or checked (anomaly detection)."""
    if create_graph and fn.twin is not None:
        in_grads = _twin_backward(fn, g)
    else:
        in_grads = fn.backward(g)
    if _anomaly_enabled and _anomaly_check_nan:
        _check_finite(fn, g, in_grads)
    return in_grads


def _check_finite(fn: _t.Function, g: Any, in_grads: Any) -> None:
    """Raise :class:`AnomalyError` if ``fn``'s backward produced a NaN or infinite gradient."""
    for i, gi in enumerate(in_grads):
        if gi is None:
            continue
        arr = gi.data if isinstance(gi, Tensor) else np.asarray(gi)
        if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
            continue
        shapes = ", ".join(str(t.shape) for t in fn.inputs)
        kind = "a NaN" if np.isnan(arr).any() else "an infinite"
        upstream = g.data if isinstance(g, Tensor) else np.asarray(g)
        cause = (
            "its upstream gradient was already non-finite (the gradient passed to backward)"
            if not np.isfinite(upstream).all()
            else "its upstream gradient was finite"
        )
        raise AnomalyError(
            f"detect_anomaly: the backward of {fn.name} (forward inputs of shape {shapes}) "
            f"returned {kind} gradient for input {i} (shape {arr.shape}); {cause}. Look for "
            f"a log, division, sqrt or pow of 0 or of a huge value in the forward of this op"
        )


# ----------------------------------------------------------------------------------------------
# anomaly detection
# ----------------------------------------------------------------------------------------------

_anomaly_enabled: bool = False  # read once per backward walk
_anomaly_check_nan: bool = True


class set_detect_anomaly:
    """Turn anomaly detection on or off (also as a context manager), as PyTorch's.

    While on, every backward checks each op's gradients and raises :class:`AnomalyError` at the
    first op whose backward returns a NaN or infinite value, naming it and its forward input
    shapes. Off (the default) it costs nothing.
    """

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        global _anomaly_enabled, _anomaly_check_nan
        self._prev = (_anomaly_enabled, _anomaly_check_nan)
        _anomaly_enabled, _anomaly_check_nan = bool(mode), bool(check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        global _anomaly_enabled, _anomaly_check_nan
        _anomaly_enabled, _anomaly_check_nan = self._prev


class detect_anomaly:
    """Context manager (and decorator) that checks every backward for NaN/inf, as PyTorch's.

    Inside it, the first op whose backward produces a NaN or infinite gradient raises
    :class:`~deltaprop.errors.AnomalyError` naming the op and the shapes of its forward inputs.

    >>> import deltaprop as dp
    >>> x = dp.tensor([0.0, 1.0], requires_grad=True)
    >>> with dp.autograd.detect_anomaly():  # doctest: +ELLIPSIS
    ...     x.sqrt().sum().backward()
    Traceback (most recent call last):
    deltaprop.errors.AnomalyError: detect_anomaly: the backward of Sqrt (forward inputs ...
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self._switch = set_detect_anomaly(True, self.check_nan)

    def __exit__(self, *exc: object) -> None:
        self._switch.__exit__(*exc)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:  # use as a decorator
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly(self.check_nan):
                return func(*args, **kwargs)

        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        return wrapper


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on."""
    return _anomaly_enabled


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection checks gradients for NaN/inf."""
    return _anomaly_enabled and _anomaly_check_nan


def _twin_backward(fn: _t.Function, gy: Tensor) -> list:
    """Recorded backward of a fused op: differentiate its composed twin instead."""
    xs = list(fn.inputs)
    with enable_grad():
        y = fn.twin(*xs)
        needed = [x for x, n in zip(xs, fn.needs_grad) if n]
        gs = run_backward(
            [y], [gy], inputs=needed, create_graph=True, accumulate=False, allow_unused=True
        )
    it = iter(gs)
    return [next(it) if n else None for n in fn.needs_grad]


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    With ``create_graph=True`` the returned gradients are themselves differentiable:

    >>> import deltaprop as dp
    >>> x = dp.tensor(2.0, requires_grad=True)
    >>> (dx,) = dp.autograd.grad(x ** 3, x, create_graph=True)   # 3x^2 = 12
    >>> (dxx,) = dp.autograd.grad(dx, x)                          # 6x = 12
    >>> float(dx), float(dxx)
    (12.0, 12.0)
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs[{i}] must be a Tensor, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError(f"grad: inputs[{i}] (shape {t.shape}) does not require grad")
    if grad_outputs is None:
        gos = [None] * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        gos = [grad_outputs]
    else:
        gos = list(grad_outputs)
    if len(gos) != len(outs):
        raise ValueError(f"grad: got {len(outs)} outputs but {len(gos)} grad_outputs")
    res = run_backward(
        outs,
        gos,
        inputs=ins,
        retain_graph=retain_graph,
        create_graph=create_graph,
        accumulate=False,
        allow_unused=allow_unused,
    )
    return tuple(res)


# ----------------------------------------------------------------------------------------------
# gradcheck
# ----------------------------------------------------------------------------------------------


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when analytic and numeric gradients disagree."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    fast_mode: bool = False,
) -> bool:
    """Check ``fn``'s backward against central finite differences, in float64.

    Every floating input that requires grad is copied to float64. The output is projected on a
    fixed random vector ``r`` (``L = sum(r * fn(*inputs))``), the analytic gradient of ``L`` comes
    from backward, and each input element is perturbed by ``±eps`` to get
    ``(L(x+eps) - L(x-eps)) / (2 eps)``. Returns True, or raises :class:`GradcheckError` naming the
    input, the element index and both values.

    ``fast_mode=True`` (PyTorch's name) perturbs each input along one random direction ``u``
    instead of element by element: ``(L(x + eps u) - L(x - eps u)) / (2 eps)`` must equal
    ``sum(dL/dx * u)``. Two evaluations per input instead of two per element; a wrong gradient
    component shows up in the directional derivative with probability 1.

    >>> import deltaprop as dp
    >>> x = dp.tensor([[0.5, -1.0]], dtype=dp.float64, requires_grad=True)
    >>> dp.gradcheck(lambda a: a.tanh() * a, (x,))
    True
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    xs: list[Any] = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            # a C-ordered copy: the perturbation below writes through reshape(-1), a view only then
            xs.append(_t._make(np.array(x.data, dtype=np.float64, order="C"), True))
        else:
            xs.append(x)
    diff_idx = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck: no input requires grad; nothing to check")

    out = fn(*xs)
    outs = [out] if isinstance(out, Tensor) else [o for o in out if isinstance(o, Tensor)]
    rng = np.random.default_rng(seed)
    rs = [rng.standard_normal(o.shape) for o in outs]

    def projected() -> float:
        o = fn(*xs)  # not under no_grad: fn may itself differentiate (higher-order checks)
        os_ = [o] if isinstance(o, Tensor) else [p for p in o if isinstance(p, Tensor)]
        return float(sum(np.sum(r * p.data.astype(np.float64)) for r, p in zip(rs, os_)))

    diff_outs = [o for o in outs if o.requires_grad]
    if not diff_outs:
        raise GradcheckError(
            "gradcheck: the output does not depend on any input that requires grad"
        )
    analytic = grad(
        diff_outs,
        [xs[i] for i in diff_idx],
        grad_outputs=[_t._make(r.astype(o.dtype)) for r, o in zip(rs, outs) if o.requires_grad],
        allow_unused=True,
    )
    for k, i in enumerate(diff_idx):
        x = xs[i]
        a = np.zeros(x.shape) if analytic[k] is None else analytic[k].data
        if fast_mode:
            _check_direction(x, a, i, projected, rng, eps, atol, rtol)
            continue
        flat = x.data.reshape(-1)
        num = np.array([central_difference(flat, j, projected, eps) for j in range(flat.size)])
        num = num.reshape(x.shape)
        bad = ~np.isclose(a, num, rtol=rtol, atol=atol)
        if bad.any():
            idx = tuple(int(v) for v in np.argwhere(bad)[0])
            raise GradcheckError(
                f"gradcheck: Jacobian mismatch for input {i} (shape {x.shape}) at element {idx}: "
                f"analytic {a[idx]!r} vs numeric {num[idx]!r} "
                f"(eps={eps}, atol={atol}, rtol={rtol}; "
                f"{int(bad.sum())} of {bad.size} elements differ)"
            )
    return True


def central_difference(flat: np.ndarray, j: int, f: Callable[[], float], eps: float) -> float:
    """``(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)``: element ``j`` of ``flat`` (a flat view of
    the array ``f`` reads) is moved by ``±eps`` and then restored."""
    orig = flat[j]
    flat[j] = orig + eps
    fp = f()
    flat[j] = orig - eps
    fm = f()
    flat[j] = orig
    return (fp - fm) / (2 * eps)


def _check_direction(
    x: Tensor, a: np.ndarray, i: int, projected: Callable[[], float], rng: Any,
    eps: float, atol: float, rtol: float,
) -> None:  # fmt: skip
    """gradcheck's fast mode for input ``i``: one random directional derivative."""
    u = rng.standard_normal(x.shape)
    orig = x.data.copy()
    x.data[...] = orig + eps * u
    fp = projected()
    x.data[...] = orig - eps * u
    fm = projected()
    x.data[...] = orig
    num = (fp - fm) / (2 * eps)
    want = float(np.sum(a * u))
    if not np.isclose(want, num, rtol=rtol, atol=atol * max(1.0, np.sqrt(u.size))):
        raise GradcheckError(
            f"gradcheck (fast mode): directional derivative mismatch for input {i} (shape "
            f"{x.shape}): analytic {want!r} vs numeric {num!r} along a random direction "
            f"(eps={eps}, atol={atol}, rtol={rtol})"
        )
