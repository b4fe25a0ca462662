"""From two recordings of the same step to a replay program.

Every tensor an op reads is classified as the output of an earlier op (``("op", j)``), an
argument of the step (``("arg", k)``), or an external tensor (``("ext", t)``): a parameter, a
buffer, a constant. Two eager recordings are compared op by op (same op types, same wiring,
same shapes and dtypes, same non-array settings, same walk order, same update calls; an external
tensor is either the same object both times -- state, read live at replay -- or an equal
constant); any difference means the step's Python depends on the data, and it is not compiled.

The replay then runs, in the recorded order, only the NumPy work: each op's ``forward`` on its
inputs' arrays, the backward walk as a fixed schedule (the same ``backward`` calls, gradients
summed in the same order), the leaves' gradient accumulation exactly as the engine does it, and
the update calls. Ops with a kernel in :mod:`deltaprop.compiler.kernels` run that instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deltaprop import autograd as _autograd
from deltaprop.compiler.kernels import call_kernel, select_kernels
from deltaprop.compiler.record import CallRecord, Record
from deltaprop.optim.lr_scheduler import LRScheduler
from deltaprop.optim.optimizer import Optimizer
from deltaprop.tensor import Function, Tensor, _make


class Mismatch(Exception):
    """The two recordings differ (the message says where)."""


def flatten_args(args: tuple, kwargs: dict) -> tuple[list[Tensor], tuple]:
    """The step's tensor arguments (positional, then keyword by name) and a guard key that
    also pins every other argument (value for plain Python scalars, identity otherwise)."""
    if not kwargs and all(type(a) is Tensor for a in args):  # the common case
        return list(args), tuple([(a.data.shape, a.data.dtype, a.requires_grad) for a in args])
    tensors, key = [], []
    items = list(enumerate(args)) + sorted(kwargs.items())
    for name, v in items:
        if isinstance(v, Tensor):
            tensors.append(v)
            key.append((name, "T", v.data.shape, v.data.dtype, v.requires_grad))
        elif v is None or isinstance(v, (bool, int, float, str)):
            key.append((name, "V", type(v), v))
        else:
            key.append((name, "O", id(v)))
    return tensors, tuple(key)


class Wiring:
    """Where each tensor of one recording comes from."""

    def __init__(self, rec: Record, args: list[Tensor]) -> None:
        self.rec = rec
        self.out_index = {id(o.out): j for j, o in enumerate(rec.ops)}
        self.arg_index = {id(a): k for k, a in enumerate(args)}
        self.fn_index = {id(o.fn): j for j, o in enumerate(rec.ops)}
        self.walked = {id(fn) for b in rec.backwards for fn, _ in b.walk}
        arrays = set()
        for o in rec.ops:
            arrays.add(id(o.out.data))
            if o.out.data.base is not None:
                arrays.add(id(o.out.data.base))
        self.step_arrays = arrays

    def source(self, t: Tensor) -> tuple:
        j = self.out_index.get(id(t))
        if j is not None:
            return ("op", j)
        k = self.arg_index.get(id(t))
        if k is not None:
            return ("arg", k)
        if id(t.data) in self.step_arrays or (
            t.data.base is not None and id(t.data.base) in self.step_arrays
        ):
            raise Mismatch(
                "a tensor made from a value of the step outside an op (detach() or .data) "
                "feeds an op"
            )
        return ("ext", t)


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str, np.dtype, np.generic)):
        return True
    return isinstance(v, tuple) and all(_plain(x) for x in v)


def _same_value(x: Any, y: Any) -> bool:
    if _plain(x) and _plain(y):
        return bool(x == y)
    if isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y):
        return all(_same_value(a, b) for a, b in zip(x, y))
    return x is y


def _same_init(a: dict, b: dict) -> bool:
    """Whether two ops were constructed alike: equal plain settings (stride, p, eps, ...) and
    the very same objects for anything else (an array or object given to the constructor is
    read again at every replay, so it must be long-lived state, not a value of one call)."""
    return a.keys() == b.keys() and all(_same_value(x, b[k]) for k, x in a.items())


def _same_source(a: tuple, b: tuple, where: str) -> None:
    if a[0] != b[0]:
        raise Mismatch(f"{where}: an input comes from a different place")
    if a[0] in ("op", "arg"):
        if a[1] != b[1]:
            raise Mismatch(f"{where}: an input comes from a different op or argument")
        return
    ta, tb = a[1], b[1]
    if ta is tb:
        return
    if (
        ta.requires_grad
        or tb.requires_grad
        or ta.data.shape != tb.data.shape
        or ta.data.dtype != tb.data.dtype
        or not np.array_equal(ta.data, tb.data)
    ):
        raise Mismatch(f"{where}: a constant differs between calls (made from the data?)")


def compare(r1: Record, w1: Wiring, r2: Record, w2: Wiring) -> None:
    """Raise :class:`Mismatch` unless the two recordings did the same work."""
    if [e[0] for e in r1.events] != [e[0] for e in r2.events] or len(r1.ops) != len(r2.ops):
        raise Mismatch("the sequence of ops differs between calls")
    for j, (a, b) in enumerate(zip(r1.ops, r2.ops)):
        where = f"op {j} ({type(b.fn).__name__})"
        if type(a.fn) is not type(b.fn) or len(a.inputs) != len(b.inputs):
            raise Mismatch(f"{where}: a different op ran")
        for x, y in zip(a.inputs, b.inputs):
            if x.data.shape != y.data.shape or x.data.dtype != y.data.dtype:
                raise Mismatch(f"{where}: input shapes or dtypes differ")
            _same_source(w1.source(x), w2.source(y), where)
        if a.out.data.shape != b.out.data.shape or a.out.data.dtype != b.out.data.dtype:
            raise Mismatch(f"{where}: output shape or dtype differs")
        if a.out.requires_grad != b.out.requires_grad:
            raise Mismatch(f"{where}: requires_grad differs")
        if not _same_init(a.init, b.init):
            raise Mismatch(
                f"{where}: the op was constructed with different settings or with per-call data"
            )
    for a, b in zip(r1.backwards, r2.backwards):
        if [w1.fn_index.get(id(f)) for f, _ in a.walk] != [
            w2.fn_index.get(id(f)) for f, _ in b.walk
        ]:
            raise Mismatch("the backward walk differs between calls")
        if w1.out_index.get(id(a.root)) != w2.out_index.get(id(b.root)):
            raise Mismatch("backward() starts from a different tensor")
    for a, b in zip(r1.calls, r2.calls):
        if a.method != b.method or a.args != b.args or a.kwargs != b.kwargs:
            raise Mismatch("the update calls differ between calls")
    if set(r1.modules) != set(r2.modules):
        raise Mismatch("different modules ran")


# ----------------------------------------------------------------------------------------------
# the replay program
# ----------------------------------------------------------------------------------------------


def _forward_step(fn: Function, ins: tuple[Tensor, ...], out: Tensor) -> Callable[[], None]:
    """Generic: the op's own ``forward`` on its inputs' current arrays."""
    fwd = fn.forward
    if len(ins) == 1:
        (a,) = ins

        def run() -> None:
            y = fwd(a.data)
            if type(y) is not np.ndarray:
                y = np.asarray(y)
            out.data = y
            fn._y = y

    elif len(ins) == 2:
        a, b = ins

        def run() -> None:
            y = fwd(a.data, b.data)
            if type(y) is not np.ndarray:
                y = np.asarray(y)
            out.data = y
            fn._y = y

    else:

        def run() -> None:
            y = fwd(*[t.data for t in ins])
            if type(y) is not np.ndarray:
                y = np.asarray(y)
            out.data = y
            fn._y = y

    return run


def store_leaf_grads(leaves: list[Tensor], grads: list[Any]) -> None:
    """Add each gradient into its leaf's ``.grad`` with the engine's rule
    (``autograd._store_leaf_grad``); its most common case -- a fresh array of the leaf's shape
    and dtype for a leaf without a gradient: stored as is -- is tested here first."""
    stored: set[int] = set()
    store = _autograd._store_leaf_grad
    for leaf, g in zip(leaves, grads):
        if (
            leaf.grad is None
            and type(g) is np.ndarray
            and g.base is None
            and id(g) not in stored
            and g.shape == leaf.data.shape
            and g.dtype == leaf.data.dtype
        ):
            stored.add(id(g))
            leaf.grad = _make(g)
        elif g is not None:
            store(leaf, g, False, stored)


class Program:
    """A recorded step, ready to replay into the same kind of arguments."""

    def __init__(self, rec: Record, wiring: Wiring, args: list[Tensor], result: Any) -> None:
        self.args = [_make(a.data, a.requires_grad) for a in args]  # private placeholders
        self.current: list[Tensor] = []  # the arguments of the call being replayed
        outs = [_make(o.out.data, o.out.requires_grad, o.out._ctx) for o in rec.ops]
        self.outs = outs
        self._live: list[Tensor] = []  # external tensors the step reads (state or constants)
        sources = []
        for j, o in enumerate(rec.ops):
            srcs = [wiring.source(t) for t in o.inputs]
            sources.append(srcs)
            o.fn.inputs = tuple(self._resolve(s) for s in srcs)
            if o.out._ctx is o.fn:
                o.fn._y = outs[j].data
        self.result = _result_template(result, wiring)
        self.build_result = _result_builder(self.result, outs)
        plans = [_walk_plan(rec, wiring, sources, i) for i in range(len(rec.backwards))]
        self.pinned = pinned = _pinned(self.result, plans)
        self.ops_after: set[int] = set()  # ops that run after the (first) backward pass
        if rec.backwards:  # their inputs are read again after it: pinned
            first = rec.events.index(("backward", 0))
            self.ops_after = {j for kind, j in rec.events[first:] if kind == "op"}
            for j in self.ops_after:
                pinned.update(src[1] for src in sources[j] if src[0] == "op")
        self.kernels = select_kernels(rec, sources, outs, plans, pinned)
        for j, k in enumerate(self.kernels):
            if k is not None:  # its saved arrays from the recording are not needed
                _drop_saved(rec.ops[j].fn, rec.ops[j].init)()
        steps: list[Callable[[], None]] = []
        for kind, i in rec.events:
            if kind == "op":
                o, k = rec.ops[i], self.kernels[i]
                fwd = k.forward if k is not None else _forward_step(o.fn, o.fn.inputs, outs[i])
                steps.append(fwd)
            elif kind == "backward":
                steps.append(self._backward_step(rec, plans[i], i))
            else:
                steps.append(call_kernel(rec.calls[i]))
        self.steps = steps
        # guards: the modules' modes, and the leaves' requires_grad
        self.modules = list(rec.modules.values())
        self.modes = [m.training for m in self.modules]
        self.ext_flags = _ext_key(self._live)
        self.optimizers = _owners(rec.calls, Optimizer)
        self.param_ids = _param_ids(self.optimizers)
        self.schedulers = _owners(rec.calls, LRScheduler)
        self.validated = False  # checked once against eager mode (see compiler.validate)

    def state_tensors(self) -> list[Tensor]:
        """The tensors a step may change: the modules' parameters and buffers, and every
        external tensor an op reads."""
        seen: dict[int, Tensor] = {}
        for m in self.modules:
            for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
                if t is not None:
                    seen.setdefault(id(t), t)
        for t in self._live:
            seen.setdefault(id(t), t)
        return list(seen.values())

    @staticmethod
    def check_result(result: Any, wiring: Wiring) -> None:
        """Raise :class:`Mismatch` unless the step's return value is made of tensors."""
        _result_template(result, wiring)

    def _resolve(self, src: tuple) -> Tensor:
        if src[0] == "op":
            return self.outs[src[1]]
        if src[0] == "arg":
            return self.args[src[1]]
        t = src[1]
        if not any(t is u for u in self._live):
            self._live.append(t)
        return t

    def _backward_step(self, rec: Record, wp: WalkPlan, i: int) -> Callable[[], None]:
        brec = rec.backwards[i]
        root = self.outs[wp.root]
        gsrc, given = wp.gradient_source, brec.gradient
        if gsrc is not None and gsrc[0] != "arg":
            given = self._resolve(gsrc)
        n = len(rec.ops)
        n_slots = n + len(wp.leaves)
        kernels = self.kernels
        after = self._releases(rec, wp)
        plan = [
            (
                kernels[j].backward if kernels[j] is not None else rec.ops[j].fn.backward,
                j,
                tg,
                after[pos],
            )
            for pos, (j, tg) in enumerate(wp.steps)
        ]
        at_end = after[-1] if len(after) > len(wp.steps) else None
        live_leaves = [s[1] if s[0] == "ext" else None for s in wp.leaves]
        arg_leaves = [(i, s[1]) for i, s in enumerate(wp.leaves) if s[0] == "arg"]
        root_grad = _autograd._root_grad
        root_j = wp.root

        def run() -> None:
            g = given if gsrc is None or gsrc[0] != "arg" else self.current[gsrc[1]]
            G: list[Any] = [None] * n_slots
            G[root_j] = root_grad(root, g, False)
            for backward, j, targets, release in plan:
                gs = backward(G[j])
                G[j] = None
                for gi, tg in zip(gs, targets):
                    if tg is not None and gi is not None:
                        old = G[tg]
                        G[tg] = gi if old is None else old + gi
                if release is not None:
                    release()
            if at_end is not None:
                at_end()
            leaves = live_leaves
            if arg_leaves:
                leaves = list(live_leaves)
                for s, k in arg_leaves:
                    leaves[s] = self.current[k]
            store_leaf_grads(leaves, G[n:])

        return run

    def _releases(self, rec: Record, wp: WalkPlan) -> list:
        """What to free after each step of the walk, as the engine frees a Function after its
        backward: an op's saved arrays (what its forward set) once its backward has run, an
        op's output once the last backward reading it has run. The extra last entry frees what
        no backward reads."""
        kernels, n = self.kernels, len(rec.ops)
        todo: list[list[Callable[[], None]]] = [[] for _ in range(len(wp.steps) + 1)]
        if len(rec.backwards) != 1:
            return [None] * len(todo)
        ops_after = self.ops_after
        index = {id(t): i for i, t in enumerate(self.outs)}
        pos_of = {j: pos for pos, (j, _) in enumerate(wp.steps)}
        last = [-1] * n  # the last walk position reading each op's output
        keep = self.pinned  # returned, or read by an op that runs after the backward pass
        for j, o in enumerate(rec.ops):
            for t in o.fn.inputs:
                i = index.get(id(t))
                if i is None:
                    continue
                if j in pos_of:
                    last[i] = max(last[i], pos_of[j])
            if j in pos_of:
                last[j] = max(last[j], pos_of[j])
        for j, pos in pos_of.items():
            fn = rec.ops[j].fn
            if kernels[j] is None:
                todo[pos].append(_drop_saved(fn, rec.ops[j].init))
        for i, out in enumerate(self.outs):
            if i not in keep and i not in ops_after:
                todo[last[i] if last[i] >= 0 else -1].append(_drop_data(out))
        return [_sequence(fs) for fs in todo]

    # -- guards and replay ---------------------------------------------------------------------
    def matches(self) -> bool:
        """Whether the modules' modes, the external tensors' requires_grad, dtypes and shapes
        and the optimizers' parameter groups are as recorded."""
        return (
            [m.training for m in self.modules] == self.modes
            and _ext_key(self._live) == self.ext_flags
            and _param_ids(self.optimizers) == self.param_ids
        )

    def run(self, args: list[Tensor]) -> Any:
        self.current = args
        for p, a in zip(self.args, args):
            p.data = a.data
        for step in self.steps:
            step()
        self.current = []
        return self.build_result(args)


def _drop_saved(fn: Function, init: dict) -> Callable[[], None]:
    """Free what ``fn.forward`` saved (its constructor's attributes stay)."""
    keys = [k for k in fn.__dict__ if k not in init and k != "backward"]
    d = fn.__dict__

    def drop() -> None:
        fn._y = None
        for k in keys:
            d.pop(k, None)

    return drop


def _drop_data(t: Tensor) -> Callable[[], None]:
    def drop() -> None:
        t.data = None

    return drop


def _sequence(fs: list[Callable[[], None]]) -> Callable[[], None] | None:
    if not fs:
        return None
    if len(fs) == 1:
        return fs[0]
    return lambda: [f() for f in fs] and None


class WalkPlan:
    """One backward walk as a fixed schedule: ``steps`` = (op index, target slot per input);
    slots ``0..n-1`` are the ops' output gradients, ``n + i`` the i-th leaf's."""

    def __init__(self, root: int, gradient_source: tuple | None) -> None:
        self.root = root
        self.gradient_source = gradient_source
        self.steps: list[tuple[int, tuple]] = []
        self.leaves: list[tuple] = []  # the leaves' sources, in the engine's storing order


def _walk_plan(rec: Record, w: Wiring, sources: list, i: int) -> WalkPlan:
    brec = rec.backwards[i]
    root_j = w.out_index.get(id(brec.root))
    if root_j is None or rec.ops[root_j].out._ctx is None:
        raise Mismatch("backward() from a tensor that no recorded op produced")
    gsrc = w.source(brec.gradient) if isinstance(brec.gradient, Tensor) else None
    wp = WalkPlan(root_j, gsrc)
    leaf_slot: dict[int, int] = {}  # id(leaf tensor, as recorded) -> its slot
    n = len(rec.ops)
    for fn, grads in brec.walk:
        j = w.fn_index[id(fn)]
        targets: list[int | None] = []
        for t, src, gi in zip(rec.ops[j].inputs, sources[j], grads):
            if gi is None:
                targets.append(None)
            elif t._ctx is not None:
                targets.append(w.out_index[id(t)])
            elif t.requires_grad:
                if id(t) not in leaf_slot:
                    leaf_slot[id(t)] = len(wp.leaves)
                    wp.leaves.append(src)
                targets.append(n + leaf_slot[id(t)])
            else:
                targets.append(None)
        wp.steps.append((j, tuple(targets)))
    return wp


def _pinned(tpl: tuple, plans: list[WalkPlan]) -> set[int]:
    """Ops whose output must keep its own array: returned, or a backward root / gradient."""
    out: set[int] = set()

    def visit(t: tuple) -> None:
        kind, v = t
        if kind == "tensor":
            if v[0] == "op":
                out.add(v[1])
        elif kind == "dict":
            for x in v.values():
                visit(x)
        elif kind in ("tuple", "list"):
            for x in v:
                visit(x)

    visit(tpl)
    for wp in plans:
        out.add(wp.root)
        if wp.gradient_source is not None and wp.gradient_source[0] == "op":
            out.add(wp.gradient_source[1])
    return out


def _owners(calls: list[CallRecord], cls: type) -> list[Any]:
    """The distinct objects of class ``cls`` whose methods the step called, in call order."""
    out: list[Any] = []
    for c in calls:
        obj = c.method.__self__
        if isinstance(obj, cls) and not any(obj is o for o in out):
            out.append(obj)
    return out


def _ext_key(tensors: list[Tensor]) -> list:
    """What the guard checks of the external tensors: requires_grad, dtype and shape."""
    return [(t.requires_grad, t.data.dtype, t.data.shape) for t in tensors]


def _param_ids(optimizers: list[Any]) -> list:
    """What the guard checks of each optimizer's parameters: its groups' lists and sizes."""
    return [(id(g["params"]), len(g["params"])) for o in optimizers for g in o.param_groups]


def _result_template(value: Any, w: Wiring) -> Any:
    """The step's return value with each tensor replaced by where it comes from.

    A returned tensor whose graph no backward pass of the step has used (``dp.compile(model)``
    called for a forward pass in grad mode) cannot be replayed: the caller would backpropagate
    through it later, and a replay builds no graph.
    """
    if isinstance(value, Tensor):
        src = w.source(value)
        if src[0] == "op" and value._ctx is not None and id(value._ctx) not in w.walked:
            raise Mismatch(
                "it returns a tensor whose graph a later backward() would need (compile the "
                "whole training step, backward and update included, or run it under no_grad)"
            )
        return ("tensor", src)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [_result_template(v, w) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _result_template(v, w) for k, v in value.items()})
    if value is None or isinstance(value, (bool, int, float, str)):
        return ("value", value)
    raise Mismatch(f"the step returns a {type(value).__name__}; expected tensors")


def _result_builder(tpl: tuple, outs: list[Tensor]) -> Callable[[list[Tensor]], Any]:
    """A function of the call's arguments that builds the step's return value. An op's output
    is returned as a copy: the array may be a buffer the next replay writes again."""
    kind, v = tpl
    if kind == "tensor":
        where, i = v
        if where == "op":
            t = outs[i]
            return lambda args: _make(t.data.copy())
        if where == "arg":
            return lambda args: args[i]
        return lambda args: i  # an external tensor, returned as itself
    if kind == "value":
        return lambda args: v
    if kind == "dict":
        parts = {k: _result_builder(x, outs) for k, x in v.items()}
        return lambda args: {k: f(args) for k, f in parts.items()}
    items = [_result_builder(x, outs) for x in v]
    if kind == "tuple":
        return lambda args: tuple([f(args) for f in items])
    return lambda args: [f(args) for f in items]
