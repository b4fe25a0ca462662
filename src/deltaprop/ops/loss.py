"""Loss functions of ``nn.functional``, each a fused op with its hand-derived gradient.

Per element / per sample losses ``l_i`` (``x`` input, ``t`` target, ``w`` weight), then
``reduction``: ``'none'`` (the ``l_i``), ``'sum'``, or ``'mean'`` (divide by the count, or for
class-index targets with weights by the sum of the weights of the non-ignored samples).

mse_loss            l = (x - t)^2                              dl/dx = 2 (x - t)
binary_cross_entropy
                    l = -w [t log x + (1-t) log(1-x)]          dl/dx = w (x - t) / (x (1-x))
                    (each log clamped to >= -100 and x(1-x) to >= 1e-12, as PyTorch)
binary_cross_entropy_with_logits, with q = (pos_weight - 1) t + 1 and sp(x) = log(1 + e^x):
                    l = w [(1-t) x + q sp(-x)]
                    dl/dx = w (q sigmoid(x) - pos_weight t)
                    (= w (sigmoid(x) - t) without pos_weight: the o(1-o) of the sigmoid cancels)
cross_entropy       l_i = -(1-eps) w_{y_i} logp_{i,y_i} - (eps/C) sum_c w_c logp_{i,c},
                    logp = log_softmax(x);  dl_i/dx_i = (1-eps) w_y (p_i - onehot(y_i))
                                                       + (eps/C) (sum(w) p_i - w)
                    (= softmax - onehot with no weight and eps = 0: the backprop notes' delta)
                    probability targets: l_i = -sum_c w_c t'_c logp_{i,c}, t' = (1-eps) t + eps/C,
                    dl_i/dx_i = p_i sum(w t'_i) - w t'_i
nll_loss            l_i = -w_{y_i} x_{i,y_i}                   dl_i/dx_i = -w_y onehot(y_i)

Class dim: ``(N, C)`` or ``(N, C, d1, ...)`` inputs (and unbatched ``(C,)``), class-index targets
``(N, d1, ...)``; internally the class axis is moved last and the rest flattened into rows.
Every op here has a ``twin`` composed of primitive ops, differentiated when the backward pass is
recorded (``create_graph=True``); ``mse_loss``'s own backward is already differentiable.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from deltaprop.errors import DTypeError, InvalidArgumentError, ShapeError
from deltaprop.ops.activation import log_softmax_along as log_softmax
from deltaprop.ops.common import as_tensor, check_broadcast, check_float
from deltaprop.ops.dual import unbroadcast
from deltaprop.ops.shape import stack
from deltaprop.tensor import Function, Tensor, _make

_REDUCTIONS = ("none", "mean", "sum")

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _reduction(op: str, reduction: str, size_average: Any = None, reduce: Any = None) -> str:
    """The reduction string; the legacy ``size_average``/``reduce`` flags override it (warning)."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else ("sum" if reduce else "none")
        warnings.warn(
            f"size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            UserWarning,
            stacklevel=3,
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{op}: {reduction} is not a valid value for reduction (expected 'mean', 'sum' or "
            "'none')"
        )
    return reduction


def _loss_input(op: str, input: Any, reduction: str, size_average: Any, reduce: Any) -> tuple:
    """The checked ``reduction`` (legacy arguments folded in) and the floating input tensor."""
    reduction = _reduction(op, reduction, size_average, reduce)
    x = as_tensor(input)
    check_float(op, "input", x)
    return reduction, x


def _reduce(l: Any, reduction: str, denom: float | None = None) -> Any:
    """Reduce per-element losses (array or Tensor); ``denom`` overrides the mean's count."""
    if reduction == "none":
        return l
    s = l.sum()
    if reduction == "sum":
        return s
    n = float(l.size if isinstance(l, np.ndarray) else l.data.size) if denom is None else denom
    if n == 0:  # an empty mean is nan, as PyTorch (without NumPy's warning)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s / n
    return s / n


def _loss_scale(gy: Any, reduction: str, denom: float) -> Any:
    """dL/dl_i: gy ('sum'), gy / denom ('mean'), or gy elementwise ('none')."""
    if reduction == "mean":
        if denom == 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                return gy / denom
        return gy / denom
    return gy


def _weighted_reduce(fn: Function, l: np.ndarray) -> np.ndarray:
    """Forward's end for an elementwise loss ``fn``: times ``fn.weight``, then reduced."""
    if fn.weight is not None:
        l *= fn.weight
    fn.n = l.size
    return _reduce(l, fn.reduction)


def _weighted_scale(fn: Function, gy: Any) -> Any:
    """Backward's start for an elementwise loss ``fn``: the reduction's and weight's scale."""
    s = _loss_scale(gy, fn.reduction, fn.n)
    return s if fn.weight is None else s * fn.weight


def _same_size(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape


def _const(op: str, name: str, t: Any, x: Tensor) -> np.ndarray | None:
    """A constant (no-gradient) weight array in ``x``'s dtype, broadcastable to ``x``."""
    if t is None:
        return None
    arr = t.data if isinstance(t, Tensor) else np.asarray(t)
    try:
        ok = np.broadcast_shapes(arr.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{op}: {name} of shape {arr.shape} cannot be broadcast to the input "
                         f"shape {x.shape}")  # fmt: skip
    return arr.astype(x.dtype, copy=False)


def _check_target(op: str, x: Tensor, target: Any) -> Tensor:
    """The target as a Tensor of the input's float dtype."""
    t = as_tensor(target)
    if t.dtype != x.dtype:
        t = t.to(x.dtype)
    return t


# ----------------------------------------------------------------------------------------------
# mse_loss
# ----------------------------------------------------------------------------------------------


class MSELossFunction(Function):
    """l = (x - t)^2 (x and t broadcast), reduced.  dl/dx = 2 (x - t),  dl/dt = -2 (x - t).

    The formula uses only arithmetic and ``unbroadcast``, so it is differentiable again.
    """

    def __init__(self, reduction: str) -> None:
        self.reduction = reduction

    def forward(self, x, t):
        d = x - t
        self.diff, self.n = d, d.size
        return _reduce(d * d, self.reduction)

    def backward(self, gy):
        x, t = self.saved_inputs()
        d = x - t if isinstance(x, Tensor) else self.diff
        g = d * (_loss_scale(gy, self.reduction, self.n) * 2.0)
        gx = unbroadcast(g, x) if self.needs_grad[0] else None
        gt = unbroadcast(-g, t) if self.needs_grad[1] else None
        return gx, gt


def mse_loss(input: Tensor, target: Tensor, size_average: Any = None, reduce: Any = None,
             reduction: str = "mean") -> Tensor:  # fmt: skip
    """Mean squared error ``(input - target)^2``, reduced.

    As PyTorch, a target of another shape warns (it is broadcast, which is rarely intended:
    ``(N, 1)`` against ``(N,)`` gives an ``(N, N)`` difference) and a non-broadcastable one raises.

    >>> import deltaprop as dp
    >>> mse_loss(dp.tensor([1.0, 2.0]), dp.tensor([1.0, 4.0]))
    tensor(2.)
    """
    if (
        reduction == "mean"
        and size_average is None
        and reduce is None
        and type(input) is Tensor
        and type(target) is Tensor
        and input.data.shape == target.data.shape
        and input.data.dtype == target.data.dtype
        and input.data.dtype.kind == "f"
    ):
        # fast path: the checks below, inlined
        return MSELossFunction(reduction).apply(input, target)
    reduction, x = _loss_input("mse_loss", input, reduction, size_average, reduce)
    t = _check_target("mse_loss", x, target)
    if not _same_size(x, t):
        warnings.warn(
            f"Using a target size ({t.shape}) that is different to the input size ({x.shape}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            UserWarning,
            stacklevel=2,
        )
        what = f"input shape {x.shape} and target shape {t.shape}"
        check_broadcast("mse_loss", what, x.shape, t.shape)
    return MSELossFunction(reduction).apply(x, t)


# ----------------------------------------------------------------------------------------------
# binary cross entropy
# ----------------------------------------------------------------------------------------------


class BinaryCrossEntropyFunction(Function):
    """l = -w [t max(log x, -100) + (1-t) max(log(1-x), -100)].

    dl/dx = w (x - t) / max(x (1 - x), 1e-12);   dl/dt = w log((1 - x) / x)  (-logit(x), unclamped
    as in PyTorch: infinite at x = 0 or 1).
    """

    def __init__(self, weight: np.ndarray | None, reduction: str) -> None:
        self.weight, self.reduction = weight, reduction

    @staticmethod
    def _logs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore"):
            log_x = np.log(x)
            log_1mx = np.log1p(-x)
        np.maximum(log_x, -100.0, out=log_x)
        np.maximum(log_1mx, -100.0, out=log_1mx)
        return log_x, log_1mx

    def forward(self, x, t):
        log_x, log_1mx = self._logs(x)
        l = t - 1.0
        l *= log_1mx
        log_x *= t
        l -= log_x
        return _weighted_reduce(self, l)

    def backward(self, gy):
        x, t = self.inputs[0].data, self.inputs[1].data
        s = _weighted_scale(self, gy)
        gx = gt = None
        if self.needs_grad[0]:
            den = x * (1.0 - x)
            np.maximum(den, 1e-12, out=den)
            gx = x - t
            gx /= den
            gx *= s
        if self.needs_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gt = np.log1p(-x)
                gt -= np.log(x)
            gt *= s
        return gx, gt

    def twin(self, x: Tensor, t: Tensor) -> Tensor:
        log_x = x.log().clamp(min=-100.0)
        log_1mx = (1.0 - x).log().clamp(min=-100.0)
        l = (t - 1.0) * log_1mx - t * log_x
        if self.weight is not None:
            l = l * self.weight
        return _reduce(l, self.reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: Any = None, reduce: Any = None,
                         reduction: str = "mean") -> Tensor:  # fmt: skip
    """Binary cross entropy between probabilities ``input`` in [0, 1] and ``target`` in [0, 1].

    ``weight`` (a constant, broadcast to the input's shape) rescales each element's loss. The
    logs are clamped to >= -100, so ``input`` of exactly 0 or 1 gives a finite loss.

    >>> import deltaprop as dp
    >>> binary_cross_entropy(dp.tensor([0.5]), dp.tensor([1.0]))   # log 2
    tensor(0.6931)
    """
    op = "binary_cross_entropy"
    reduction, x = _loss_input(op, input, reduction, size_average, reduce)
    t = _check_target(op, x, target)
    if not _same_size(x, t):
        raise ShapeError(
            f"{op}: using a target size ({t.shape}) that is different to the input size "
            f"({x.shape}) is not supported. Please ensure they have the same size."
        )
    for name, a in (("input", x.data), ("target", t.data)):
        if a.size and (a.min() < 0 or a.max() > 1):
            raise InvalidArgumentError(
                f"{op}: all elements of {name} should be between 0 and 1 (got values in "
                f"[{a.min()}, {a.max()}]); for logits use binary_cross_entropy_with_logits"
            )
    w = _const(op, "weight", weight, x)
    return BinaryCrossEntropyFunction(w, reduction).apply(x, t)


def _log_sigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x) = log_softmax([0, x])[1], composed of primitives: stable and smooth."""
    z = stack([_make(np.zeros(x.shape, dtype=x.dtype)), x], dim=-1)
    return log_softmax(z, -1)[..., 1]


class BCEWithLogitsFunction(Function):
    """l = w [(1 - t) x + q softplus(-x)],  q = (pos_weight - 1) t + 1  (q = 1 without pos_weight).

    softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)) never overflows (logits of +-1000 are fine).
    dl/dx = w (q sigmoid(x) - pos_weight t)  (= w (sigmoid(x) - t) without pos_weight);
    dl/dt = w [(pos_weight - 1) softplus(-x) - x].
    """

    def __init__(self, weight: np.ndarray | None, pos_weight: np.ndarray | None,
                 reduction: str) -> None:  # fmt: skip
        self.weight, self.pos_weight, self.reduction = weight, pos_weight, reduction

    def forward(self, x, t):
        e = np.exp(-np.abs(x))  # in (0, 1]
        sp = np.log1p(e)
        sp += np.maximum(-x, 0.0)  # softplus(-x) = -log sigmoid(x)
        self.e, self.sp = e, sp
        l = 1.0 - t
        l *= x
        if self.pos_weight is None:
            l += sp
        else:
            q = (self.pos_weight - 1.0) * t
            q += 1.0
            q *= sp
            l += q
        return _weighted_reduce(self, l)

    def backward(self, gy):
        x, t = self.inputs[0].data, self.inputs[1].data
        s = _weighted_scale(self, gy)
        pw = self.pos_weight
        gx = gt = None
        if self.needs_grad[0]:
            e = self.e
            sig = np.where(x >= 0, 1.0, e).astype(x.dtype, copy=False)
            sig /= 1.0 + e
            if pw is None:
                gx = sig - t
            else:
                q = (pw - 1.0) * t
                q += 1.0
                gx = q * sig
                gx -= pw * t
            gx *= s
        if self.needs_grad[1]:
            gt = -x if pw is None else (pw - 1.0) * self.sp - x
            gt = gt * s
        return gx, gt

    def twin(self, x: Tensor, t: Tensor) -> Tensor:
        log_sig = _log_sigmoid(x)
        if self.pos_weight is None:
            l = (1.0 - t) * x - log_sig
        else:
            l = (1.0 - t) * x - ((t * (self.pos_weight - 1.0)) + 1.0) * log_sig
        if self.weight is not None:
            l = l * self.weight
        return _reduce(l, self.reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: Any = None, reduce: Any = None,
                                     reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:  # fmt: skip
    """Sigmoid + binary cross entropy in one stable op (logits of any size, no NaN or inf).

    ``weight`` rescales each element's loss; ``pos_weight`` (broadcast along the last dim, e.g.
    one per class) weighs the positive term. Both are constants.

    >>> import deltaprop as dp
    >>> binary_cross_entropy_with_logits(dp.tensor([1000.0, -1000.0]), dp.tensor([1.0, 0.0]))
    tensor(0.)
    """
    op = "binary_cross_entropy_with_logits"
    reduction, x = _loss_input(op, input, reduction, size_average, reduce)
    t = _check_target(op, x, target)
    if not _same_size(x, t):
        raise ShapeError(f"{op}: target size {t.shape} must be the same as input size {x.shape}")
    w = _const(op, "weight", weight, x)
    pw = _const(op, "pos_weight", pos_weight, x)
    return BCEWithLogitsFunction(w, pw, reduction).apply(x, t)


# ----------------------------------------------------------------------------------------------
# cross entropy and nll_loss: rows of classes
# ----------------------------------------------------------------------------------------------


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N*d1*..., C) with the class axis last; (C,) -> (1, C)."""
    if a.ndim == 2:
        return a
    if a.ndim == 1:
        return a.reshape(1, -1)
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _rows_t(t: Tensor) -> Tensor:
    """:func:`_rows` for Tensors (recorded: permute + reshape)."""
    if t.ndim == 2:
        return t
    if t.ndim == 1:
        return t.reshape(1, -1)
    return t.permute((0,) + tuple(range(2, t.ndim)) + (1,)).reshape(-1, t.shape[1])


def _from_rows(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_rows`: rows (M, C) back to the input's layout."""
    if len(shape) <= 2:
        return g.reshape(shape)
    moved = (shape[0],) + shape[2:] + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(g.reshape(moved), -1, 1))


def _n_classes(op: str, x: Tensor) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{op}: input must have at least 1 dimension (the classes), got a 0-d "
                         "tensor")  # fmt: skip
    return x.shape[1] if x.ndim >= 2 else x.shape[0]


def _class_weight(op: str, weight: Any, c: int, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (c,):
        raise ShapeError(
            f"{op}: weight should be defined for all {c} classes (shape ({c},)), but got weight "
            f"of shape {w.shape}"
        )
    return w.astype(dtype, copy=False)


class IndexTargets:
    """Class-index targets in row form, validated once and shared by forward, backward and twin.

    ``y`` (M,) class per row (0 where ignored), ``valid`` (M,) float mask or None when no row is
    ignored, ``wy`` (M,) weight of each row's class (0 where ignored) or None without weights,
    ``denom`` the 'mean' denominator: the sum of ``wy``, or the number of non-ignored rows.
    """

    def __init__(self, op: str, x: Tensor, target: Tensor, weight: np.ndarray | None,
                 ignore_index: int) -> None:  # fmt: skip
        c = _n_classes(op, x)
        expected = (x.shape[0],) + x.shape[2:] if x.ndim >= 2 else ()
        if target.dtype.kind not in "iu":
            raise DTypeError(
                f"{op}: class-index targets must have an integer dtype (e.g. int64), got "
                f"{target.dtype}; class probabilities need a float target of the input's shape "
                f"{x.shape}"
            )
        if target.shape != expected:
            raise ShapeError(
                f"{op}: expected a target of shape {expected} (class indices) for input of shape "
                f"{x.shape}, got target of shape {target.shape}"
            )
        y = target.data.reshape(-1)
        valid = None
        if y.size:
            lo, hi = y.min(), y.max()
            if lo <= ignore_index <= hi:
                keep = y != ignore_index
                if not keep.all():
                    valid = keep
                    yv = y[keep]
                    lo, hi = (yv.min(), yv.max()) if yv.size else (0, 0)
            if lo < 0 or hi >= c:
                yv = y if valid is None else y[valid]
                bad = int(yv[(yv < 0) | (yv >= c)][0])
                raise IndexError(
                    f"{op}: target {bad} is out of bounds: class indices must lie in "
                    f"[0, {c - 1}] for {c} classes (or equal ignore_index={ignore_index})"
                )
            if valid is not None:
                y = np.where(valid, y, 0)
        self.c, self.y, self.shape = c, y, target.shape
        self.rows = np.arange(y.size)
        self.valid = valid.astype(x.dtype) if valid is not None else None
        self.weight = weight
        if weight is not None:
            wy = weight[y]
            if self.valid is not None:
                wy *= self.valid
            self.wy = wy
            self.denom = float(wy.sum())
        else:
            self.wy = None
            self.denom = float(valid.sum() if valid is not None else y.size)

    def row_weight(self) -> np.ndarray | None:
        """Each row's factor on its own loss term: w_y (0 if ignored), the mask, or None."""
        return self.wy if self.wy is not None else self.valid

    def reduce(self, l: Any, reduction: str) -> Any:
        if reduction == "none":
            return l.reshape(self.shape)
        return _reduce(l, reduction, self.denom)

    def scale(self, gy: Any, reduction: str) -> Any:
        """dL/dl_i per row: a scalar for 'sum'/'mean', an (M,) array for 'none'."""
        if reduction == "none":
            return gy.reshape(-1)
        if reduction == "mean" and self.denom == 0:  # every row ignored: loss nan, gradient 0
            return gy * 0.0
        return _loss_scale(gy, reduction, self.denom)


class CrossEntropyFunction(Function):
    """Fused log_softmax + NLL (+ label smoothing) for class-index targets.

    l_i = (1-eps) w_y (lse_i - x_{i,y}) + (eps/C) (sum(w) lse_i - sum_c w_c x_{i,c}),
    lse_i = log sum_c exp(x_{i,c}) (max-shifted: no overflow).
    dl_i/dx_i = (1-eps) w_y (p_i - onehot(y_i)) + (eps/C) (sum(w) p_i - w),  p = softmax(x_i).
    """

    def __init__(self, op: str, weight: np.ndarray | None, ignore_index: int, reduction: str,
                 label_smoothing: float) -> None:  # fmt: skip
        self.op, self.weight, self.ignore_index = op, weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def forward(self, x, t):
        # the targets are an input (validated here, at every call): nothing per call is kept
        # from construction, so a replay by deltaprop.compile reads the new targets
        self.tg = tg = IndexTargets(self.op, _make(x), _make(t), self.weight, self.ignore_index)
        eps = self.eps
        x2 = _rows(x)
        m = x2.max(axis=1, keepdims=True) if x2.size else np.zeros((len(x2), 1), x.dtype)
        p = x2 - m
        np.exp(p, out=p)
        se = p.sum(axis=1, keepdims=True)
        p /= se
        lse = np.log(se, out=se)
        lse += m
        lse = lse.reshape(-1)
        self.p = p  # softmax, kept for backward
        l = lse - x2[tg.rows, tg.y]  # -logp of the target class
        rw = tg.row_weight()
        if rw is not None:
            l *= rw
        if eps:
            if tg.weight is None:
                smooth = lse * float(tg.c)
                smooth -= x2.sum(axis=1)
            else:
                smooth = lse * float(tg.weight.sum())
                smooth -= x2 @ tg.weight
            if tg.valid is not None:
                smooth *= tg.valid
            l *= 1.0 - eps
            smooth *= eps / tg.c
            l += smooth
        return tg.reduce(l, self.reduction)

    def backward(self, gy):
        tg, eps, p = self.tg, self.eps, self.p
        s = tg.scale(gy, self.reduction)
        sv = s if tg.valid is None else s * tg.valid  # per-row factor of the smoothing part
        if tg.weight is None:
            cp, cy = sv, sv * (1.0 - eps) if eps else sv
        else:
            cy = tg.wy * s * (1.0 - eps)
            cp = cy + sv * (eps * float(tg.weight.sum()) / tg.c) if eps else cy
        g = p * (cp[:, None] if np.ndim(cp) else cp)
        g[tg.rows, tg.y] -= cy
        if eps:
            cw = sv[:, None] if np.ndim(sv) else sv
            cw = cw * (eps / tg.c)
            if tg.weight is not None:
                cw = cw * tg.weight
            g -= cw
        return (_from_rows(g, self.inputs[0].shape), None)

    def twin(self, x: Tensor, t: Tensor) -> Tensor:
        tg, eps = self.tg, self.eps
        logp = _rows_t(log_softmax(x, 1 if x.ndim >= 2 else 0))
        l = -logp[tg.rows, tg.y]
        rw = tg.row_weight()
        if rw is not None:
            l = l * rw
        if eps:
            lw = logp if tg.weight is None else logp * tg.weight
            smooth = -lw.sum(axis=1)
            if tg.valid is not None:
                smooth = smooth * tg.valid
            l = l * (1.0 - eps) + smooth * (eps / tg.c)
        return tg.reduce(l, self.reduction)


class CrossEntropyProbFunction(Function):
    """Cross entropy with class-probability targets t (same shape as the logits).

    l_i = -sum_c a_{i,c} logp_{i,c},  a = w ((1-eps) t + eps/C).
    dl_i/dx_i = p_i sum_c a_{i,c} - a_i;   dl_i/dt_i = -(1-eps) w logp_i.
    """

    def __init__(self, weight: np.ndarray | None, reduction: str, label_smoothing: float) -> None:
        self.weight, self.reduction, self.eps = weight, reduction, label_smoothing

    def _a(self, t2: Any, c: int) -> Any:
        a = t2 * (1.0 - self.eps) + self.eps / c if self.eps else t2
        return a * self.weight if self.weight is not None else a

    def forward(self, x, t):
        x2 = _rows(x)
        c = x2.shape[1]
        m = x2.max(axis=1, keepdims=True) if x2.size else np.zeros((len(x2), 1), x.dtype)
        logp = x2 - m
        e = np.exp(logp)
        lse = np.log(e.sum(axis=1, keepdims=True))
        logp -= lse
        self.logp = logp
        l = -np.einsum("ij,ij->i", logp, self._a(_rows(t), c))
        if self.reduction == "none":
            return l.reshape(x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ())
        return _reduce(l, self.reduction)

    def backward(self, gy):
        x, t = self.inputs[0], self.inputs[1]
        logp = self.logp
        c = logp.shape[1]
        s = (
            gy.reshape(-1, 1)
            if self.reduction == "none"
            else _loss_scale(gy, self.reduction, float(logp.shape[0]))
        )
        gx = gt = None
        if self.needs_grad[0]:
            a = self._a(_rows(t.data), c)
            gx = np.exp(logp)
            gx *= a.sum(axis=1, keepdims=True)
            gx -= a
            gx *= s
            gx = _from_rows(gx, x.shape)
        if self.needs_grad[1]:
            gt = logp * (s * -(1.0 - self.eps))
            if self.weight is not None:
                gt *= self.weight
            gt = _from_rows(gt, t.shape)
        return gx, gt

    def twin(self, x: Tensor, t: Tensor) -> Tensor:
        dim = 1 if x.ndim >= 2 else 0
        c = x.shape[dim]
        logp = log_softmax(x, dim)
        a = t * (1.0 - self.eps) + self.eps / c if self.eps else t
        if self.weight is not None:
            a = a * self.weight.reshape((c,) + (1,) * (x.ndim - dim - 1))
        l = -(logp * a).sum(axis=dim)
        if self.reduction == "none":
            return l
        return _reduce(l, self.reduction, float(x.data.size // c) if c else 0.0)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:  # fmt: skip
    """Cross entropy of logits ``input`` (N, C) / (N, C, d1, ...) / (C,) and ``target``.

    ``target`` holds class indices (integer, shape (N,) / (N, d1, ...) / ()) or class
    probabilities (float, the input's shape). ``weight`` (C,) weighs the classes (a constant);
    rows whose target equals ``ignore_index`` contribute nothing; with ``reduction='mean'`` the
    sum is divided by the total weight of the non-ignored rows, as PyTorch; ``label_smoothing``
    mixes the target with the uniform distribution. Gradient: ``softmax - onehot``, scaled.

    >>> import deltaprop as dp
    >>> cross_entropy(dp.tensor([[0.0, 0.0]]), dp.tensor([1]))   # log 2
    tensor(0.6931)
    """
    op = "cross_entropy"
    reduction, x = _loss_input(op, input, reduction, size_average, reduce)
    c = _n_classes(op, x)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise InvalidArgumentError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {eps}")
    w = _class_weight(op, weight, c, x.dtype)
    t = as_tensor(target)
    if t.shape == x.shape:  # class probabilities
        if t.dtype.kind != "f":
            raise DTypeError(
                f"{op}: a target of the input's shape {x.shape} holds class probabilities and "
                f"must be floating point, got {t.dtype}"
            )
        if ignore_index != -100:
            raise InvalidArgumentError(
                f"{op}: ignore_index is not supported for floating point (probability) targets"
            )
        if t.dtype != x.dtype:
            t = t.to(x.dtype)
        return CrossEntropyProbFunction(w, reduction, eps).apply(x, t)
    return CrossEntropyFunction(op, w, int(ignore_index), reduction, eps).apply(x, t)


class NLLLossFunction(Function):
    """l_i = -w_y x_{i,y} (x holds log-probabilities).  dl_i/dx_i = -w_y onehot(y_i)."""

    def __init__(self, tg: IndexTargets, reduction: str) -> None:
        self.tg, self.reduction = tg, reduction

    def forward(self, x):
        tg = self.tg
        l = -_rows(x)[tg.rows, tg.y]
        rw = tg.row_weight()
        if rw is not None:
            l *= rw
        return tg.reduce(l, self.reduction)

    def backward(self, gy):
        tg, x = self.tg, self.inputs[0]
        s = tg.scale(gy, self.reduction)
        rw = tg.row_weight()
        g = np.zeros((tg.y.size, tg.c), dtype=x.dtype)
        g[tg.rows, tg.y] = -s if rw is None else -s * rw
        return (_from_rows(g, x.shape),)

    def twin(self, x: Tensor) -> Tensor:
        tg = self.tg
        l = -_rows_t(x)[tg.rows, tg.y]
        rw = tg.row_weight()
        if rw is not None:
            l = l * rw
        return tg.reduce(l, self.reduction)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
             reduction: str = "mean") -> Tensor:  # fmt: skip
    """Negative log likelihood of log-probabilities ``input`` (N, C) / (N, C, d1, ...) / (C,).

    ``cross_entropy(x, t) == nll_loss(log_softmax(x, 1), t)``; ``weight``, ``ignore_index`` and
    the 'mean' denominator as in :func:`cross_entropy`.

    >>> import deltaprop as dp
    >>> nll_loss(dp.tensor([[-1.0, -2.0], [-3.0, -4.0]]), dp.tensor([1, 0]))
    tensor(2.5)
    """
    op = "nll_loss"
    reduction, x = _loss_input(op, input, reduction, size_average, reduce)
    c = _n_classes(op, x)
    w = _class_weight(op, weight, c, x.dtype)
    tg = IndexTargets(op, x, as_tensor(target), w, int(ignore_index))
    return NLLLossFunction(tg, reduction).apply(x)


__all__ = [
    "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
    "nll_loss", "MSELossFunction", "BinaryCrossEntropyFunction", "BCEWithLogitsFunction",
    "CrossEntropyFunction", "CrossEntropyProbFunction", "NLLLossFunction", "IndexTargets",
]  # fmt: skip
