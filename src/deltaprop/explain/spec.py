"""Spec files for ``deltaprop explain``: the TOML schema, parsed and checked.

A spec describes one small network (or one circuit) and the data of the steps to explain::

    title = "2-2-2 sigmoid network"
    loss = "mse_half"        # mse_half, mse, bce, ce
    lr = 0.5
    steps = 1
    train_biases = true
    [[layers]]               # one table per layer, input side first
    weights = [[0.15, 0.20], [0.25, 0.30]]   # rows = neurons, columns = inputs (as nn.Linear)
    biases = [0.35, 0.35]
    activation = "sigmoid"   # sigmoid, tanh, relu, linear, softmax
    [[layers]]
    weights = [[0.40, 0.45], [0.50, 0.55]]
    biases = [0.60, 0.60]
    activation = "sigmoid"
    [data]
    inputs = [[0.05, 0.10]]  # one row per sample
    targets = [[0.01, 0.99]]

The layer tables (``linear``, ``conv2d``, ``maxpool2d``, ``avgpool2d``, ``layernorm``,
``batchnorm``, ``dropout``) parse into the layer list of :mod:`deltaprop.models` (see
:mod:`.speclayers`). Optional keys: ``sizes = [2, 2, 2]`` with ``seed`` instead of
``[[layers]]`` (weights drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), ``seed`` (the
dropout masks), ``reduction``, ``batch_size``, ``dtype``, ``description``; ``[circuit]`` with
``expression`` and ``values`` describes a circuit of scalar gates instead.

Every problem raises :class:`SpecError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.explain.network import LOSSES
from deltaprop.explain.speclayers import ACTIVATIONS, SpecLayers, parse_layers
from deltaprop.explain.specvalues import (
    SpecError,
    Where,
    array,
    boolean,
    choice,
    integer,
    number,
    shape_str,
    string,
    table,
)
from deltaprop.userfiles import available_memory, describe_bytes, read_toml

REDUCTIONS = ("sum", "mean")
DTYPES = ("float64", "float32")
_TOP_KEYS = {
    "title", "loss", "lr", "steps", "train_biases", "layers", "data", "sizes", "seed",
    "activation", "activations", "reduction", "batch_size", "dtype", "circuit", "description",
}  # fmt: skip


@dataclass
class NetworkSpec:
    """A network spec: the model's layer list with its parameter values, the data and the
    training settings of the steps to explain."""

    title: str
    loss: str
    lr: float
    net: SpecLayers
    inputs: np.ndarray  # (m, n) or (m, C, H, W)
    targets: np.ndarray  # (m, k); one-hot for ce
    steps: int = 1
    train_biases: bool = True
    reduction: str = "sum"
    batch_size: int | None = None
    dtype: str = "float64"
    description: str = ""
    target_indices: bool = False  # ce targets given as class indices
    seed: int = 0  # dropout masks
    source: str = "spec"  # the file, for messages
    kind: str = "network"

    @property
    def layers(self) -> list[dict[str, Any]]:
        """The layer list of :mod:`deltaprop.models` (``build_sequential`` builds it)."""
        return self.net.layers


@dataclass
class CircuitSpec:
    """A circuit spec: statements of scalar gates and the values of the variables."""

    title: str
    expression: str
    values: dict[str, float] = field(default_factory=dict)
    description: str = ""
    dtype: str = "float64"
    kind: str = "circuit"


def load_spec(path: str | Path) -> NetworkSpec | CircuitSpec:
    """Read and check a spec file.

    ``load_spec("examples/explain/mattmazur-2-2-2.toml")`` gives a :class:`NetworkSpec` with
    ``loss == "mse_half"`` and ``lr == 0.5``; a malformed file raises :class:`SpecError`.
    """
    p = Path(path)
    raw = read_toml(p, "spec file", SpecError)
    return parse_spec(raw, source=str(p), default_title=p.stem)


def parse_spec(
    raw: dict[str, Any], source: str = "spec", default_title: str = "deltaprop explain"
) -> NetworkSpec | CircuitSpec:
    """Check a spec given as a dict (the parsed TOML) and return the typed spec."""
    where = Where(source)
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a table of keys, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in set(raw) - _TOP_KEYS)
    if unknown:
        raise where.err(unknown[0], f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    title = string(raw.get("title", default_title), "title", where)
    description = string(raw.get("description", ""), "description", where)
    dtype = choice(raw.get("dtype", "float64"), "dtype", DTYPES, where)
    if "circuit" in raw:
        return _parse_circuit(raw, title, description, dtype, where)

    if "loss" not in raw:
        raise where.err("loss", f"missing key; expected one of {', '.join(LOSSES)}")
    loss = choice(raw["loss"], "loss", LOSSES, where)
    if "lr" not in raw:
        raise where.err("lr", "missing key; expected the learning rate, a number such as 0.5")
    lr = number(raw["lr"], "lr", where)
    if lr < 0:
        raise where.err("lr", f"expected a learning rate >= 0, got {lr:g}")
    steps = integer(raw.get("steps", 1), "steps", where, minimum=1)
    train_biases = boolean(raw.get("train_biases", True), "train_biases", where)
    default_reduction = "sum" if loss == "mse_half" else "mean"
    reduction = choice(raw.get("reduction", default_reduction), "reduction", REDUCTIONS, where)
    seed = integer(raw.get("seed", 0), "seed", where, minimum=0)
    data = _data_table(raw, where)

    if "layers" in raw and "sizes" in raw:
        raise where.err("sizes", "give either [[layers]] or sizes (with seed), not both")
    if "layers" in raw:
        for key in ("activation", "activations"):
            if key in raw:
                raise where.err(key, "only used with sizes = [...]; put activations in [[layers]]")
        tables = raw["layers"]
        if not isinstance(tables, list) or not tables:
            raise where.err("layers", "expected one or more [[layers]] tables")
        first = tables[0].get("type", "linear") if isinstance(tables[0], dict) else None
        inputs = _parse_inputs(data["inputs"], first, where)
    elif "sizes" in raw:
        tables = _sizes_tables(raw, where)
        inputs = _parse_inputs(data["inputs"], "linear", where)
        if inputs.shape[1] != raw["sizes"][0]:
            raise where.err(
                "data.inputs",
                f"expected {raw['sizes'][0]} values per sample (sizes[0] = {raw['sizes'][0]}), "
                f"got {inputs.shape[1]}",
            )
    else:
        raise where.err("layers", "missing [[layers]] tables (or sizes = [...] with seed)")

    m = inputs.shape[0]
    batch_size = None
    if "batch_size" in raw:
        batch_size = integer(raw["batch_size"], "batch_size", where, minimum=1)
        if batch_size > m:
            raise where.err(
                "batch_size", f"expected at most the number of samples ({m}), got {batch_size}"
            )
    net = parse_layers(tables, tuple(inputs.shape[1:]), batch_size or m, where)
    last_act = net.last_activation
    if loss == "ce" and last_act != "softmax":
        raise where.err(
            "loss",
            "'ce' is softmax + cross entropy: expected activation = \"softmax\" on the last "
            f"layer, got {last_act!r}",
        )
    if loss == "bce" and last_act != "sigmoid":
        raise where.err(
            "loss",
            f"'bce' needs outputs in (0, 1): expected activation = \"sigmoid\" on the last layer, "
            f"got {last_act!r}",
        )
    targets, as_indices = _parse_targets(data["targets"], m, net.out_shape, loss, where)
    if net.dropout_seed is not None:
        if "seed" in raw and seed != net.dropout_seed:
            raise where.err("seed", "the dropout table gives another seed; give one of them")
        seed = net.dropout_seed
    spec = NetworkSpec(
        title=title,
        loss=loss,
        lr=lr,
        net=net,
        inputs=inputs,
        targets=targets,
        steps=steps,
        train_biases=train_biases,
        reduction=reduction,
        batch_size=batch_size,
        dtype=dtype,
        description=description,
        target_indices=as_indices,
        seed=seed,
        source=source,
    )
    check_fits(spec, where)
    return spec


# ----------------------------------------------------------------------------------------------
# memory: refuse what cannot fit before anything is allocated
# ----------------------------------------------------------------------------------------------

#: bytes an explanation holds per recorded number: the float64 copies of the trace plus the
#: blocks, formatted strings and rendered output made from them. Measured with tracemalloc on
#: 40 steps of each example rendered as text, HTML and JSON, the estimate below is 1.9 to 3
#: times the peak: it errs on the side of refusing.
BYTES_PER_NUMBER = 4096


def estimate_bytes(spec: NetworkSpec) -> int:
    """The memory an explanation of ``spec`` needs, estimated from the numbers it records."""
    m = spec.batch_size or spec.inputs.shape[0]
    params = sum(int(v.size) for p in spec.net.params.values() for v in p.values())
    units = int(np.prod(spec.inputs.shape[1:])) + params  # at least one unit per parameter
    # per layer and sample: net, out, delta, dE/do, do/dnet, input, input grad; per parameter:
    # before, gradient, after (and the finite differences of --verify)
    per_step = 7 * m * units + 5 * params
    return int(spec.steps) * per_step * BYTES_PER_NUMBER


def check_fits(spec: NetworkSpec, where: Where) -> None:
    """:class:`SpecError` naming ``steps`` when the explanation would not fit in memory."""
    need = min(estimate_bytes(spec), 2**100)  # beyond that, the figure is only "huge"
    have = available_memory()
    limit = have if have is not None else 8 * 2**30
    if need > limit:
        per_step = need // spec.steps
        fit = max(limit // max(per_step, 1), 0)
        raise where.err(
            "steps",
            f"{spec.steps} steps would need about {describe_bytes(need)} of memory "
            f"({describe_bytes(per_step)} per step), but "
            + (f"{describe_bytes(have)} is available" if have is not None else "8 GiB is the limit")
            + f"; explain at most {fit} steps",
        )


# ----------------------------------------------------------------------------------------------
# parts of the schema
# ----------------------------------------------------------------------------------------------


def _data_table(raw: dict[str, Any], where: Where) -> dict[str, Any]:
    if "data" not in raw:
        raise where.err("data", "missing table [data]; expected inputs = [...] and targets = [...]")
    data = table(raw["data"], "data", ("inputs", "targets"), where)
    for key in ("inputs", "targets"):
        if key not in data:
            raise where.err(f"data.{key}", "missing key; expected one row per sample")
    return data


def _sizes_tables(raw: dict[str, Any], where: Where) -> list[dict[str, Any]]:
    """``sizes = [...]`` with ``seed``: linear layer tables with drawn weights."""
    sizes = raw["sizes"]
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 4096 for s in sizes)
    ):
        raise where.err(
            "sizes",
            "expected a list of at least 2 positive integers (at most 4096), e.g. [2, 2, 2]",
        )
    if "seed" not in raw:
        raise where.err("seed", "missing key; sizes = [...] needs seed = <int> to draw the weights")
    seed = integer(raw["seed"], "seed", where, minimum=0)
    n_layers = len(sizes) - 1
    if "activations" in raw and "activation" in raw:
        raise where.err("activations", "give either activation or activations, not both")
    if "activations" in raw:
        acts = raw["activations"]
        if not isinstance(acts, list) or len(acts) != n_layers:
            raise where.err(
                "activations", f"expected a list of {n_layers} activations (one per layer)"
            )
        acts = [choice(a, f"activations[{i}]", ACTIVATIONS, where) for i, a in enumerate(acts)]
    else:
        acts = [choice(raw.get("activation", "sigmoid"), "activation", ACTIVATIONS, where)]
        acts = acts * n_layers
    rng = np.random.default_rng(seed)
    tables = []
    for fan_in, fan_out, act in zip(sizes[:-1], sizes[1:], acts):
        bound = 1.0 / math.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        b = rng.uniform(-bound, bound, size=(fan_out,))
        tables.append({"weights": w.tolist(), "biases": b.tolist(), "activation": act})
    return tables


def _parse_inputs(v: Any, first_type: str | None, where: Where) -> np.ndarray:
    if first_type in ("conv2d", "maxpool2d", "avgpool2d"):
        arr = array(
            v, "data.inputs", where, (2, 3, 4), "an H x W image, a list of them or N x C x H x W"
        )
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr[:, None]
        return arr
    arr = array(v, "data.inputs", where, (1, 2), "a matrix with one row per sample")
    return arr[None] if arr.ndim == 1 else arr


def _parse_targets(
    v: Any, m: int, out_shape: tuple[int, ...], loss: str, where: Where
) -> tuple[np.ndarray, bool]:
    """Targets shaped (m, *out_shape); ce class indices become one-hot rows."""
    key = "data.targets"
    k = int(np.prod(out_shape))
    arr = array(v, key, where, (1, 2, 3, 4), "one row per sample")
    if loss == "ce":
        flat_ints = arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1 and k > 1)
        if flat_ints and arr.size == m and np.all(arr == np.round(arr)):
            idx = arr.reshape(-1)
            if idx.min() < 0 or idx.max() >= k:
                raise where.err(
                    key, f"class indices must lie in 0..{k - 1}, got {idx.astype(int).tolist()}"
                )
            return np.eye(k)[idx.astype(np.int64)], True
    if arr.ndim == 1 and m == 1 and arr.size == k:
        arr = arr[None]
    elif arr.ndim == 1 and k == 1 and arr.size == m:
        arr = arr[:, None]
    if arr.shape[0] != m:
        raise where.err(
            key, f"expected one row per sample ({m} rows, like data.inputs), got {arr.shape[0]}"
        )
    if arr[0].size != k:
        raise where.err(
            key,
            f"expected {k} values per sample (the network outputs {shape_str(out_shape)}), "
            f"got {arr[0].size}",
        )
    arr = arr.reshape((m,) + out_shape)
    if loss == "bce" and (arr.min() < 0 or arr.max() > 1):
        raise where.err(key, "binary cross entropy needs targets in [0, 1]")
    if loss == "ce" and (arr.min() < 0 or not np.allclose(arr.sum(axis=-1), 1.0)):
        raise where.err(
            key, "'ce' expects one-hot rows (or class probabilities summing to 1) or class indices"
        )
    return arr, False


def _parse_circuit(
    raw: dict[str, Any], title: str, description: str, dtype: str, where: Where
) -> CircuitSpec:
    for key in ("layers", "sizes", "data", "loss"):
        if key in raw:
            raise where.err(key, "a [circuit] spec has no layers, data or loss; remove this key")
    c = table(raw["circuit"], "circuit", ("expression", "values"), where)
    if "expression" not in c:
        raise where.err("circuit.expression", 'missing key; expected e.g. "q = x + y; f = q * z"')
    expr = string(c["expression"], "circuit.expression", where)
    values = c.get("values", {})
    if not isinstance(values, dict):
        raise where.err("circuit.values", "expected a table of numbers, e.g. {x = -2, y = 5}")
    vals = {name: number(v, f"circuit.values.{name}", where) for name, v in values.items()}
    return CircuitSpec(
        title=title, expression=expr, values=vals, description=description, dtype=dtype
    )
