"""Recording one eager training step: every op, the backward walk, and the update calls.

While a :class:`Recorder` is active (``with Recorder() as rec: fn(*args)``) a few engine entry
points are wrapped, and restored on exit; nothing is wrapped otherwise, so eager mode pays
nothing for the compiler:

* ``Function.apply``: each op with its input tensors and output tensor (``OpRecord``);
* ``autograd.run_backward``: each ``Tensor.backward()`` call, run with ``retain_graph=True`` so
  the recorded Functions keep their inputs, and the actual order of the walk: which Function's
  ``backward`` ran when, with which upstream gradient, returning which gradients;
* ``step`` / ``zero_grad`` of every optimizer class, ``Module.zero_grad`` and
  ``LRScheduler.step``: the update work, replayed later by calling the same bound method;
* ``Module.__call__``: which modules ran, for the train/eval guard;
* the ways a tensor's value reaches Python (``item``, ``bool``, ``float``, ``int``, ``numpy``,
  ``tolist``, ``__array__``): any of them makes the step unrecordable (its Python control flow
  may depend on the data).

Random draws are checked too: the global generator must change state only inside an op's
``forward`` (which the replay calls again, drawing anew); a draw anywhere else in the step cannot
be replayed.
"""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass, field
from typing import Any

from deltaprop import autograd as _autograd
from deltaprop.nn.module import Module
from deltaprop.optim import lr_scheduler as _sched
from deltaprop.optim.optimizer import Optimizer
from deltaprop.tensor import Function, Tensor

# the modules themselves (the package exports functions of the same names)
_t = importlib.import_module("deltaprop.tensor")
_random = importlib.import_module("deltaprop.random")

_APPLY = Function.__dict__["apply"]  # the engine's own (a Recorder wraps it while active)

# How a tensor's value can reach Python code (the leak guard wraps these Tensor methods).
_LEAKS = ("item", "__bool__", "__float__", "__int__", "__index__", "numpy", "tolist", "__array__")


class Unrecordable(Exception):
    """The step did something the replay cannot reproduce (the message says what)."""


@dataclass
class OpRecord:
    """One ``Function.apply``: the op object, its input tensors and its output tensor."""

    fn: Function
    inputs: tuple[Tensor, ...]
    out: Tensor
    init: dict  # the op's attributes before its forward ran (its constructor's)


@dataclass
class BackwardRecord:
    """One ``backward()``: the root, the given gradient (or None) and the walk, in order."""

    root: Tensor
    gradient: Any
    walk: list[tuple[Function, tuple]] = field(default_factory=list)  # (fn, its returned grads)


@dataclass
class CallRecord:
    """A call of an update method (optimizer step / zero_grad, scheduler step)."""

    method: Any  # the bound method
    args: tuple
    kwargs: dict


@dataclass
class Record:
    """Everything one eager call did, in order (``events`` indexes the three lists)."""

    ops: list[OpRecord] = field(default_factory=list)
    backwards: list[BackwardRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)
    modules: dict[int, Module] = field(default_factory=dict)
    problem: str | None = None  # the first reason the step cannot be replayed


def _subclasses(cls: type) -> list[type]:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


class Recorder:
    """Context manager: wraps the engine entry points listed in the module docstring."""

    def __init__(self) -> None:
        self.record = Record()
        self._saved: list[tuple[Any, str, Any]] = []
        self._depth = 0  # > 0 inside a recorded update call (its own ops are not the model's)

    @staticmethod
    def active() -> bool:
        """Whether a recording is in progress (the engine entry points are wrapped)."""
        return Function.__dict__["apply"] is not _APPLY

    # -- helpers -------------------------------------------------------------------------------
    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, new)

    def flag(self, problem: str) -> None:
        if self.record.problem is None:
            self.record.problem = problem

    def _rng(self) -> tuple[int, Any]:
        g = _random.default_generator()
        return id(g), g.bit_generator.state

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        rec = self.record
        recorder = self
        orig_apply = Function.__dict__["apply"]
        orig_backward = _autograd.run_backward
        self._rng_state = self._rng()

        def apply(fn: Function, *inputs: Tensor) -> Tensor:
            if recorder._depth:
                return orig_apply(fn, *inputs)
            if recorder._rng() != recorder._rng_state:
                recorder.flag("a random number was drawn outside an op's forward")
            init = dict(fn.__dict__)
            out = orig_apply(fn, *inputs)
            recorder._rng_state = recorder._rng()
            rec.events.append(("op", len(rec.ops)))
            rec.ops.append(OpRecord(fn, inputs, out, init))
            return out

        def run_backward(roots, root_grads, inputs=None, retain_graph=None, create_graph=False,
                         accumulate=True, allow_unused=False):  # fmt: skip
            if recorder._depth or inputs is not None or create_graph or not accumulate:
                recorder.flag("autograd.grad or create_graph=True inside the step")
                return orig_backward(roots, root_grads, inputs, retain_graph, create_graph,
                                     accumulate, allow_unused)  # fmt: skip
            if len(roots) != 1:
                recorder.flag("backward from several outputs at once")
            brec = BackwardRecord(roots[0], root_grads[0])
            wrapped = _wrap_walk(roots, brec)
            try:
                out = orig_backward(roots, root_grads, None, True, False, True, allow_unused)
            finally:
                for fn in wrapped:
                    fn.__dict__.pop("backward", None)
            if _t._any_retains_grad and any(o.out._retains_grad for o in rec.ops):
                recorder.flag("retain_grad() on a tensor of the step")
            if _t._any_post_accumulate_hooks and any(
                getattr(t, "_post_acc_hooks", None) for fn in wrapped for t in fn.inputs
            ):
                recorder.flag("a post-accumulate-grad hook on a parameter")
            rec.events.append(("backward", len(rec.backwards)))
            rec.backwards.append(brec)
            return out

        self._patch(Function, "apply", apply)
        self._patch(_autograd, "run_backward", run_backward)

        for cls in _subclasses(Optimizer):
            for name in ("step", "zero_grad"):
                if name in cls.__dict__:
                    self._patch(cls, name, _wrap_call(recorder, cls.__dict__[name]))
        for cls in _subclasses(_sched.LRScheduler):
            if "step" in cls.__dict__:
                self._patch(cls, "step", _wrap_call(recorder, cls.__dict__["step"]))
        self._patch(Module, "zero_grad", _wrap_call(recorder, Module.__dict__["zero_grad"]))
        orig_call = Module.__dict__["__call__"]

        def module_call(m: Module, *args: Any, **kwargs: Any) -> Any:
            rec.modules[id(m)] = m
            return orig_call(m, *args, **kwargs)

        self._patch(Module, "__call__", module_call)
        for name in _LEAKS:
            if name in Tensor.__dict__:
                self._patch(Tensor, name, _wrap_leak(recorder, name, Tensor.__dict__[name]))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._saved:
            owner, name, old = self._saved.pop()
            setattr(owner, name, old)
        if self._rng() != self._rng_state:
            self.flag("a random number was drawn outside an op's forward")


def _wrap_call(recorder: Recorder, method: Any) -> Any:
    """Record a top-level call of an update method; its own tensor work is not recorded."""

    def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if recorder._depth:
            return method(obj, *args, **kwargs)
        rec = recorder.record
        if args and callable(args[0]) or "closure" in kwargs:
            recorder.flag("optimizer.step(closure) inside the step")
        rec.events.append(("call", len(rec.calls)))
        rec.calls.append(CallRecord(types.MethodType(method, obj), args, kwargs))
        recorder._depth += 1
        try:
            return method(obj, *args, **kwargs)
        finally:
            recorder._depth -= 1
            recorder._rng_state = recorder._rng()

    wrapper.__name__ = method.__name__
    return wrapper


def _wrap_leak(recorder: Recorder, name: str, method: Any) -> Any:
    def wrapper(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not recorder._depth:
            recorder.flag(f"Tensor.{name}() inside the step (a tensor value reached Python)")
        return method(self, *args, **kwargs)

    return wrapper


def _wrap_walk(roots: list[Tensor], brec: BackwardRecord) -> list[Function]:
    """Wrap ``backward`` of every Function reachable from ``roots`` (on the instance) so that
    the engine's walk is recorded in the order it runs."""
    fns = _autograd.graph_functions(roots)
    for fn in fns:
        bound = fn.backward

        def backward(gy: Any, _fn: Function = fn, _bound: Any = bound) -> tuple:
            grads = _bound(gy)
            brec.walk.append((_fn, tuple(grads)))
            return grads

        fn.backward = backward
    return fns
