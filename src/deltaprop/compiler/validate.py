"""Checking a program once against eager mode, before trusting it.

Two equal recordings show that the step did the same *recorded* work twice; they cannot show
work the recorder does not see: NumPy code on ``.data`` arrays in the step itself (a hand-made
update, ``clip_grad_norm_``-style helpers that read and scale ``.grad`` arrays), or state kept
in Python. So the first replay of every program is checked: the state the step can change is
saved, the replay runs, its results and that state are kept, the saved state is put back, the
step runs eagerly, and both outcomes must be equal bit for bit (losses, parameters, buffers,
gradients, optimizer state, the random generator). The eager outcome is the one that stays.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

import numpy as np

from deltaprop.tensor import Tensor

_random = importlib.import_module("deltaprop.random")  # (dp.random is not this module)


class Snapshot:
    """The state a step may change: tensors (data and ``.grad``), optimizer state and
    hyperparameters, scheduler attributes, the global random generator."""

    def __init__(self, tensors: list[Tensor], optimizers: list[Any], others: list[Any]) -> None:
        self.tensors = [
            (t, t.data.copy(), t.grad, None if t.grad is None else t.grad.data.copy())
            for t in tensors
        ]
        self.optimizers = [
            (
                o,
                {p: {k: _save(v) for k, v in st.items()} for p, st in o.state.items()},
                [dict(g) for g in o.param_groups],
            )
            for o in optimizers
        ]
        self.others = [(obj, copy.copy(obj.__dict__)) for obj in others]
        gen = _random.default_generator()
        self.rng = (gen, gen.bit_generator.state)

    def restore(self) -> None:
        for t, data, grad, grad_data in self.tensors:
            _put(t, data)
            t.grad = grad
            if grad is not None:
                _put(grad, grad_data)
        for o, state, groups in self.optimizers:
            for p in [p for p in o.state if p not in state]:
                del o.state[p]
            for p, saved in state.items():
                st = o.state[p]
                for k in [k for k in st if k not in saved]:
                    del st[k]
                for k, (obj, value) in saved.items():
                    if isinstance(obj, Tensor):
                        _put(obj, value)
                    st[k] = obj if isinstance(obj, Tensor) else value
            for g, saved_group in zip(o.param_groups, groups):
                g.update(saved_group)
        for obj, attrs in self.others:
            obj.__dict__.clear()
            obj.__dict__.update(attrs)
        gen, state = self.rng
        _random._generator = gen
        gen.bit_generator.state = state

    def outcome(self) -> list:
        """Copies of everything :meth:`restore` would put back, for comparing two runs."""
        out: list[Any] = []
        for t, _, _, _ in self.tensors:
            out += [t.data.copy(), None if t.grad is None else t.grad.data.copy()]
        for o, _, _ in self.optimizers:
            for p, st in o.state.items():
                out += [id(p), sorted(st)]
                out += [_save(v)[1] for v in st.values()]
            out += [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]
        gen = _random.default_generator()
        out += [id(gen), gen.bit_generator.state]
        return out


def _save(v: Any) -> tuple[Any, Any]:
    if isinstance(v, Tensor):
        return v, v.data.copy()
    if isinstance(v, np.ndarray):
        return v, v.copy()
    return v, copy.deepcopy(v)


def _put(t: Tensor, value: np.ndarray) -> None:
    """Write ``value`` back into ``t``'s array (in place: ops may hold that very array)."""
    d = t.data
    if type(d) is np.ndarray and d.shape == value.shape and d.dtype == value.dtype:
        if d.flags.writeable:
            np.copyto(d, value)
            return
    t.data = value.copy()


def same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two outcomes (arrays compared with NaNs equal)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        return same(a.data, b.data)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except ValueError:
        return False
