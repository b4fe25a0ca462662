"""The ONNX graph being written: values with their shapes, nodes, initializers.

A :class:`Value` is one tensor of the exported graph: its ONNX name, its concrete shape in the
traced run, its dtype, and which of its axes are *dynamic* (free in the exported graph, such as
the batch axis named by ``dynamic_axes``). Converters (:mod:`deltaprop.onnx.convert`) read the
values of an op's inputs and add nodes through a :class:`GraphBuilder`, which names every node
after the module the op ran in (``/features.0/Conv``), stores constants as initializers, and
knows which operator signatures the target opset uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Opsets the exporter writes (LayerNormalization and Gelu are decomposed below 17 and 20).
MIN_OPSET, MAX_OPSET = 13, 21


@dataclass(frozen=True)
class Dim:
    """A dynamic axis whose length is ``minor`` times the symbol ``name`` (the symbol varying
    slowest, as after flattening the batch with the axes behind it); ``minor`` None: another
    function of it (after a slice or a concatenation along it)."""

    name: str | None
    minor: int | None = 1

    @property
    def symbol(self) -> str | None:
        """The name to write into the graph's shapes (None: a dimension without a name)."""
        return self.name if self.minor == 1 else None


OPAQUE = Dim(None, None)


@dataclass
class Value:
    """One tensor of the graph: ``dyn`` maps each dynamic axis to its :class:`Dim`."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    dyn: dict[int, Dim] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return len(self.shape)


def broadcast_dyn(values: list[Value], ndim: int) -> dict[int, Dim]:
    """Dynamic axes of a NumPy-broadcast result of ``ndim`` dims (inputs aligned on the right)."""
    dyn: dict[int, Dim] = {}
    for v in values:
        lead = ndim - v.ndim
        for axis, d in v.dyn.items():
            out = lead + axis
            if out not in dyn or (dyn[out].symbol is None and d.symbol is not None):
                dyn[out] = d
    return dyn


class GraphBuilder:
    """Collects nodes and initializers; ``scope`` names the nodes of the op being converted."""

    def __init__(self, opset: int) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.scope = ""  # node-name prefix of the op being converted: "/" + module name
        self.module = ""  # the state_dict prefix of the module that op ran in
        self.buffers: dict[str, np.ndarray] = {}  # the model's buffers by state_dict name
        self.names: dict[int, str] = {}  # id of a parameter or buffer tensor -> state_dict name
        self._used: set[str] = set()
        self._inits: set[str] = set()
        self._consts: dict[tuple, str] = {}

    # -- names -------------------------------------------------------------------------------
    def reserve(self, name: str) -> None:
        """Mark a name (graph input, parameter) as taken."""
        self._used.add(name)

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name = f"{base}_{k}"
            k += 1
        self._used.add(name)
        return name

    # -- initializers ------------------------------------------------------------------------
    def initializer(self, array: np.ndarray, name: str) -> str:
        """Store ``array`` under ``name`` (taken as given: parameter names are unique)."""
        if name in self._inits:
            return name
        self._inits.add(name)
        self._used.add(name)
        arr = np.asarray(array)
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
            arr = arr.copy(order="C")
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        return name

    def const(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        """A constant initializer holding ``value`` (small equal constants are shared)."""
        arr = np.asarray(value, dtype=dtype)
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.unique(f"{self.scope}/{hint}" if self.scope else hint)
        self.initializer(arr, name)
        if key is not None:
            self._consts[key] = name
        return name

    def state(self, array: np.ndarray, key: str, tensor: Any = None) -> str:
        """A module buffer that an op holds as a copy (batch norm's running statistics): stored
        under its state_dict name (that of ``tensor``, else ``key`` in the op's module) when the
        buffer still has this value."""
        name = self.names.get(id(tensor)) if tensor is not None else None
        if name is None:
            name = f"{self.module}.{key}" if self.module else key
        ref = self.buffers.get(name)
        if ref is not None and ref.shape == array.shape and np.array_equal(ref, array):
            return self.initializer(array, name)
        return self.const(array, hint=key)

    def ints(self, values: Any) -> str:
        """An int64 1-D constant (shapes, axes, slice bounds)."""
        return self.const(np.asarray(list(values), dtype=np.int64), hint="ints")

    # -- nodes -------------------------------------------------------------------------------
    def node(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        """Add a node with one output; returns the output's name (``out`` if given)."""
        name = self.unique(f"{self.scope}/{op_type}")
        if out is None:
            out = self.unique(f"{name}_output_0")
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    # -- opset-dependent signatures ----------------------------------------------------------
    def reduce(self, op_type: str, x: str, axes: list[int] | None, keepdims: bool) -> str:
        """ReduceSum/Mean/Max/Min over ``axes`` (None: all): axes are an input from opset 18
        (13 for ReduceSum), an attribute before."""
        as_input = op_type == "ReduceSum" or self.opset >= 18
        keep = int(bool(keepdims))
        if axes is None:
            return self.node(op_type, [x], keepdims=keep)
        if as_input:
            return self.node(op_type, [x, self.ints(axes)], keepdims=keep)
        return self.node(op_type, [x], axes=list(axes), keepdims=keep)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.node("Unsqueeze", [x, self.ints(axes)])

    def squeeze(self, x: str, axes: list[int]) -> str:
        return self.node("Squeeze", [x, self.ints(axes)])
