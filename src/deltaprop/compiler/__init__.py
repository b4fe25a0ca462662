"""``deltaprop.compile``: record a whole training step once, then replay only its NumPy work.

Used as ``torch.compile`` is::

    @dp.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for x, y in loader:
        loss = train_step(x, y)

How it works
------------
1. The first two calls with arguments of a new kind (tensor shapes, dtypes and requires_grad;
   the value of plain Python arguments; grad mode) run eagerly while a
   :class:`~deltaprop.compiler.record.Recorder` notes every op, the backward walk and the update
   calls (optimizer ``step``/``zero_grad``, scheduler ``step``).
2. The two recordings are compared. If they did the same work, the second becomes a
   :class:`~deltaprop.compiler.program.Program`; the third call replays it once and checks the
   outcome against the eager step, bit for bit (:mod:`deltaprop.compiler.validate`: this
   catches work the recorder cannot see, such as NumPy code on ``.grad`` arrays); from then
   on, the step is replayed:
   the ops' forward computations on the new arguments' arrays, the backward walk as a fixed
   schedule (same calls, gradients summed in the same order), the leaves' gradients accumulated
   as the engine does, and the same update calls. No graph is built, no op object is created,
   no module is called. Losses, gradients and parameters are bit-identical to eager mode.
3. A change of argument kind, of a module's train/eval mode, of which parameters require grad,
   or of an optimizer's parameters records again (at most ``cache_size_limit`` programs).

What is not replayed, and makes the step run eagerly (with one warning, or an error with
``fullgraph=True``): a tensor's value reaching Python inside the step (``.item()``, ``bool()``,
``float()``, ``.numpy()``, ``.tolist()``: the Python that follows may depend on the data), a random
draw outside an op (ops such as dropout draw anew at every replay, from the same generator as
eager mode), ``autograd.grad`` or ``create_graph=True``, ``optimizer.step(closure)``, a return
value that is not made of tensors, two recordings that differ, and a first replay whose outcome
differs from eager mode's. Other Python side effects of
the step (printing, appending to a list, module hooks) happen only while recording, as with
``torch.compile``; tensors the step reads from outside (parameters, buffers, constants) are read
live, so in-place updates to them between calls are seen, but the step must keep using the
same objects (a model or optimizer rebound to a new object is not seen by a replay). Tensors a
replay returns are new, detached tensors (``requires_grad=False``): the graph they came from
was used by the step's own ``backward()``. A step that returns a tensor whose graph it has not
used (a forward pass in grad mode, to be backpropagated later) runs eagerly. Recording wraps
engine entry points process-wide for the duration of one call: other threads running ops at
that moment would be recorded too, so record (the first three calls) from one thread.

>>> import deltaprop as dp
>>> from deltaprop import nn, optim
>>> from deltaprop.nn import functional as F
>>> _ = dp.manual_seed(0)
>>> model = nn.Linear(3, 1)
>>> opt = optim.SGD(model.parameters(), lr=0.1)
>>> @dp.compile
... def step(x, y):
...     opt.zero_grad()
...     loss = F.mse_loss(model(x), y)
...     loss.backward()
...     opt.step()
...     return loss
>>> x, y = dp.ones(4, 3), dp.zeros(4, 1)
>>> losses = [float(step(x, y)) for _ in range(4)]   # record, record, replay, replay
>>> step.replays
2
>>> losses[0] > losses[1] > losses[2] > losses[3]
True
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

from deltaprop.compiler.program import Mismatch, Program, Wiring, compare, flatten_args
from deltaprop.compiler.record import Recorder, Unrecordable
from deltaprop.compiler.validate import Snapshot, same

_t = importlib.import_module("deltaprop.tensor")  # the module (dp.tensor is a function)

__all__ = ["compile", "CompiledStep", "CompileWarning"]


class CompileWarning(UserWarning):
    """A compiled step cannot be replayed and runs eagerly from now on."""


class CompiledStep:
    """A callable that records ``fn`` and replays it (see :func:`compile`).

    Attributes: ``recordings`` (eager calls made to record), ``replays`` (calls served by a
    replay), ``eager_reason`` (None, or why the step now always runs eagerly).
    """

    def __init__(self, fn: Callable[..., Any], fullgraph: bool = False, disable: bool = False,
                 cache_size_limit: int = 8) -> None:  # fmt: skip
        if not callable(fn):
            raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
        if cache_size_limit < 1:
            raise ValueError(f"compile: cache_size_limit must be >= 1, got {cache_size_limit}")
        self.fn = fn
        self.fullgraph = fullgraph
        self.cache_size_limit = cache_size_limit
        self.eager_reason: str | None = "disabled" if disable else None
        self.recordings = 0
        self.replays = 0
        self._programs: dict[tuple, list[Program]] = {}
        self._pending: dict[tuple, tuple] = {}  # key -> (record, wiring) of a first recording
        functools.update_wrapper(self, fn, updated=())  # (not a module's __dict__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.eager_reason is not None:
            return self.fn(*args, **kwargs)
        tensors, key = flatten_args(args, kwargs)
        key = (key, _t._grad_enabled)
        for prog in self._programs.get(key, ()):
            if prog.matches():
                self.replays += 1
                if not prog.validated:
                    return self._validate(prog, tensors, args, kwargs)
                return prog.run(tensors)
        return self._record(key, tensors, args, kwargs)

    def _validate(self, prog: Program, tensors: list, args: tuple, kwargs: dict) -> Any:
        """The first replay of a program, checked against the eager step (see
        :mod:`deltaprop.compiler.validate`); the eager outcome is kept."""
        snap = Snapshot(prog.state_tensors(), prog.optimizers, prog.schedulers)
        replayed = prog.run(tensors)
        replayed_state = snap.outcome()
        snap.restore()
        result = self.fn(*args, **kwargs)
        if same(replayed, result) and same(replayed_state, snap.outcome()):
            prog.validated = True
        else:
            self.replays -= 1
            self._give_up(
                "its replay differs from eager mode: the step changes something the recorder "
                "does not see (NumPy work on .data or .grad arrays, Python state)"
            )
        return result

    def _record(self, key: tuple, tensors: list, args: tuple, kwargs: dict) -> Any:
        if Recorder.active():
            self._give_up("it is called while another step is being recorded")
            return self.fn(*args, **kwargs)
        self.recordings += 1
        with Recorder() as recorder:
            result = self.fn(*args, **kwargs)
        rec = recorder.record
        if rec.problem is not None:
            self._give_up(rec.problem)
            return result
        try:
            wiring = Wiring(rec, tensors)
            first = self._pending.pop(key, None)
            if first is None:
                Program.check_result(result, wiring)
                self._pending[key] = (rec, wiring)
                return result
            compare(*first, rec, wiring)
            prog = Program(rec, wiring, tensors, result)
        except Mismatch as e:
            self._give_up(str(e))
            return result
        if sum(map(len, self._programs.values())) >= self.cache_size_limit:
            self._give_up(f"more than cache_size_limit={self.cache_size_limit} recordings")
            return result
        self._programs.setdefault(key, []).append(prog)
        return result

    def _give_up(self, reason: str) -> None:
        name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        if self.fullgraph:
            raise Unrecordable(f"compile(fullgraph=True): {name} cannot be replayed: {reason}")
        self.eager_reason = reason
        self._programs.clear()
        self._pending.clear()
        warnings.warn(
            f"deltaprop.compile: {name} cannot be replayed ({reason}); it runs eagerly from now on",
            CompileWarning,
            stacklevel=3,
        )


def compile(fn: Callable[..., Any] | None = None, *, fullgraph: bool = False,
            disable: bool = False, cache_size_limit: int = 8) -> Any:  # fmt: skip
    """Compile a training step (or any tensor function): ``dp.compile(fn)`` or ``@dp.compile``.

    ``fullgraph=True`` raises :class:`~deltaprop.compiler.record.Unrecordable` where the step
    would otherwise fall back to eager mode; ``disable=True`` returns a wrapper that always
    runs eagerly; ``cache_size_limit`` bounds the number of recorded variants. See the module
    documentation for what is recorded and replayed.
    """
    if fn is None:
        return lambda f: CompiledStep(f, fullgraph, disable, cache_size_limit)
    return CompiledStep(fn, fullgraph, disable, cache_size_limit)
