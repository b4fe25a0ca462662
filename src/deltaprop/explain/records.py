"""What an explanation records: plain data, copied from the engine's tensors.

:mod:`.trace` and :mod:`.circuit` fill these records by running the engine; the document
builders read them. Arrays are NumPy copies; per-sample arrays have the batch as their first
axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# displays: intermediate matrices rebuilt from the engine's inputs, checked against its results
# ----------------------------------------------------------------------------------------------


@dataclass
class ConvDisplay:
    """The matrices of one conv layer's step (see :mod:`.conv`)."""

    cols: np.ndarray  # (N*H'*W', C*kh*kw)
    row_labels: list[str]  # output position of each row: "(r,c)", "s2 (r,c)" with several samples
    col_labels: list[str]  # kernel entry of each column: "(i,j)", "c2 (i,j)" with several channels
    wmat: np.ndarray  # (C*kh*kw, K)
    gemm: np.ndarray  # cols @ wmat + b, (N*H'*W', K) == net
    dy: np.ndarray  # delta as (N*H'*W', K)
    dw: np.ndarray  # cols^T @ dY, (C*kh*kw, K)
    db: np.ndarray  # (K,)
    dcols: np.ndarray  # dY @ Wmat^T, (N*H'*W', C*kh*kw)
    dx: np.ndarray | None  # col2im(dcols), (N, C, H, W)
    scatter: dict[tuple[int, int, int, int], list[tuple[int, int]]]  # x cell -> (row, col) of dcols


@dataclass
class PoolDisplay:
    """Where each window's upstream gradient goes: to the argmax (max pooling) or, divided by
    the window size, to every input of the window (average pooling)."""

    kind: str  # "max" or "avg"
    mask: np.ndarray | None  # (N, C, H, W), 1 at each window's argmax (max pooling)
    routes: list[tuple[tuple[int, int, int, int], list[tuple[int, int]], float]]
    # ((n, c, out_r, out_c), [(in_r, in_c), ...], upstream gradient)
    dx: np.ndarray  # (N, C, H, W)
    share: float = 1.0  # the fraction each input of a window receives (1/(kh*kw) for avg)


@dataclass
class NormDisplay:
    """Layer or batch normalization of one step, in groups of ``n`` elements normalised
    together (one group per sample for layer norm, per feature/channel for batch norm).

    Group arrays have one entry per group; element arrays have the input's shape.
    """

    over: str  # "sample" (layer norm) or "batch" (batch norm)
    n: int
    mean: np.ndarray
    var: np.ndarray
    std: np.ndarray  # sqrt(var + eps)
    xhat: np.ndarray
    g: np.ndarray  # dE/dy * gamma = dE/dxhat
    dvar: np.ndarray  # dE/dvar
    dmean: np.ndarray  # dE/dmean
    part_xhat: np.ndarray  # g / std
    part_mean: np.ndarray  # dE/dmean / n
    part_var: np.ndarray  # dE/dvar * 2 (x - mean) / n
    mean_g: np.ndarray  # mean(g) per group
    mean_gx: np.ndarray  # mean(g * xhat) per group
    dx: np.ndarray  # the sum of the three parts (== the engine's input gradient)


# ----------------------------------------------------------------------------------------------
# network traces
# ----------------------------------------------------------------------------------------------


@dataclass
class LayerRecord:
    """Everything one layer did in one step (arrays are copies of engine tensors).

    ``net`` is the layer's own output before its activation, ``out`` after it; ``out_grad``
    is dE/do, ``local`` do/dnet (elementwise activations), ``delta`` dE/dnet, ``input`` the
    o_prev the layer received and ``input_grad`` dE/d o_prev.
    """

    index: int
    type: str  # linear, conv2d, maxpool2d, avgpool2d, layernorm, batchnorm, dropout
    activation: str
    names: list[str]  # unit names of vector-shaped outputs
    in_names: list[str]
    net: np.ndarray
    out: np.ndarray
    delta: np.ndarray
    out_grad: np.ndarray | None = None
    local: np.ndarray | None = None
    input: np.ndarray | None = None
    input_grad: np.ndarray | None = None
    weights: np.ndarray | None = None  # before the update, shaped as the engine's tensor
    biases: np.ndarray | None = None
    weight_grad: np.ndarray | None = None
    bias_grad: np.ndarray | None = None
    weights_after: np.ndarray | None = None
    biases_after: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: int = 0
    kernel_size: tuple[int, int] | None = None
    kernel_as_matrix: bool = False
    eps: float = 0.0  # normalization layers
    norm_size: int = 0  # layer norm: the number of values normalized together
    p: float = 0.0  # dropout probability
    mask: np.ndarray | None = None  # dropout: 0 or 1/(1-p), the engine's local derivative
    conv: ConvDisplay | None = None
    pool: PoolDisplay | None = None
    norm: NormDisplay | None = None


@dataclass
class Check:
    """One gradient compared with central finite differences.

    ``kind`` is ``weight``, ``bias`` or ``delta``; ``layer`` the layer index; ``index`` the
    element (``(row, col)`` of the weight matrix, ``(sample, neuron)`` of delta, ...).
    """

    layer: int
    kind: str
    index: tuple[int, ...]
    analytic: float
    numeric: float

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)


@dataclass
class Verification:
    """The result of ``--verify``: every gradient compared with central finite differences."""

    eps: float
    count: int
    worst: Check
    tolerance: float
    ok: bool


@dataclass
class StepRecord:
    """One training step: the samples it used, the loss and each layer's record."""

    index: int
    samples: list[int]
    inputs: np.ndarray
    targets: np.ndarray
    loss: float
    layers: list[LayerRecord]
    verification: Verification | None = None


@dataclass(repr=False)
class NetworkRecord:
    """The steps of a network explanation and the settings they ran with."""

    title: str
    loss: str
    reduction: str
    lr: float
    train_biases: bool
    dtype: str
    steps: list[StepRecord]
    n_samples: int
    batch_size: int
    target_indices: bool = False
    description: str = ""
    optimizer: str = "deltaprop.optim.SGD"
    kind: str = "network"
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# circuits
# ----------------------------------------------------------------------------------------------

_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^"}


@dataclass
class CircuitNode:
    """One value of the circuit: an input, a constant, or the output of one gate."""

    name: str
    op: str  # input, const, add, sub, mul, div, pow, neg, exp, ..., max, min
    inputs: list[str]
    value: float
    grad: float | None = None  # df/dnode, the engine's .grad
    locals: list[float | None] = field(default_factory=list)  # dnode/dinput per distinct input
    contribs: list[float | None] = field(default_factory=list)  # df/dnode * dnode/dinput
    user_named: bool = False
    tensor: Any = field(default=None, repr=False, compare=False)

    @property
    def expression(self) -> str:
        """The gate as text, e.g. ``x + y``, ``sigmoid(a)``, ``max(a, b)``."""
        ins = self.inputs
        if self.op in _SYMBOL:
            if self.op == "pow":
                return f"{ins[0]}^{ins[1]}"
            if len(ins) == 1:  # the same input twice, e.g. x * x
                return f"{ins[0]} {_SYMBOL[self.op]} {ins[0]}"
            return f"{ins[0]} {_SYMBOL[self.op]} {ins[1]}"
        if self.op == "neg":
            return f"-{ins[0]}"
        if self.op in ("max", "min") and len(ins) == 1:
            return f"{self.op}({ins[0]}, {ins[0]})"
        return f"{self.op}({', '.join(ins)})"


@dataclass(repr=False)
class CircuitRecord:
    """A circuit run forward and backward: its nodes in the order they were computed."""

    title: str
    expression: str
    nodes: list[CircuitNode]
    output: str
    dtype: str = "float64"
    description: str = ""
    kind: str = "circuit"

    def node(self, name: str) -> CircuitNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self, name: str) -> list[CircuitNode]:
        return [n for n in self.nodes if name in n.inputs]
