"""Helpers that backward formulas use, working on NumPy arrays and on Tensors alike.

A backward formula receives NumPy arrays in a normal backward pass (fast: nothing recorded) and
Tensors when the backward pass is recorded for higher-order gradients (``create_graph=True``).
Arithmetic operators already work on both; the few functions below dispatch on the type, so
each formula is written once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.tensor import Tensor


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Reduce a broadcast gradient back to ``shape``: sum over the axes broadcasting added.

    The backward of broadcasting ``x`` (shape ``shape``) to ``g.shape`` is a sum over the new
    leading axes and over the axes where ``x`` had size 1.
    """
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(shape)
    return g


def broadcast_to(g: Any, shape: tuple[int, ...]) -> Any:
    """``g`` repeated to ``shape`` (a new writable array; the ``expand`` op for Tensors).

    Filling a new array costs less than ``np.broadcast_to``'s Python wrapper for small arrays and
    gives downstream code (and ``.grad``) memory of its own.
    """
    if isinstance(g, Tensor):
        return g.expand(shape)
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


def permute(g: Any, axes: tuple[int, ...]) -> Any:
    if isinstance(g, Tensor):
        return g.permute(axes)
    return g.transpose(axes)


def swap_last(g: Any) -> Any:
    """Swap the last two axes (matrix transpose of a batch of matrices)."""
    if isinstance(g, Tensor):
        return g.transpose(-1, -2)
    return g.swapaxes(-1, -2)


def where(cond: np.ndarray, a: Any, b: Any) -> Any:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        from deltaprop.ops.elementwise import where as t_where

        return t_where(cond, a, b)
    return np.where(cond, a, b)


def exp(x: Any) -> Any:
    return x.exp() if isinstance(x, Tensor) else np.exp(x)


def log(x: Any) -> Any:
    return x.log() if isinstance(x, Tensor) else np.log(x)


def unbroadcast(g: Any, x: Any) -> Any:
    """``g`` reduced to the shape of input ``x`` and cast to its dtype (binary-op backward)."""
    g = sum_to(g, x.shape)
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    return g


def scatter_add(shape: tuple[int, ...], index: Any, g: Any, dtype: Any) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate).

    The backward of ``x[index]``. Basic indices (ints, slices, None, Ellipsis) select each element
    at most once, so does a boolean mask, and a plain assignment is enough; integer arrays may
    repeat an index, so their gradients are accumulated with ``np.add.at``.
    """
    if isinstance(g, Tensor):
        from deltaprop.ops.shape import IndexAddFunction

        return IndexAddFunction(shape, index).apply(g)
    out = np.zeros(shape, dtype=dtype)
    if selects_once(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def selects_once(index: Any) -> bool:
    """True when ``x[index]`` reads every element at most once (no integer-array index)."""
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if isinstance(it, np.ndarray) and it.dtype != np.bool_:
            return False
    return True
