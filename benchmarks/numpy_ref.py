"""Hand-written NumPy versions of the benchmark workloads: the speed a NumPy framework aims at.

No framework, no autograd: every forward and backward is written out by hand, as fast as plain
NumPy allows while staying honest about what a training step must do:

* float32 end to end (``dtype`` can be changed to float64 for the correctness test);
* fresh arrays for activations and gradients every step, as any autograd framework needs,
  but no avoidable temporaries: bias added in place, ReLU in place, softmax in place;
* SGD with momentum exactly as ``torch.optim.SGD`` (``v = mu v + g; p -= lr v``), in place,
  with the spent gradient buffer as scratch, so the update allocates nothing;
* Linear weights stored (in, out) so that the forward is ``x @ W``; BLAS takes the transposed
  operands of the backward as flags, not copies;
* the CNN keeps its activations as (C, H, W, N) inside the network (batch innermost): every
  im2col / col2im slice then moves rows of OW*N contiguous floats rather than OW, im2col is a
  (C*KH*KW, OH*OW*N) matrix built with one slice copy per kernel offset, the convolution is one
  GEMM ``W (O, C*KH*KW) @ cols`` whose result already is the (O, OH, OW, N) output (cut into
  column blocks when very wide: see ``GEMM_BLOCK``), and the flatten before the classifier is a
  free transposed view; col2im adds the column gradient back with ``+=`` per kernel offset;
  max-pooling keeps the argmax of every window. The (N, C, H, W) input is transposed once,
  inside im2col's padding copy.

Parameters are exchanged in PyTorch's layout and names (``state_dict`` / constructor argument) so
that the test can start both from the same weights: Linear weight (out, in), conv weight
(O, C, KH, KW), keys as in the equivalent ``torch.nn.Sequential``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import cycle

import numpy as np

# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def torch_like_init(
    shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, dtype
) -> dict[str, np.ndarray]:
    """PyTorch's default init for Linear / Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    ``shapes`` in PyTorch layout; a bias takes the fan-in of the weight listed before it.
    """
    params, fan_in = {}, 1
    for name, shape in shapes.items():
        if name.endswith("weight"):
            fan_in = int(np.prod(shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


class SGDMomentum:
    """``torch.optim.SGD(params, lr, momentum)`` (no dampening, no weight decay), in place."""

    def __init__(self, params: list[np.ndarray], lr: float, momentum: float):
        self.params, self.lr, self.momentum = params, lr, momentum
        # A zero buffer gives v = g on the first step, as PyTorch's clone of the first gradient.
        self.velocity = [np.zeros_like(p) for p in params]

    def step(self, grads: Iterable[np.ndarray]) -> None:
        """Update with ``grads`` (one per parameter, same order); the grads are overwritten."""
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= self.momentum
            v += g
            np.multiply(v, self.lr, out=g)  # g is spent: reuse it for lr * v
            p -= g


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross entropy of integer labels and its gradient w.r.t. ``logits`` (overwritten)."""
    n = logits.shape[0]
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)  # z = logits - max: log-sum-exp shift
    z_true = logits[rows, y]
    np.exp(logits, out=logits)
    sums = logits.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(sums[:, 0]) - z_true))
    logits /= sums  # softmax
    logits[rows, y] -= 1.0
    logits *= logits.dtype.type(1.0 / n)
    return loss, logits


def linear_backward(x: np.ndarray, w: np.ndarray, g: np.ndarray, need_dx: bool = True):
    """Gradients of ``x @ w + b`` given its output gradient ``g``: (dW, db, dx or None)."""
    return x.T @ g, g.sum(axis=0), (g @ w.T if need_dx else None)


def relu_backward_(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``g * (out > 0)`` in place (``out`` being the ReLU's output)."""
    np.multiply(g, out > 0, out=g)
    return g


# Column block of the GEMMs with a very long axis (LeNet's first conv: 28*28*64 = 50176 output
# positions). OpenBLAS ran the (6, 25) @ (25, 50176) product and its weight-gradient transpose
# two to three times faster cut into blocks of a few thousand columns (a ~400 KB panel) than in
# one call, on the machine these benchmarks were written on; shorter products are left whole.
GEMM_BLOCK = 4096


def matmul_blocked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a wide ``b``, computed in column blocks written into one output."""
    n = b.shape[1]
    if n <= 2 * GEMM_BLOCK:
        return a @ b
    out = np.empty((a.shape[0], n), np.result_type(a, b))
    for s in range(0, n, GEMM_BLOCK):
        np.matmul(a, b[:, s : s + GEMM_BLOCK], out=out[:, s : s + GEMM_BLOCK])
    return out


def matmul_nt_blocked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` with a long reduction axis (both wide), summed over column blocks."""
    k = a.shape[1]
    if k <= 2 * GEMM_BLOCK:
        return a @ b.T
    out = a[:, :GEMM_BLOCK] @ b[:, :GEMM_BLOCK].T
    for s in range(GEMM_BLOCK, k, GEMM_BLOCK):
        out += a[:, s : s + GEMM_BLOCK] @ b[:, s : s + GEMM_BLOCK].T
    return out


def im2col_chwn(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    """Columns (C*k*k, OH*OW*N) of a (C, H, W, N) input for a k x k kernel, stride 1.

    Row (c, i, j) holds the input pixel under kernel offset (i, j) for every output position:
    one slice copy per kernel offset (k*k copies), each moving rows of OW*N contiguous floats.
    """
    c, h, w, n = x.shape
    if pad:
        xp = np.zeros((c, h + 2 * pad, w + 2 * pad, n), x.dtype)
        xp[:, pad : pad + h, pad : pad + w] = x
    else:
        xp = x
    oh, ow = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    cols = np.empty((c, k, k, oh, ow, n), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xp[:, i : i + oh, j : j + ow]
    return cols.reshape(c * k * k, oh * ow * n)


def col2im_chwn(dcols: np.ndarray, x_shape, k: int, pad: int) -> np.ndarray:
    """Adjoint of :func:`im2col_chwn`: add the column gradients back into (C, H, W, N)."""
    c, h, w, n = x_shape
    hp, wp = h + 2 * pad, w + 2 * pad
    oh, ow = hp - k + 1, wp - k + 1
    d = dcols.reshape(c, k, k, oh, ow, n)
    dxp = np.zeros((c, hp, wp, n), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, i : i + oh, j : j + ow] += d[:, i, j]
    return dxp[:, pad : pad + h, pad : pad + w] if pad else dxp


def conv_forward_chwn(x: np.ndarray, w: np.ndarray, b: np.ndarray, k: int, pad: int):
    """Convolution (stride 1) of a (C, H, W, N) input with ``w`` (O, C*k*k), a k x k kernel.

    One GEMM ``w @ cols``, whose (O, OH*OW*N) result is the (O, OH, OW, N) output as it stands.
    Returns (output, cols); the columns are kept for the weight gradient.
    """
    cols = im2col_chwn(x, k, pad)
    out = matmul_blocked(w, cols)
    out += b[:, None]
    oh, ow = x.shape[1] + 2 * pad - k + 1, x.shape[2] + 2 * pad - k + 1
    return out.reshape(w.shape[0], oh, ow, x.shape[3]), cols


# The four positions of a 2x2 window, in PyTorch's scan order (row-major).
_WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))


def maxpool2_forward_chwn(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pool (stride 2) of a (C, H, W, N) input: (output, argmax 0..3 per window, int8).

    Pairwise maxima of the four strided window views; on ties the earlier position wins, which
    is PyTorch's rule.
    """
    c, h, w, n = x.shape
    win = x.reshape(c, h // 2, 2, w // 2, 2, n)
    v0, v1, v2, v3 = (win[:, :, a, :, b] for a, b in _WINDOW)
    top, bottom = np.maximum(v0, v1), np.maximum(v2, v3)
    arg_top = (v1 > v0).view(np.int8)  # 0 or 1
    arg_bottom = (v3 > v2).view(np.int8) + np.int8(2)  # 2 or 3
    idx = np.where(bottom > top, arg_bottom, arg_top)
    return np.maximum(top, bottom, out=top), idx


def maxpool2_backward_chwn(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Route each window's gradient to its argmax, zero to the other three: (C, H, W, N)."""
    c, ho, wo, n = g.shape
    dx = np.empty((c, ho, 2, wo, 2, n), g.dtype)
    for k, (a, b) in enumerate(_WINDOW):
        np.multiply(g, idx == k, out=dx[:, :, a, :, b])
    return dx.reshape(c, 2 * ho, 2 * wo, n)


# ---------------------------------------------------------------------------------------------
# Models (one training step each)
# ---------------------------------------------------------------------------------------------


class _Model:
    """Parameters in compute layout plus the torch-layout view used to exchange them."""

    torch_shapes: dict[str, tuple[int, ...]] = {}

    def __init__(self, state, *, lr: float, momentum: float, dtype, seed: int):
        if state is None:
            state = torch_like_init(self.torch_shapes, np.random.default_rng(seed), dtype)
        self.p = {k: self._to_compute(k, np.asarray(v, dtype=dtype)) for k, v in state.items()}
        self.names = list(self.torch_shapes)
        self.opt = SGDMomentum([self.p[k] for k in self.names], lr, momentum)

    def _to_compute(self, name: str, v: np.ndarray) -> np.ndarray:
        """Linear weights (out, in) -> (in, out); conv weights (O, C, K, K) -> (O, C*K*K)."""
        if name.endswith("weight") and v.ndim == 2:
            return np.ascontiguousarray(v.T)
        if v.ndim == 4:
            return np.ascontiguousarray(v.reshape(v.shape[0], -1))
        return v.copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters in PyTorch layout (copies)."""
        out = {}
        for k in self.names:
            v, shape = self.p[k], self.torch_shapes[k]
            out[k] = (v.T if len(shape) == 2 else v.reshape(shape)).copy()
        return out

    def _update(self, grads: dict[str, np.ndarray]) -> None:
        self.opt.step(grads[k] for k in self.names)


class MLP(_Model):
    """784-256-256-10, ReLU, softmax cross entropy (workload a)."""

    torch_shapes = {
        "0.weight": (256, 784),
        "0.bias": (256,),
        "2.weight": (256, 256),
        "2.bias": (256,),
        "4.weight": (10, 256),
        "4.bias": (10,),
    }

    def __init__(self, state=None, *, lr=0.01, momentum=0.9, dtype=np.float32, seed=0):
        super().__init__(state, lr=lr, momentum=momentum, dtype=dtype, seed=seed)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        p = self.p
        h1 = x @ p["0.weight"]
        h1 += p["0.bias"]
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ p["2.weight"]
        h2 += p["2.bias"]
        np.maximum(h2, 0, out=h2)
        logits = h2 @ p["4.weight"]
        logits += p["4.bias"]
        loss, g3 = softmax_cross_entropy(logits, y)

        g = {}
        g["4.weight"], g["4.bias"], g2 = linear_backward(h2, p["4.weight"], g3)
        relu_backward_(g2, h2)
        g["2.weight"], g["2.bias"], g1 = linear_backward(h1, p["2.weight"], g2)
        relu_backward_(g1, h1)
        g["0.weight"], g["0.bias"], _ = linear_backward(x, p["0.weight"], g1, need_dx=False)
        self._update(g)
        return loss


class LeNet5(_Model):
    """LeNet-5 on (N, 1, 28, 28) digits (workload b): conv 1->6 5x5 pad 2, ReLU, maxpool 2,
    conv 6->16 5x5, ReLU, maxpool 2, flatten, fc 400-120-84-10 with ReLU between."""

    torch_shapes = {
        "0.weight": (6, 1, 5, 5),
        "0.bias": (6,),
        "3.weight": (16, 6, 5, 5),
        "3.bias": (16,),
        "7.weight": (120, 400),
        "7.bias": (120,),
        "9.weight": (84, 120),
        "9.bias": (84,),
        "11.weight": (10, 84),
        "11.bias": (10,),
    }

    def __init__(self, state=None, *, lr=0.01, momentum=0.9, dtype=np.float32, seed=0):
        super().__init__(state, lr=lr, momentum=momentum, dtype=dtype, seed=seed)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        p = self.p
        n = x.shape[0]
        # Inside the network activations are (C, H, W, N): see the module docstring.
        x_chwn = x.transpose(1, 2, 3, 0)  # a view; im2col's padding copy makes it contiguous

        a1, cols1 = conv_forward_chwn(x_chwn, p["0.weight"], p["0.bias"], 5, pad=2)
        np.maximum(a1, 0, out=a1)  # (6, 28, 28, N)
        p1, idx1 = maxpool2_forward_chwn(a1)  # (6, 14, 14, N)
        a2, cols2 = conv_forward_chwn(p1, p["3.weight"], p["3.bias"], 5, pad=0)
        np.maximum(a2, 0, out=a2)  # (16, 10, 10, N)
        p2, idx2 = maxpool2_forward_chwn(a2)  # (16, 5, 5, N)
        flat_t = p2.reshape(400, n)  # flatten in PyTorch's (c, h, w) order, transposed: (400, N)
        f1 = flat_t.T @ p["7.weight"]  # BLAS reads the transposed view in place
        f1 += p["7.bias"]
        np.maximum(f1, 0, out=f1)
        f2 = f1 @ p["9.weight"]
        f2 += p["9.bias"]
        np.maximum(f2, 0, out=f2)
        logits = f2 @ p["11.weight"]
        logits += p["11.bias"]
        loss, g = softmax_cross_entropy(logits, y)

        grads = {}
        grads["11.weight"], grads["11.bias"], g = linear_backward(f2, p["11.weight"], g)
        relu_backward_(g, f2)
        grads["9.weight"], grads["9.bias"], g = linear_backward(f1, p["9.weight"], g)
        relu_backward_(g, f1)
        grads["7.weight"] = flat_t @ g
        grads["7.bias"] = g.sum(axis=0)
        g = (p["7.weight"] @ g.T).reshape(16, 5, 5, n)  # input gradient, directly (400, N)

        g = maxpool2_backward_chwn(g, idx2)  # (16, 10, 10, N)
        relu_backward_(g, a2)
        g = g.reshape(16, -1)
        grads["3.weight"] = matmul_nt_blocked(g, cols2)
        grads["3.bias"] = g.sum(axis=1)
        g = col2im_chwn(p["3.weight"].T @ g, p1.shape, 5, pad=0)  # (6, 14, 14, N)

        g = maxpool2_backward_chwn(g, idx1)  # (6, 28, 28, N)
        relu_backward_(g, a1)
        g = g.reshape(6, -1)
        grads["0.weight"] = matmul_nt_blocked(g, cols1)  # no input gradient for layer 1
        grads["0.bias"] = g.sum(axis=1)
        self._update(grads)
        return loss


class TinyMLP(_Model):
    """2-16-16-1 with tanh, mean squared error (workload c)."""

    torch_shapes = {
        "0.weight": (16, 2),
        "0.bias": (16,),
        "2.weight": (16, 16),
        "2.bias": (16,),
        "4.weight": (1, 16),
        "4.bias": (1,),
    }

    def __init__(self, state=None, *, lr=0.01, momentum=0.9, dtype=np.float32, seed=0):
        super().__init__(state, lr=lr, momentum=momentum, dtype=dtype, seed=seed)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        p = self.p
        h1 = x @ p["0.weight"]
        h1 += p["0.bias"]
        np.tanh(h1, out=h1)
        h2 = h1 @ p["2.weight"]
        h2 += p["2.bias"]
        np.tanh(h2, out=h2)
        out = h2 @ p["4.weight"]
        out += p["4.bias"]
        out -= y  # residual r; loss = mean(r^2), dloss/dout = 2 r / n
        loss = float(np.mean(out * out))
        out *= out.dtype.type(2.0 / out.size)

        g = {}
        g["4.weight"], g["4.bias"], d = linear_backward(h2, p["4.weight"], out)
        d *= 1 - h2 * h2  # tanh' = 1 - tanh^2
        g["2.weight"], g["2.bias"], d = linear_backward(h1, p["2.weight"], d)
        d *= 1 - h1 * h1
        g["0.weight"], g["0.bias"], _ = linear_backward(x, p["0.weight"], d, need_dx=False)
        self._update(g)
        return loss


# ---------------------------------------------------------------------------------------------
# Benchmark entry points: each returns a zero-argument callable doing one step / one op
# ---------------------------------------------------------------------------------------------

NAME = "numpy"


def _train_step(model: _Model, batches) -> Callable[[], float]:
    it = cycle(batches)

    def step() -> float:
        return model.step(*next(it))

    return step


def make_mlp_step(batches, lr: float, momentum: float) -> Callable[[], float]:
    return _train_step(MLP(lr=lr, momentum=momentum), batches)


def make_lenet_step(batches, lr: float, momentum: float) -> Callable[[], float]:
    return _train_step(LeNet5(lr=lr, momentum=momentum), batches)


def make_tiny_step(x: np.ndarray, y: np.ndarray, lr: float, momentum: float) -> Callable[[], float]:
    return _train_step(TinyMLP(lr=lr, momentum=momentum), [(x, y)])


def make_add_op(a: np.ndarray, b: np.ndarray) -> Callable[[], None]:
    """``(a + b).sum()`` and its backward, gradients accumulated into a.grad / b.grad as autograd
    frameworks do (the upstream gradient of the sum is a broadcast one)."""
    a_grad, b_grad = np.zeros_like(a), np.zeros_like(b)

    def op() -> None:
        s = (a + b).sum()
        g = np.ones_like(a)  # d s / d (a + b)
        np.add(a_grad, g, out=a_grad)
        np.add(b_grad, g, out=b_grad)
        return s

    return op


def make_add_single_op(a: np.ndarray, b: np.ndarray) -> Callable[[], None]:
    """One op: ``c = a + b`` and its backward for an upstream gradient g of ones: both inputs
    receive g (the add gate distributes), accumulated into a.grad / b.grad."""
    a_grad, b_grad = np.zeros_like(a), np.zeros_like(b)
    g = np.ones_like(a)

    def op() -> None:
        c = a + b
        np.add(a_grad, g, out=a_grad)
        np.add(b_grad, g, out=b_grad)
        return c

    return op


def make_matmul_op(a: np.ndarray, b: np.ndarray) -> Callable[[], None]:
    """``(a @ b).sum()`` and its backward (dA = G B^T, dB = A^T G), accumulated."""
    a_grad, b_grad = np.zeros_like(a), np.zeros_like(b)

    def op() -> None:
        c = a @ b
        s = c.sum()
        g = np.ones_like(c)
        np.add(a_grad, g @ b.T, out=a_grad)
        np.add(b_grad, a.T @ g, out=b_grad)
        return s

    return op


# Forward only: the graph-free half of the overhead split (benchmarks/overhead.py).


def make_add_forward(a: np.ndarray, b: np.ndarray) -> Callable[[], object]:
    return lambda: (a + b).sum()


def make_matmul_forward(a: np.ndarray, b: np.ndarray) -> Callable[[], object]:
    return lambda: (a @ b).sum()
