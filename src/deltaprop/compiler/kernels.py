"""Replay kernels: the hot ops' NumPy work without the op object, into reused buffers.

A kernel replaces one recorded op in the replay. It runs the *same* NumPy calls, in the same
order and dtypes, as the op's ``forward`` and ``backward`` (so the numbers are bit-identical:
the compiler's tests compare them with ``np.array_equal``), but writes into buffers allocated
once, reads its inputs straight from the tensors the program wires to it, and skips what the
recorded graph already settled (argument checks, ``needs_grad`` branches, reshapes).

* :class:`LinearKernel` -- ``y = x W^T + b`` (2-D ``x``): the forward GEMM into a reused output,
  the input gradient into a reused buffer.
* :class:`ReluKernel` -- when its input is a linear kernel's output that nothing else reads,
  ReLU runs in place on the GEMM output (the fused linear + ReLU), and its backward multiplies
  the incoming gradient by the mask in place when that gradient is a kernel's scratch buffer.
* :class:`TanhKernel` -- ``tanh`` into a reused output; backward ``gy * (1 - y^2)`` through one
  scratch buffer.
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
from deltaprop.ops.linear import LinearFunction
from deltaprop.optim.sgd import SGD
from deltaprop.tensor import Tensor


class LinearKernel:
    """``LinearFunction`` with a 2-D input and a bias: ``y = x @ W.T; y += b``.

    Backward: ``gx = g @ W`` (into a reused buffer), ``gW = g.T @ x``, ``gb = g.sum(axis=0)``
    (fresh arrays: they become the parameters' ``.grad``).
    """

    def __init__(self, needs: tuple[bool, ...], x: Tensor, w: Tensor, b: Tensor, out: Tensor):
        self.x, self.w, self.b = x, w, b
        self.needs = needs
        out.data = self.y = np.empty(out.data.shape, out.data.dtype)
        self.gx = np.empty(x.data.shape, x.data.dtype) if needs[0] else None
        self.scratch_gx = False  # whether the input gradient may go into the reused buffer

    def forward(self) -> None:
        y = np.matmul(self.x.data, self.w.data.T, out=self.y)
        y += self.b.data

    def backward(self, g: np.ndarray) -> tuple:
        needs = self.needs
        gw = g.T @ self.x.data if needs[1] else None
        gb = g.sum(axis=0) if needs[2] else None
        gx = None
        if needs[0]:  # last: it may overwrite x, which nothing reads any more
            gx = np.matmul(g, self.w.data, out=self.gx) if self.scratch_gx else g @ self.w.data
        return gx, gw, gb


class ReluKernel:
    """``ReluFunction``: ``mask = x > 0; y = max(x, 0)``; backward ``gy * mask``."""

    def __init__(self, x: Tensor, out: Tensor, in_place: bool, grad_in_place: bool) -> None:
        self.x = x
        self.mask = np.empty(x.data.shape, np.bool_)
        if in_place:  # the fused linear + ReLU: y is the GEMM output itself
            out.data = self.y = x.data
        else:
            out.data = self.y = np.empty(out.data.shape, out.data.dtype)
        self.grad_in_place = grad_in_place

    def forward(self) -> None:
        x = self.x.data
        np.greater(x, 0, out=self.mask)
        np.maximum(x, 0, out=self.y)

    def backward(self, gy: np.ndarray) -> tuple:
        if self.grad_in_place:
            return (np.multiply(gy, self.mask, out=gy),)
        return (gy * self.mask,)


class TanhKernel:
    """``TanhFunction``: ``y = tanh(x)``; backward ``gy * (1 - y * y)``."""

    def __init__(self, x: Tensor, out: Tensor) -> None:
        self.x = x
        out.data = self.y = np.empty(out.data.shape, out.data.dtype)
        self.t = np.empty_like(self.y)
        self.scratch_gx = False  # whether the input gradient may go into the reused buffer

    def forward(self) -> None:
        np.tanh(self.x.data, out=self.y)

    def backward(self, gy: np.ndarray) -> tuple:
        t = np.multiply(self.y, self.y, out=self.t)
        np.subtract(1, t, out=t)
        if self.scratch_gx:
            return (np.multiply(gy, t, out=t),)
        return (gy * t,)


class SGDKernel:
    """``SGD.step`` for the common configuration, exactly as ``SGD.step`` computes it::

        b *= momentum; b += g; p -= lr * b      (b: the momentum buffer, already created)

    Falls back to ``opt.step()`` whenever a parameter has no gradient or momentum buffer or a
    group uses dampening, Nesterov, weight decay, maximize or no momentum.
    """

    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def __call__(self) -> None:
        opt = self.opt
        state = opt.state
        work = []
        for group in opt.param_groups:
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
                buf = state[p].get("momentum_buffer") if p in state else None
                if grad is None or buf is None:
                    opt.step()
                    return
                work.append((p.data, grad.data, buf.data, lr, momentum))
        opt._step_called = True
        scratch = opt._scratch  # the optimizer's own reused buffers
        for d, g, b, lr, momentum in work:
            b *= momentum
            b += g
            d -= np.multiply(b, lr, out=scratch(b))


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
        elif kind is ReluFunction and ins[0].data.flags.c_contiguous:
            s = sources[j][0]
            fused = (
                s[0] == "op"
                and isinstance(kernels[s[1]], LinearKernel)
                and readers[s[1]] == 1
                and s[1] not in pinned
            )
            kernels[j] = ReluKernel(ins[0], out, fused, False)
        elif kind is TanhFunction:
            kernels[j] = TanhKernel(ins[0], out)
    if len(plans) != 1:
        return kernels
    contrib: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for j, targets in plans[0].steps:
        for pos, tg in enumerate(targets):
            if tg is not None and tg < n:
                contrib[tg].append((j, pos))

    def receiver(j: int) -> Any:
        """The kernel receiving op j's input gradient, if op j is its only contributor."""
        s = sources[j][0]
        if s[0] != "op" or contrib[s[1]] != [(j, 0)]:
            return None
        return kernels[s[1]]

    for j, k in enumerate(kernels):
        if isinstance(k, ReluKernel):
            c = contrib[j]
            k.grad_in_place = (
                isinstance(receiver(j), LinearKernel)
                and len(c) == 1
                and c[0][1] == 0
                and isinstance(kernels[c[0][0]], LinearKernel)
                and receiver(c[0][0]) is k
            )
        elif isinstance(k, TanhKernel):
            k.scratch_gx = isinstance(receiver(j), LinearKernel)
    for j, k in enumerate(kernels):
        if isinstance(k, LinearKernel) and k.gx is not None:
            r = receiver(j)
            k.scratch_gx = isinstance(r, (LinearKernel, TanhKernel, ReluKernel))
            src = sources[j][0][1]
            if isinstance(r, ReluKernel) and readers[src] == 1 and src not in pinned:
                # x is a ReLU's output (with the fused linear + ReLU: the previous layer's GEMM
                # buffer) read by this layer only; the ReLU's backward needs just its mask, so
                # once this layer's weight gradient is computed its buffer takes the input
                # gradient (which the ReLU then masks in place)
                k.gx = r.y
    return kernels


def call_kernel(call: Any) -> Any:
    """The replay of one update call: a kernel for ``SGD.step()``, else the call itself."""
    method, args, kwargs = call.method, call.args, call.kwargs
    if type(method.__self__) is SGD and method.__func__ is SGD.step and not args and not kwargs:
        return SGDKernel(method.__self__)
    return lambda: method(*args, **kwargs)
