"""``export``: run a model once, read the graph the engine recorded, write it as ONNX.

How it works
------------
1. The model runs once in eval mode on copies of ``args`` that require gradients, so the engine
   records every op that depends on an input (a recorded op keeps its inputs and the attributes
   its ``forward`` used: stride, padding, axes, running statistics...). Forward hooks on every
   submodule note which module each op ran in, for node names and error messages.
2. The recorded ops are walked from the outputs back to the leaves and put in topological order.
   A leaf is an input, a parameter or buffer (an initializer under its ``state_dict`` name), or a
   constant (an initializer too).
   The model then runs once more on other values, each dynamic axis one longer: a value the
   graph would freeze (a comparison, an index computed from the input) that changed, or an
   output length that changed where the graph would fix it, is refused.
3. Each op becomes ONNX nodes (:mod:`deltaprop.onnx.convert`). Shapes written into the graph
   leave the ``dynamic_axes`` free, so one file serves any batch size.
4. The model is checked with ``onnx.checker.check_model(full_check=True)`` and written
   atomically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deltaprop.errors import ExportError
from deltaprop.io import atomic_write
from deltaprop.onnx.builder import MAX_OPSET, MIN_OPSET, Dim, GraphBuilder, Value
from deltaprop.onnx.convert import CONVERTERS
from deltaprop.onnx.trace import check_shapes, check_stable, topological, trace
from deltaprop.random import get_rng_state
from deltaprop.tensor import Tensor, _make

__all__ = ["export", "SUPPORTED_OPS"]


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "deltaprop.onnx.export needs the onnx package: pip install 'deltaprop[onnx]'"
        ) from None
    return onnx


def export(
    model: Any,
    args: Any,
    f: str | os.PathLike[str] | Any,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None,
    opset_version: int | None = 17,
    *,
    export_params: bool = True,
    do_constant_folding: bool = True,
    verbose: bool = False,
) -> None:
    """Write ``model`` as an ONNX file, as ``torch.onnx.export``.

    Args:
        model: a :class:`deltaprop.nn.Module` (any forward: skip connections, concatenation,
            reshapes, functional ops) or a function of tensors.
        args: the example input: a Tensor or ndarray, or a tuple of them (one per forward
            argument). The model runs once on it, in eval mode.
        f: a file path, or a binary file object to write into.
        input_names, output_names: the graph's input and output names (default ``input`` /
            ``output``, numbered when there are several).
        dynamic_axes: which axes stay free, e.g. ``{"input": {0: "batch"}, "output": {0:
            "batch"}}`` (or a list of axes: ``{"input": [0]}``).
        opset_version: the ONNX opset, 13 to 21 (default, and None: 17).
        export_params, do_constant_folding: PyTorch's options, accepted with their defaults
            (the parameters are always written, as initializers; constants need no folding).
        verbose: print the graph (ONNX's text form) after writing it.

    The parameters and buffers are stored as initializers under their ``state_dict`` names.
    Raises :class:`deltaprop.errors.ExportError` for an op without an ONNX mapping (naming the op
    and the module it ran in), a model that does not run on ``args``, bad names or axes, or an
    output path that cannot be written.

    >>> import io
    >>> import deltaprop as dp
    >>> from deltaprop import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> buf = io.BytesIO()
    >>> dp.onnx.export(model, dp.randn(2, 4), buf, dynamic_axes={"input": {0: "batch"}})
    >>> import onnx
    >>> m = onnx.load_from_string(buf.getvalue())
    >>> [n.op_type for n in m.graph.node], [i.name for i in m.graph.initializer]
    (['Gemm', 'Relu', 'Gemm'], ['0.weight', '0.bias', '2.weight', '2.bias'])
    """
    if not export_params:
        raise ExportError(
            "export_params=False is not supported: the parameters are written into the file as "
            "initializers (named as in the state_dict)"
        )
    del do_constant_folding  # nothing to fold: every constant is an initializer already
    proto = export_model(model, args, f, input_names, output_names, dynamic_axes, opset_version)
    if verbose:
        import onnx

        print(onnx.printer.to_text(proto.graph))


def export_model(
    model: Any,
    args: Any,
    f: Any,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Any] | None = None,
    opset_version: int = 17,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    constants: Mapping[str, Tensor] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """:func:`export`, with an optional ``preprocess`` applied to every input inside the graph
    (e.g. a run's input normalisation) whose ``constants`` get the given initializer names, and
    ``metadata`` stored as the model's ``metadata_props``. Returns the ModelProto written."""
    onnx = _require_onnx()
    opset = _check_opset(opset_version)
    inputs = _example_inputs(args)
    dest = _check_destination(f)
    rng_before = get_rng_state()
    outputs, owners = trace(model, inputs, preprocess)
    in_names = _names(input_names, len(inputs), "input", "input_names")
    out_names = _names(output_names, len(outputs), "output", "output_names")
    if set(in_names) & set(out_names):
        raise ExportError(
            f"input_names and output_names share {sorted(set(in_names) & set(out_names))}; "
            "every graph input and output needs its own name"
        )
    axes = _dynamic_axes(dynamic_axes, in_names, out_names, inputs, outputs)
    state = _state_names(model, constants or {})
    clash = sorted((set(in_names) | set(out_names)) & set(state.values()))
    if clash:
        raise ExportError(
            f"input/output names {clash} are already the names of parameters or buffers of the "
            "model (its initializers); choose other names"
        )
    order = topological(outputs)

    def where(fn: Any) -> str:
        return _where(model, owners, fn)

    def run(xs: list[Tensor]) -> tuple[list[Tensor], dict]:
        return trace(model, xs, preprocess)

    dynamic = [set(axes.get(name, {})) for name in in_names]
    other = check_stable(run, inputs, dynamic, order, set(state), where, rng_before)
    proto, values = _build(onnx, model, inputs, outputs, order, owners, state, in_names,
                           out_names, axes, opset)  # fmt: skip
    if other is not None:
        check_shapes(order, other, lambda fn: set(values[id(fn)].dyn), where)
    if metadata:
        onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    _write(proto.SerializeToString(), f, dest)
    return proto


# ----------------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------------


def _check_opset(opset_version: Any) -> int:
    if opset_version is None:
        return 17
    if isinstance(opset_version, bool) or not isinstance(opset_version, (int, np.integer)):
        raise ExportError(f"opset_version must be an int, got {opset_version!r}")
    if not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ExportError(
            f"opset_version {opset_version} is not supported; choose {MIN_OPSET} to {MAX_OPSET}"
        )
    return int(opset_version)


def _example_inputs(args: Any) -> list[Tensor]:
    items = list(args) if isinstance(args, (tuple, list)) else [args]
    if not items:
        raise ExportError("args is empty: give the example input(s) the model runs on")
    inputs = []
    for i, a in enumerate(items):
        if isinstance(a, Tensor):
            data = a.data
        elif isinstance(a, np.ndarray):
            data = a
        else:
            raise ExportError(
                f"args[{i}] is a {type(a).__name__}; export takes Tensors or NumPy arrays as the "
                "model's inputs"
            )
        if data.dtype.kind not in "fiu":
            raise ExportError(
                f"args[{i}] has dtype {data.dtype}; export takes floating point inputs (and "
                "integer ones, such as class-index targets)"
            )
        # a copy; a float one requires gradients, so that every op reading it is recorded
        inputs.append(_make(np.array(data, order="C"), data.dtype.kind == "f"))
    return inputs


def _check_destination(f: Any) -> str | None:
    """The output path, checked before the model runs (None for a file object)."""
    if hasattr(f, "write"):
        return None
    try:
        path = os.fspath(f)
    except TypeError:
        raise ExportError(
            f"f must be a file path or a binary file object, got {type(f).__name__}"
        ) from None
    path = os.fsdecode(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ExportError(f"cannot write the ONNX file {path!r}: it is a directory")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ExportError(
            f"cannot write the ONNX file {path!r}: {directory!r} is a file, not a directory"
        )
    if not os.path.isdir(directory):
        raise ExportError(f"cannot write the ONNX file {path!r}: directory {directory!r} does "
                          "not exist")  # fmt: skip
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ExportError(f"cannot write the ONNX file {path!r}: permission denied")
    return path


def _names(names: Sequence[str] | None, n: int, default: str, arg: str) -> list[str]:
    defaults = [default] if n == 1 else [f"{default}_{i}" for i in range(n)]
    if names is None:
        return defaults
    if isinstance(names, str) or not all(isinstance(s, str) and s for s in names):
        raise ExportError(f"{arg} must be a list of non-empty strings, got {names!r}")
    names = list(names)
    if len(names) > n:
        raise ExportError(f"{arg} has {len(names)} names but the model has {n}")
    if len(set(names)) != len(names):
        raise ExportError(f"{arg} has repeated names: {names}")
    return names + [d for d in defaults[len(names) :]]


def _dynamic_axes(
    dynamic_axes: Any,
    in_names: list[str],
    out_names: list[str],
    inputs: list[Tensor],
    outputs: list[Tensor],
) -> dict[str, dict[int, str]]:
    """``{name: {axis: symbol}}`` with list forms named as torch does (``input_dynamic_axes_1``)."""
    if dynamic_axes is None:
        return {}
    if not isinstance(dynamic_axes, Mapping):
        raise ExportError(
            "dynamic_axes must be a dict such as {'input': {0: 'batch'}}, got "
            f"{type(dynamic_axes).__name__}"
        )
    ndims = {n: t.ndim for n, t in zip(in_names, inputs)}
    ndims.update({n: t.ndim for n, t in zip(out_names, outputs)})
    result: dict[str, dict[int, str]] = {}
    for name, spec in dynamic_axes.items():
        if name not in ndims:
            raise ExportError(
                f"dynamic_axes names {name!r}, which is neither an input ({', '.join(in_names)}) "
                f"nor an output ({', '.join(out_names)})"
            )
        if isinstance(spec, Mapping):
            pairs = list(spec.items())
        elif isinstance(spec, (list, tuple)):
            pairs = [(a, f"{name}_dynamic_axes_{k + 1}") for k, a in enumerate(spec)]
        else:
            raise ExportError(
                f"dynamic_axes[{name!r}] must be a dict {{axis: name}} or a list of axes, got "
                f"{spec!r}"
            )
        axes: dict[int, str] = {}
        for axis, sym in pairs:
            nd = ndims[name]
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
                raise ExportError(f"dynamic_axes[{name!r}]: axis {axis!r} is not an int")
            if not -nd <= axis < nd:
                raise ExportError(
                    f"dynamic_axes[{name!r}]: axis {axis} is out of range for a tensor with "
                    f"{nd} dims"
                )
            if not isinstance(sym, str) or not sym:
                raise ExportError(f"dynamic_axes[{name!r}]: the name of axis {axis} must be a "
                                  f"non-empty string, got {sym!r}")  # fmt: skip
            axes[int(axis) % nd] = sym
        result[name] = axes
    for name, t in zip(in_names, inputs):
        for axis in result.get(name, {}):
            if t.shape[axis] == 1:
                warnings.warn(
                    f"dynamic axis {axis} of input {name!r} has length 1 in args; reshapes "
                    "cannot tell it from the other axes of length 1: export with a length of "
                    "at least 2",
                    UserWarning,
                    stacklevel=3,
                )
    return result


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------


def _where(model: Any, owners: dict, fn: Any) -> str:
    name = owners.get(fn)
    if name is None:
        return f"the forward of {type(model).__name__}"
    if name == "":
        return f"the forward of {type(model).__name__} (outside its submodules)"
    module = model.get_submodule(name)
    return f"module {name!r} ({type(module).__name__})"


def _state_names(model: Any, named: Mapping[str, Tensor]) -> dict[int, str]:
    """``{id: state_dict name}`` for every parameter and buffer (the tensor and its array), and
    for the extra ``named`` constants."""
    from deltaprop.nn.module import Module

    state: dict[int, str] = {}
    if isinstance(model, Module):
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t is not None:
                state.setdefault(id(t), name)
                state.setdefault(id(t.data), name)
    for name, t in named.items():
        state[id(t)] = state[id(t.data)] = name
    return state


def _build(onnx, model, inputs, outputs, order, owners, state, in_names, out_names, axes, opset):
    """The ModelProto of the traced ops ``order`` and the Value of each (by id of the op)."""
    from deltaprop.nn.module import Module

    helper = onnx.helper
    b = GraphBuilder(opset)
    for name in [*in_names, *out_names, *state.values()]:
        b.reserve(name)
    if isinstance(model, Module):
        for name, t in model.named_buffers():
            if t is not None:
                b.buffers.setdefault(name, t.data)
    b.names = state
    values: dict[int, Value] = {}  # id(Function) for op outputs, id(Tensor) for leaves
    for name, t in zip(in_names, inputs):
        dyn = {a: Dim(sym) for a, sym in axes.get(name, {}).items()}
        values[id(t)] = Value(name, tuple(t.shape), t.dtype, dyn)
    input_data = {id(t.data): values[id(t)] for t in inputs}

    def leaf(t: Tensor) -> Value:
        v = values.get(id(t))
        if v is None:
            if id(t.data) in input_data:  # x.detach() of an input: the same array
                v = input_data[id(t.data)]
            elif id(t) in state or id(t.data) in state:
                name = state.get(id(t), state.get(id(t.data)))
                v = Value(b.initializer(t.data, name), tuple(t.shape), t.dtype)
            else:
                v = Value(b.const(t.data, hint="constant"), tuple(t.shape), t.dtype)
            values[id(t)] = v
        return v

    for fn in order:
        convert = CONVERTERS.get(type(fn))
        if convert is None:
            raise ExportError(
                f"cannot export op {fn.name} ({type(fn).__name__}), used in "
                f"{_where(model, owners, fn)}: it has no ONNX mapping (the mapped ops are "
                "listed in deltaprop.onnx.SUPPORTED_OPS)"
            )
        module = owners.get(fn, "")
        b.scope, b.module = (f"/{module}" if module else ""), module
        ins = [values[id(t._ctx)] if t._ctx is not None else leaf(t) for t in fn.inputs]
        try:
            values[id(fn)] = convert(b, fn, ins, fn._y)
        except ExportError as e:
            raise ExportError(f"{e}, in {_where(model, owners, fn)}") from None
    b.scope = b.module = ""

    graph_outputs = []
    renames: dict[str, str] = {}
    produced = {out for node in b.nodes for out in node.output}
    for i, (name, t) in enumerate(zip(out_names, outputs)):
        if t._ctx is None and id(t) not in values and id(t.data) not in input_data:
            raise ExportError(
                f"output {i} does not depend on any input: it was computed outside the recorded "
                "graph (through .detach(), .numpy(), no_grad or a new tensor); export records "
                "only what is computed from the inputs"
            )
        v = values[id(t._ctx)] if t._ctx is not None else leaf(t)
        if v.name in produced and v.name not in renames and v.name not in out_names:
            renames[v.name] = name
        else:
            b.node("Identity", [renames.get(v.name, v.name)], out=name)
        dims: list[Any] = list(v.shape)
        for axis, d in v.dyn.items():
            dims[axis] = d.symbol
        for axis, sym in axes.get(name, {}).items():
            dims[axis] = sym
        graph_outputs.append(helper.make_tensor_value_info(name, _elem(helper, v.dtype), dims))
    for node in b.nodes:
        node.input[:] = [renames.get(s, s) for s in node.input]
        node.output[:] = [renames.get(s, s) for s in node.output]
    graph_inputs = []
    for name, t in zip(in_names, inputs):
        dims = list(t.shape)
        for axis, sym in axes.get(name, {}).items():
            dims[axis] = sym
        graph_inputs.append(helper.make_tensor_value_info(name, _elem(helper, t.dtype), dims))
    graph = helper.make_graph(
        b.nodes, type(model).__name__, graph_inputs, graph_outputs, b.initializers
    )
    import deltaprop

    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="deltaprop",
        producer_version=deltaprop.__version__,
    )
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    return proto, values


def _elem(helper: Any, dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _write(data: bytes, f: Any, path: str | None) -> None:
    """Write ``data`` to the file object, or atomically to ``path`` (:func:`io.atomic_write`)."""
    if path is None:
        f.write(data)
        return

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:
            out.write(data)

    try:
        atomic_write(path, write)
    except OSError as e:
        raise ExportError(f"cannot write the ONNX file {path!r}: {e.strerror or e}") from None


#: The op names (``Function.name``) that have an ONNX mapping.
SUPPORTED_OPS: tuple[str, ...] = tuple(
    sorted({cls.__name__.removesuffix("Function") for cls in CONVERTERS})
)
