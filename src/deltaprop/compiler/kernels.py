"""Replay kernels: the hot ops' NumPy work without the op object, in place where the graph allows.

A kernel replaces one recorded op in the replay. It runs the *same* NumPy calls, in the same
order and dtypes, as the op's ``forward`` and ``backward`` (so the numbers are bit-identical:
the compiler's tests compare them with ``np.array_equal``), reads its inputs straight from the
tensors the program wires to it, skips what the recorded graph already settled (argument
checks, ``needs_grad`` branches, reshapes), and writes into an array of the step that the
graph shows is dead (``out=``) instead of allocating, where it can. Arrays are not kept from
one step to the next: buffers held between steps raised the peak memory of a compiled step
above eager mode's (measured with ``benchmarks/run.py``), while reusing dead arrays within a
step lowers it.

* :class:`LinearKernel` -- ``y = x W^T + b`` (2-D ``x``): the forward GEMM into a reused output;
  the input gradient into a buffer that is dead by then, where there is one.
* :class:`ReluKernel` / :class:`TanhKernel` -- when the input is a linear kernel's output that
  nothing else reads, the activation runs in place on the GEMM output (the fused linear + ReLU
  / tanh), and its backward works in place where the graph shows the buffer is dead. A ReLU
  also runs in place on a convolution's output (the convolution's backward does not read it).
* :class:`ReluMaxPoolKernel` -- a ReLU followed by a max pooling that alone reads it: the two
  commute (``max_w relu(x) = relu(max_w x)``), so the pool runs on the ReLU's input and the ReLU
  on the pool's output, a quarter of the size for 2x2 windows; the ReLU op itself passes its
  input through (:class:`PassKernel`).
* :class:`SGDKernel` -- ``SGD.step`` with momentum (no dampening, Nesterov, weight decay or
  maximize), hyperparameters read from the optimizer at every call; any other configuration
  calls the optimizer's own ``step``.

Equivalences relied on: ``np.f(a, b, out=buf)`` computes exactly what ``np.f(a, b)`` computes;
``gy * mask`` (bool mask) equals ``np.multiply(gy, mask, out=gy)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.ops.activation import ReluFunction, TanhFunction
from deltaprop.ops.conv import Convolution2DFunction
from deltaprop.ops.linear import LinearFunction, column_sums
from deltaprop.ops.pool import MaxPool2DFunction
from deltaprop.optim.sgd import SGD
from deltaprop.tensor import Tensor


class LinearKernel:
    """``LinearFunction`` with a 2-D input and a bias: ``y = dot(x, W.T); y += b``.

    Backward: ``gW = dot(g.T, x)``, ``gb = column_sums(g)`` (fresh arrays: they become the
    parameters' ``.grad``), then ``gx = dot(g, W)``: into the array of ``gx_into`` when the
    program found one that is dead by then (see :func:`select_kernels`), else a fresh array.
    """

    def __init__(self, needs: tuple[bool, ...], x: Tensor, w: Tensor, b: Tensor, out: Tensor):
        self.x, self.w, self.b, self.out = x, w, b, out
        self.needs = needs
        self.gx_into: Tensor | None = None

    def forward(self) -> None:
        y = np.dot(self.x.data, self.w.data.T)
        y += self.b.data
        self.out.data = y

    def backward(self, g: np.ndarray) -> tuple:
        needs = self.needs
        gw = np.dot(g.T, self.x.data) if needs[1] else None
        gb = column_sums(g) if needs[2] else None
        gx = None
        if needs[0]:  # last: it may overwrite x, which nothing reads any more
            into = self.gx_into
            gx = np.dot(g, self.w.data) if into is None else np.dot(g, self.w.data, out=into.data)
        return gx, gw, gb


class ReluKernel:
    """``ReluFunction`` fused with the linear layer before it: ``mask = x > 0``, then
    ``max(x, 0)`` in place on the GEMM output. Backward ``gy * mask``, in place when the
    incoming gradient is an array of the step's own that nothing else reads (the next layer
    wrote it into this ReLU's dead output)."""

    def __init__(self, x: Tensor, out: Tensor) -> None:
        self.x, self.out = x, out
        self.mask: np.ndarray | None = None
        self.grad_in_place = False

    def forward(self) -> None:
        y = self.x.data
        self.mask = y > 0
        np.maximum(y, 0, out=y)
        self.out.data = y

    def backward(self, gy: np.ndarray) -> tuple:
        mask, self.mask = self.mask, None
        if self.grad_in_place:
            return (np.multiply(gy, mask, out=gy),)
        return (gy * mask,)


class TanhKernel:
    """``TanhFunction`` fused with the linear layer before it: ``tanh`` in place on the GEMM
    output. Backward ``gy * (1 - y * y)``, in ``y``'s array when nothing reads ``y`` after this
    backward (its consumers' backward ran before it)."""

    def __init__(self, x: Tensor, out: Tensor) -> None:
        self.x, self.out = x, out
        self.grad_in_place = False

    def forward(self) -> None:
        y = self.x.data
        np.tanh(y, out=y)
        self.out.data = y

    def backward(self, gy: np.ndarray) -> tuple:
        y = self.out.data
        if self.grad_in_place:
            t = np.multiply(y, y, out=y)
            np.subtract(1, t, out=t)
            return (np.multiply(gy, t, out=t),)
        t = y * y
        np.subtract(1, t, out=t)
        return (gy * t,)


class PassKernel:
    """A ReLU whose work a :class:`ReluMaxPoolKernel` does: its output is its input's array,
    its backward hands the gradient on unchanged (the pool's backward already masked it)."""

    def __init__(self, x: Tensor, out: Tensor) -> None:
        self.x, self.out = x, out

    def forward(self) -> None:
        self.out.data = self.x.data

    def backward(self, gy: np.ndarray) -> tuple:
        return (gy,)


class ReluMaxPoolKernel:
    """``MaxPool2DFunction`` after a ReLU that nothing else reads, the ReLU moved behind it.

    ReLU is monotonic, so ``max_w relu(x) = relu(max_w x)`` exactly: the pool (the op's own
    ``forward``) runs on the ReLU's input ``x``, then ``y = max(p, 0)`` in place, keeping
    ``mask = p > 0``. Backward: the op's own ``backward`` on ``gy * mask``.

    The same numbers as ReLU then pool: where a window's maximum is positive, both pick the
    same element (the first maximum; the ReLU changes only values <= 0) and pass it ``gy``;
    where it is not, the unfused ReLU's mask zeroes the gradient the pool routed, and here the
    small mask zeroes it before routing: every gradient element is the same, up to the sign of
    a zero.
    """

    def __init__(self, fn: MaxPool2DFunction, x: Tensor, out: Tensor) -> None:
        self.fn, self.x, self.out = fn, x, out
        self.mask: np.ndarray | None = None

    def forward(self) -> None:
        y = self.fn.forward(self.x.data)
        self.mask = y > 0
        np.maximum(y, 0, out=y)
        self.out.data = y

    def backward(self, gy: np.ndarray) -> tuple:
        mask, self.mask = self.mask, None
        grads = self.fn.backward(gy * mask)
        self.fn.argmax = None  # what the op's forward saved, freed as the engine frees it
        return grads


class SGDKernel:
    """``SGD.step`` for the common configuration, exactly as ``SGD.step`` computes it::

        b *= momentum; b += g; p -= lr * b      (b: the momentum buffer, already created)

    Parameters without a gradient are skipped (as ``SGD.step`` skips them). Falls back to
    ``opt.step()`` whenever a parameter has no momentum buffer yet or a group uses dampening,
    Nesterov, weight decay, maximize or no momentum.
    """

    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def __call__(self) -> None:
        opt = self.opt
        state = opt.state
        groups = opt.param_groups
        work = []
        for group in groups:
            if (
                group["dampening"] != 0
                or group["nesterov"]
                or group["maximize"]
                or group["weight_decay"] != 0
                or group["momentum"] == 0
            ):
                opt.step()
                return
            lr, momentum = float(group["lr"]), float(group["momentum"])
            for p in group["params"]:
                grad = p.grad
                if grad is None:  # skipped, as SGD.step skips it
                    continue
                buf = state[p].get("momentum_buffer") if p in state else None
                if buf is None:  # its first update: SGD.step creates the buffer
                    opt.step()
                    return
                b = buf.data
                s = opt._scratch(b)  # the buffer SGD.step would use
                work.append((p.data, grad.data, b, s, lr, momentum))
        opt._step_called = True
        for d, g, b, s, lr, momentum in work:
            b *= momentum
            b += g
            d -= np.multiply(b, lr, out=s)


# ----------------------------------------------------------------------------------------------
# choosing the kernels of a program
# ----------------------------------------------------------------------------------------------


def _linear_ok(ins: tuple[Tensor, ...]) -> bool:
    x, w, b = (t.data for t in ins)
    return (
        x.ndim == 2
        and w.ndim == 2
        and b.ndim == 1
        and x.dtype == w.dtype == b.dtype
        and x.dtype.kind == "f"
        and x.flags.c_contiguous
    )


# Ops whose backward does not read their output: a ReLU may overwrite it (conv + ReLU fused).
_OUTPUT_FREE = (LinearFunction, Convolution2DFunction)


def select_kernels(rec: Any, sources: list, outs: list[Tensor], plans: list, pinned: set) -> list:
    """One kernel (or None: the op's own forward/backward) per recorded op.

    ``sources[j]`` says where op j's inputs come from, ``plans`` are the backward walks and
    ``pinned`` the ops whose outputs are returned or start a backward pass. A buffer is reused
    (or written in place) only where the graph shows that nothing else reads it: a ReLU runs in
    place on a linear output read by nothing else; an input gradient goes into a scratch buffer
    only when the single op receiving it is a kernel that reads it at once.
    """
    n = len(rec.ops)
    kernels: list[Any] = [None] * n
    readers = [0] * n
    for srcs in sources:
        for s in srcs:
            if s[0] == "op":
                readers[s[1]] += 1
    for j, o in enumerate(rec.ops):
        fn, ins, out = o.fn, o.fn.inputs, outs[j]
        needs = fn.needs_grad if o.out._ctx is fn else (False,) * len(ins)
        kind = type(fn)
        if kind is LinearFunction and len(ins) == 3 and _linear_ok(ins):
            kernels[j] = LinearKernel(needs, ins[0], ins[1], ins[2], out)
        elif kind is ReluFunction or kind is TanhFunction:
            s = sources[j][0]
            if (
                s[0] == "op"
                and readers[s[1]] == 1
                and s[1] not in pinned
                and (
                    isinstance(kernels[s[1]], LinearKernel)
                    or (kind is ReluFunction and type(rec.ops[s[1]].fn) in _OUTPUT_FREE)
                )
            ):
                kernels[j] = (ReluKernel if kind is ReluFunction else TanhKernel)(ins[0], out)
        elif kind is MaxPool2DFunction:
            s = sources[j][0]
            if (
                s[0] == "op"
                and type(rec.ops[s[1]].fn) is ReluFunction
                and readers[s[1]] == 1
                and s[1] not in pinned
                and ins[0].data.dtype.kind == "f"
            ):
                relu = rec.ops[s[1]].fn
                kernels[s[1]] = PassKernel(relu.inputs[0], outs[s[1]])
                kernels[j] = ReluMaxPoolKernel(fn, relu.inputs[0], out)
    if len(plans) != 1:
        return kernels
    contrib: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for j, targets in plans[0].steps:
        for pos, tg in enumerate(targets):
            if tg is not None and tg < n:
                contrib[tg].append((j, pos))
    for j, k in enumerate(kernels):
        if isinstance(k, TanhKernel):
            k.grad_in_place = j not in pinned
        if not isinstance(k, LinearKernel) or not k.needs[0]:
            continue
        src = sources[j][0]
        if src[0] != "op" or contrib[src[1]] != [(j, 0)]:
            continue
        r = kernels[src[1]]
        if isinstance(r, ReluKernel) and readers[src[1]] == 1 and src[1] not in pinned:
            # x is a fused ReLU's output (the previous layer's GEMM output), read by this layer
            # only; the ReLU's backward needs just its mask. Once this layer's weight gradient
            # is computed x is dead: its array takes the input gradient, masked there in place
            k.gx_into = r.out
            r.grad_in_place = True
    return kernels


def call_kernel(call: Any) -> Any:
    """The replay of one update call: a kernel for ``SGD.step()``, else the call itself."""
    method, args, kwargs = call.method, call.args, call.kwargs
    if type(method.__self__) is SGD and method.__func__ is SGD.step and not args and not kwargs:
        return SGDKernel(method.__self__)
    return lambda: method(*args, **kwargs)
