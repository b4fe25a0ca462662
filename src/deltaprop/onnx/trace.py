"""Tracing: run the model once with graph recording, and check the graph holds for other inputs.

:func:`trace` runs the model in eval mode on inputs that require gradients, so the engine records
every op that depends on them; forward hooks on every submodule note which module each op ran
in. :func:`topological` lists the recorded ops, each after the ops it reads.

A traced export writes the ops that ran on the example input. Values computed outside the
recorded graph become constants of the file: a comparison used as a ``where`` condition, an
index array from ``argmax``, a tensor rebuilt from ``.numpy()``. Such a constant is right only
for the example. :func:`check_stable` traces the model a second time on a perturbed copy of the
example (each dynamic axis one longer, the random generator reset to the same state) and
compares, op by op, the values the graph would freeze: one that changed depends on the input,
and the export is refused naming the op and the module it ran in. :func:`check_shapes` then
checks that every output length that changed is one the graph keeps free. A forward that runs
other ops for the other input (Python control flow on tensor values) gets a warning: the file
follows the example's path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from deltaprop.errors import ExportError
from deltaprop.ops.elementwise import WhereFunction
from deltaprop.ops.loss import NLLLossFunction
from deltaprop.ops.shape import GetItemFunction
from deltaprop.random import get_rng_state, set_rng_state
from deltaprop.tensor import Tensor, _make, enable_grad

__all__ = ["trace", "topological", "check_stable", "check_shapes", "tensors_of"]


def tensors_of(obj: Any) -> list[Tensor]:
    """The tensors in ``obj`` (a Tensor, or nested tuples/lists), in order."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in tensors_of(item)]
    return []


def trace(model: Any, inputs: list[Tensor], preprocess: Any = None) -> tuple[list[Tensor], dict]:
    """Run ``model`` once in eval mode with graph recording: ``(outputs, {Function: module})``."""
    from deltaprop.nn.module import Module

    owners: dict[Any, str] = {}
    handles, modes = [], []
    if isinstance(model, Module):
        for name, module in model.named_modules():
            modes.append((module, module.training))
            handles.append(module.register_forward_hook(_owner_hook(name, owners)))
        model.eval()
    elif not callable(model):
        raise ExportError(f"model must be a deltaprop Module or a callable, got {model!r}")
    try:
        with enable_grad():
            try:
                xs = inputs if preprocess is None else [preprocess(x) for x in inputs]
                out = model(*xs)
            except Exception as e:
                shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
                raise ExportError(
                    f"the model does not run on args (shapes {shapes}): {type(e).__name__}: {e}"
                ) from e
    finally:
        for h in handles:
            h.remove()
        for module, training in modes:
            module.training = training
    outputs = tensors_of(out)
    if not outputs or (not isinstance(out, Tensor) and len(outputs) != _count_leaves(out)):
        raise ExportError(
            f"the model returned {type(out).__name__}; export needs a Tensor or a tuple/list of "
            "Tensors"
        )
    return outputs, owners


def _count_leaves(obj: Any) -> int:
    if isinstance(obj, (tuple, list)):
        return sum(_count_leaves(item) for item in obj)
    return 1


def _owner_hook(name: str, owners: dict) -> Any:
    """A forward hook assigning the ops between a module's inputs and outputs to it (inner
    modules run their hooks first, so every op gets its innermost module)."""

    def hook(module: Any, args: Any, output: Any) -> None:
        stops = {id(t) for t in tensors_of(args)}
        stack = [t._ctx for t in tensors_of(output) if t._ctx is not None and id(t) not in stops]
        seen: set[int] = set()
        while stack:
            fn = stack.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            owners.setdefault(fn, name)
            for t in fn.inputs or ():
                if t._ctx is not None and id(t) not in stops:
                    stack.append(t._ctx)

    return hook


def topological(outputs: list[Tensor]) -> list[Any]:
    """The recorded Functions behind ``outputs``, each after the Functions it reads."""
    order: list[Any] = []
    visited: set[int] = set()
    for out in outputs:
        if out._ctx is None:
            continue
        stack = [(out._ctx, False)]
        while stack:
            fn, done = stack.pop()
            if done:
                order.append(fn)
                continue
            if id(fn) in visited:
                continue
            visited.add(id(fn))
            stack.append((fn, True))
            for t in fn.inputs:
                if t._ctx is not None and id(t._ctx) not in visited:
                    stack.append((t._ctx, False))
    return order


def _frozen(fn: Any, is_graph_leaf: Callable[[Tensor], bool]) -> list[np.ndarray]:
    """The arrays that ``fn`` contributes to the file as constants (not inputs or parameters)."""
    values = [t.data for t in fn.inputs if t._ctx is None and not is_graph_leaf(t)]
    if isinstance(fn, WhereFunction):
        values.append(np.asarray(fn.cond))
    if isinstance(fn, NLLLossFunction):  # the op holds its class-index targets
        values.append(fn.tg.y)
    if isinstance(fn, GetItemFunction):
        index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
        values.extend(i if isinstance(i, np.ndarray) else np.asarray(repr(i)) for i in index)
    return values


def _perturbed(inputs: list[Tensor], grow: list[set[int]]) -> list[Tensor]:
    """Other inputs: each example's values shuffled, negated and jittered (an integer input
    shuffled), so that comparisons, orderings and signs computed from them change; each axis in
    ``grow[i]`` (the dynamic axes of input i) one longer."""
    rng = np.random.default_rng(20240917)
    out = []
    for t, axes in zip(inputs, grow):
        shape = tuple(n + 1 if a in axes else n for a, n in enumerate(t.shape))
        shuffled = np.resize(rng.permutation(t.data.reshape(-1)), shape)
        if t.dtype.kind != "f":  # integers (class indices): shuffled only, still valid
            out.append(_make(shuffled.astype(t.dtype)))
            continue
        scale = float(np.std(t.data)) + 1e-3 if t.data.size else 1.0
        other = rng.standard_normal(shape) * scale - shuffled
        out.append(_make(other.astype(t.dtype), True))
    return out


def check_stable(
    run: Callable[[list[Tensor]], tuple[list[Tensor], dict]],
    inputs: list[Tensor],
    dynamic: list[set[int]],
    order: list[Any],
    state_ids: set[int],
    where: Callable[[Any], str],
    rng_before: dict[str, Any],
) -> list[Any] | None:
    """Compare the ops of the first trace (``order``, on ``inputs``) with a second trace on
    other values, with the ``dynamic`` axes of each input one longer.

    ``run`` traces the model on a list of inputs; ``state_ids`` are the ids of the parameters and
    buffers (tensors and arrays); ``where`` names the module an op of the first trace ran in;
    ``rng_before`` is the generator state the first trace started from. Returns the second
    trace's ops, one per op of ``order`` (for :func:`check_shapes`), or None when the second
    trace could not run or ran other ops.
    """
    rng_after = get_rng_state()
    others = _perturbed(inputs, dynamic)
    set_rng_state(rng_before)
    try:
        with np.errstate(all="ignore"):  # the perturbed values may leave a function's domain
            outputs, _ = run(others)
    except ExportError:
        return None  # the model does not accept other values (a checked domain)
    finally:
        set_rng_state(rng_after)
    other_order = topological(outputs)
    if [type(f) for f in other_order] != [type(f) for f in order]:
        warnings.warn(
            "the forward ran other ops for another input (Python control flow on tensor "
            "values?): the exported graph follows the path taken on args",
            UserWarning,
            stacklevel=4,
        )
        return None

    def leaf_test(xs: list[Tensor]) -> Callable[[Tensor], bool]:
        data = {id(x.data) for x in xs}
        return lambda t: id(t) in state_ids or id(t.data) in state_ids or id(t.data) in data

    first, second = leaf_test(inputs), leaf_test(others)
    for fn, other in zip(order, other_order):
        frozen, frozen_other = _frozen(fn, first), _frozen(other, second)
        same = len(frozen) == len(frozen_other) and all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            for a, b in zip(frozen, frozen_other)
        )
        if not same:
            raise ExportError(
                f"op {fn.name}, used in {where(fn)}, reads a value computed from the input "
                "outside the recorded graph (a comparison, an index, .numpy(), .item(), a new "
                "tensor, or one sized by the input's shape): the file would freeze it to the "
                "example's value"
            )
    return other_order


def check_shapes(
    order: list[Any], other_order: list[Any], dynamic_of: Callable[[Any], set[int]], where: Any
) -> None:
    """Every output axis whose length changed in the second trace must be dynamic in the graph
    (``dynamic_of(fn)``: the axes the export keeps free); else the file would fix its length."""
    for fn, other in zip(order, other_order):
        a_shape, b_shape = fn._y.shape, other._y.shape
        free = dynamic_of(fn)
        for axis, (n, m) in enumerate(zip(a_shape, b_shape)):
            if n != m and axis not in free:
                raise ExportError(
                    f"op {fn.name}, used in {where(fn)}, makes axis {axis} of its output follow "
                    f"a dynamic axis ({n} here, {m} for a longer one), but the export would fix "
                    f"its length to {n} (a size taken from a shape, as in expand(x.shape[0], "
                    "...)); use broadcasting or reshape with -1 instead"
                )
