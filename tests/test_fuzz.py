"""Property-based fuzzing of the readers of user files: only their documented errors escape.

- ``dp.load`` (checkpoints): random bytes, and valid files with bytes flipped, cut or inserted
  and with their JSON header edited: :class:`CheckpointError`, or a successful load;
- model TOML files (``load_model_file`` + ``resolve_layers``): random bytes, random TOML
  documents and random layer tables: :class:`ModelError`;
- IDX files (``read_idx``, the MNIST loader's reader): random bytes and mutated valid files:
  :class:`DatasetError`.

Anything else (TypeError, RecursionError, MemoryError, ...) is a bug and fails the test.
"""

from __future__ import annotations

import gzip
import io
import json
import struct

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from io_helpers import edit_header  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop.datasets.idx import read_idx  # noqa: E402
from deltaprop.errors import CheckpointError, DatasetError, ModelError  # noqa: E402
from deltaprop.models import load_model_file, resolve_layers  # noqa: E402

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


def _valid_checkpoint() -> bytes:
    from deltaprop import nn, optim

    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(dp.randn(5, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": dp.get_rng_state(),
        "misc": {"t": (1, 2.5), 7: [None, True, float("nan")], "a": np.arange(3, dtype=np.int16)},
        "scalar": np.float32(1.5),
    }
    dp.save(state, buf)
    return buf.getvalue()


VALID = _valid_checkpoint()


def _load_bytes(data: bytes) -> None:
    try:
        dp.load(io.BytesIO(data))
    except CheckpointError:
        pass


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_checkpoint_error(data):
    _load_bytes(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_header_after_a_plausible_length_raises_only_checkpoint_error(body):
    _load_bytes(len(body).to_bytes(8, "little") + body)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_flipped_bytes_raise_only_checkpoint_error(changes):
    data = bytearray(VALID)
    for position, value in changes:
        data[position] = value
    _load_bytes(bytes(data))


@FUZZ
@given(st.integers(0, len(VALID)), st.integers(0, len(VALID)), st.binary(max_size=40))
def test_cut_and_inserted_bytes_raise_only_checkpoint_error(start, stop, insert):
    start, stop = sorted((start, stop))
    _load_bytes(VALID[:start] + insert + VALID[stop:])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "__tensor__",
                    "__ndarray__",
                    "__tuple__",
                    "__dict__",
                    "__scalar__",
                    "__float__",
                    "dtype",
                    "requires_grad",
                    "model",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),  # fmt: skip
    max_leaves=20,
)


@FUZZ
@given(JSON_VALUES)
def test_random_structure_raises_only_checkpoint_error(structure):
    def edit(header):
        header["__metadata__"]["structure"] = json.dumps(structure)
        header["__metadata__"].pop("sha256")

    _load_bytes(edit_header(VALID, edit))


@FUZZ
@given(
    st.sampled_from(["model.0.weight", "model.0.bias", "misc.a"]),
    st.sampled_from(["dtype", "shape", "data_offsets"]),
    JSON_VALUES,
)
def test_random_tensor_entries_raise_only_checkpoint_error(name, field, value):
    def edit(header):
        header[name][field] = value

    _load_bytes(edit_header(VALID, edit))


@FUZZ
@given(st.sampled_from(["format", "format_version", "structure", "sha256"]), JSON_VALUES)
def test_random_metadata_raises_only_checkpoint_error(key, value):
    def edit(header):
        header["__metadata__"][key] = value

    _load_bytes(edit_header(VALID, edit))


# ----------------------------------------------------------------------------------------------
# model TOML files
# ----------------------------------------------------------------------------------------------


def _model_file(tmp_path, content: bytes) -> None:
    """Read, resolve and, when it is small, build and run the model on a batch: a model file
    that passes the checks must train."""
    from deltaprop.models import build_sequential
    from deltaprop.training.factories import estimate_memory

    path = tmp_path / "model.toml"
    path.write_bytes(content)
    try:
        _, layers = load_model_file(path)
        resolved, _ = resolve_layers(layers, (1, 8, 8), 10)
    except ModelError:
        return
    if estimate_memory(resolved, (1, 8, 8), 2, "adam")[0] < 2**26:
        model = build_sequential(resolved)
        model(dp.randn(2, 1, 8, 8)).sum().backward()


@FUZZ
@given(st.binary(max_size=500))
def test_random_bytes_as_model_file_raise_only_model_error(tmp_path, data):
    _model_file(tmp_path, data)


TOML_SCALARS = (
    st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.text(max_size=6)
    | st.lists(st.integers(-3, 40), max_size=3)
)
#: The arguments each layer type takes (as the model files document them).
LAYER_ARGS = {
    "Linear": ("in_features", "out_features", "bias"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "bias"),
    "MaxPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Flatten": (),
    "Dropout": ("p",),
    "BatchNorm1d": ("num_features", "eps", "momentum"),
    "BatchNorm2d": ("num_features", "eps", "momentum"),
    "LayerNorm": ("normalized_shape", "eps"),
    "ReLU": (),
    "LeakyReLU": ("negative_slope",),
    "GELU": ("approximate",),
    "Softmax": ("dim",),
}  # fmt: skip
#: Mostly plausible values (small ints and pairs, probabilities), some of every other kind.
ARG_VALUE = st.one_of(
    st.integers(-1, 6),
    st.tuples(st.integers(-1, 5), st.integers(-1, 5)).map(list),
    st.sampled_from([0.0, 0.1, 0.5, 0.99, 1.0, 1e-5, "none", "tanh"]),
    TOML_SCALARS,
)
LAYER = st.sampled_from(sorted(LAYER_ARGS)).flatmap(
    lambda kind: st.fixed_dictionaries(
        {"type": st.just(kind)}, optional={arg: ARG_VALUE for arg in LAYER_ARGS[kind]}
    )
)
#: Layer lists, often ending as a classifier does (Flatten, Linear).
LAYERS = st.tuples(st.lists(LAYER, max_size=5), st.booleans()).map(
    lambda pair: pair[0] + ([{"type": "Flatten"}, {"type": "Linear"}] if pair[1] else [])
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


@FUZZ
@given(LAYERS, st.one_of(st.none(), TOML_SCALARS))
def test_random_layer_tables_raise_only_model_error(tmp_path, layers, name):
    lines = [] if name is None else [f"name = {_toml_value(name)}"]
    for layer in layers:
        lines.append("[[layers]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in layer.items())
    _model_file(tmp_path, "\n".join(lines).encode())


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------


def _idx(magic: int, dims: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + data


VALID_IDX = _idx(2051, (3, 4, 5), bytes(range(60)))


def _read(tmp_path, content: bytes, magic) -> None:
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(content)
    try:
        read_idx(path, magic)
    except DatasetError:
        pass


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([None, 2049, 2051]))
def test_random_bytes_as_idx_raise_only_dataset_error(tmp_path, data, magic):
    _read(tmp_path, data, magic)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID_IDX) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    st.booleans(),
)
def test_mutated_idx_raise_only_dataset_error(tmp_path, changes, gzipped):
    data = bytearray(VALID_IDX)
    for position, value in changes:
        data[position] = value
    content = gzip.compress(bytes(data)) if gzipped else bytes(data)
    _read(tmp_path, content, 2051)


@FUZZ
@given(st.binary(min_size=2, max_size=200))
def test_damaged_gzip_idx_raises_only_dataset_error(tmp_path, tail):
    _read(tmp_path, b"\x1f\x8b" + tail, 2051)


@FUZZ
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), st.integers(0, 0x0E))
def test_idx_headers_claiming_huge_shapes_raise_only_dataset_error(tmp_path, dims, type_code):
    magic = (type_code << 8) | len(dims)
    _read(tmp_path, _idx(magic, tuple(dims), b"\x00" * 32), None)
