"""dp.save / dp.load: safetensors checkpoints of nested state dicts, exact round trips, atomic
writes, and clear errors for truncated, corrupt or foreign files."""

import io
import json
import math
import os
import pickle

import numpy as np
import pytest
from io_helpers import edit_header
from oracle import needs_torch, torch
from safetensors.numpy import load_file, save_file

import deltaprop as dp
from deltaprop import nn, optim
from deltaprop.io import CheckpointError


def _model():
    dp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def _trained():
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    for _ in range(2):
        opt.zero_grad()
        model(dp.randn(4, 1, 4, 4)).pow(2).mean().backward()
        opt.step()
    return model, opt


def _assert_same(a, b, path="root"):
    """Deep equality of nested structures, tensors compared by dtype, shape and values."""
    if isinstance(a, dp.Tensor):
        assert isinstance(b, dp.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a.data, b.data, err_msg=path)
        assert a.requires_grad == b.requires_grad, path
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert type(a) is type(b) and a == b, path


def test_model_state_dict_round_trip(tmp_path):
    model, _ = _trained()
    path = tmp_path / "model.safetensors"
    dp.save(model.state_dict(), path)
    loaded = dp.load(path)
    _assert_same(dict(model.state_dict()), loaded)
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    fresh.load_state_dict(loaded)
    x = dp.randn(2, 1, 4, 4)
    np.testing.assert_array_equal(fresh.eval()(x).data, model.eval()(x).data)
    # the file is a standard safetensors file with dotted keys
    arrays = load_file(str(path))
    assert sorted(arrays) == sorted(model.state_dict())
    assert arrays["1.num_batches_tracked"].dtype == np.int64


def test_training_checkpoint_round_trip(tmp_path):
    model, opt = _trained()
    sched = optim.lr_scheduler.StepLR(opt, 2)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": 3,
        "rng": dp.get_rng_state(),
        "history": [{"loss": 0.5, "acc": None}, {"loss": float("inf"), "tag": "best"}],
        "flags": (True, False, "x"),
        "nan": float("nan"),
        "empty": {},
        "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float32(1.5),
    }
    path = tmp_path / "ckpt.safetensors"
    dp.save(ckpt, path)
    back = dp.load(path)
    expected = dict(ckpt)
    expected["model"] = dict(ckpt["model"])
    _assert_same(expected, back)
    assert list(back["optimizer"]["state"]) == [0, 1, 2, 3, 4, 5]  # int keys come back as ints
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(back["scalar"], np.float32)
    # the RNG state with its 128-bit integers restores the generator exactly
    dp.set_rng_state(back["rng"])
    a = dp.rand(3)
    dp.set_rng_state(ckpt["rng"])
    np.testing.assert_array_equal(a.data, dp.rand(3).data)


def test_optimizer_round_trip_through_file_continues_identically(tmp_path):
    model, opt = _trained()
    dp.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "c.st")
    model2 = _model()
    opt2 = optim.Adam(model2.parameters(), lr=0.5)
    ckpt = dp.load(tmp_path / "c.st")
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    x = dp.randn(4, 1, 4, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_]
)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4)])
def test_tensor_dtypes_and_shapes_round_trip(tmp_path, dtype, shape):
    arr = (np.arange(math.prod(shape)).reshape(shape) % 3).astype(dtype)
    obj = {"t": dp.tensor(arr, dtype=dtype), "nested": [dp.tensor(arr, dtype=dtype)]}
    dp.save(obj, tmp_path / "t.st")
    _assert_same(obj, dp.load(tmp_path / "t.st"))


def test_requires_grad_non_contiguous_and_colliding_names(tmp_path):
    p = nn.Parameter(dp.ones(2, 3))
    view = dp.from_numpy(np.arange(12.0).reshape(3, 4)[:, ::2])
    obj = {
        "p": p.detach().requires_grad_(),
        "view": view,
        "a.b": dp.ones(1),
        "a": {"b": dp.zeros(1)},
    }
    dp.save(obj, tmp_path / "x.st")
    back = dp.load(tmp_path / "x.st")
    assert back["p"].requires_grad
    np.testing.assert_array_equal(back["view"].data, view.data)
    assert back["a.b"].tolist() == [1.0] and back["a"]["b"].tolist() == [0.0]
    assert back["view"].data.flags.writeable
    big_endian = np.arange(3, dtype=">f8")
    dp.save({"b": big_endian}, tmp_path / "be.st")
    np.testing.assert_array_equal(dp.load(tmp_path / "be.st")["b"], big_endian)


def test_top_level_tensor_list_and_file_objects(tmp_path):
    dp.save(dp.arange(3), tmp_path / "t.st")
    assert dp.load(tmp_path / "t.st").tolist() == [0, 1, 2]
    buf = io.BytesIO()
    dp.save([1, {"x": dp.ones(2)}], buf)
    buf.seek(0)
    back = dp.load(buf)
    assert back[0] == 1 and back[1]["x"].tolist() == [1.0, 1.0]
    dp.save({"a": 1}, str(tmp_path / "s.st"))  # str paths too
    assert dp.load(str(tmp_path / "s.st")) == {"a": 1}


def test_metadata_header_holds_format_versions_and_json(tmp_path):
    dp.save({"model": {"w": dp.ones(1)}, "epoch": 2}, tmp_path / "m.st")
    raw = (tmp_path / "m.st").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    assert meta["format"] == "deltaprop" and meta["format_version"] == "1"
    assert meta["deltaprop_version"] == dp.__version__
    assert json.loads(meta["structure"])["epoch"] == 2
    assert "model.w" in header


def test_plain_safetensors_file_loads_as_flat_dict(tmp_path):
    save_file({"layer.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "w.safetensors"))
    back = dp.load(tmp_path / "w.safetensors")
    assert list(back) == ["layer.weight"] and isinstance(back["layer.weight"], dp.Tensor)


@needs_torch
def test_loads_safetensors_written_from_torch_weights(tmp_path):
    ref = torch.nn.Linear(3, 2)
    save_file({k: v.detach().numpy() for k, v in ref.state_dict().items()}, str(tmp_path / "t.st"))
    lin = nn.Linear(3, 2)
    lin.load_state_dict(dp.load(tmp_path / "t.st"))
    np.testing.assert_array_equal(lin.weight.data, ref.weight.detach().numpy())


def test_unsupported_values_raise_type_error_naming_the_path(tmp_path):
    with pytest.raises(TypeError, match=r"type object at 'opt.hook'"):
        dp.save({"opt": {"hook": object()}}, tmp_path / "bad.st")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        dp.save({"x": {(1, 2): 3}}, tmp_path / "bad.st")
    with pytest.raises(TypeError, match="function"):
        dp.save({"f": lambda: 0}, tmp_path / "bad.st")
    assert not (tmp_path / "bad.st").exists()


def test_overwrite_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt.st"
    dp.save({"v": dp.ones(3)}, path)
    dp.save({"v": dp.zeros(3)}, path)
    assert dp.load(path)["v"].tolist() == [0.0, 0.0, 0.0]
    assert os.listdir(tmp_path) == ["ckpt.st"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.st"
    dp.save({"v": dp.ones(3)}, path)

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        dp.save({"v": dp.zeros(3)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.st"]
    assert dp.load(path)["v"].tolist() == [1.0, 1.0, 1.0]


def test_failed_serialisation_leaves_no_file(tmp_path, monkeypatch):
    import safetensors.numpy

    def broken_save_file(*args, **kwargs):
        with open(args[1], "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", broken_save_file)
    with pytest.raises(KeyboardInterrupt):
        dp.save({"v": dp.ones(3)}, tmp_path / "new.st")
    assert os.listdir(tmp_path) == []


def _valid_bytes():
    buf = io.BytesIO()
    dp.save({"model": {"w": dp.ones(64)}, "epoch": 1}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("cut", [0, 4, 8, 20, -100, -1])
def test_truncated_file_raises_checkpoint_error_naming_the_file(tmp_path, cut):
    data = _valid_bytes()
    path = tmp_path / "trunc.st"
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(CheckpointError) as info:
        dp.load(path)
    assert "trunc.st" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "too short"),
        (b"hello, this is text and not a checkpoint at all", "not a valid safetensors"),
        (pickle.dumps({"a": 1}), "not a valid safetensors"),
        (b"PK\x03\x04" + b"\x00" * 100, "zip/pickle"),
        ((10).to_bytes(8, "little") + b"{not json}", "unreadable JSON header"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
    ],
)
def test_foreign_or_corrupt_files_raise_checkpoint_error(tmp_path, content, match):
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        dp.load(path)
    assert "foreign.bin" in str(info.value)


@needs_torch
def test_torch_save_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="model.pt"):
        dp.load(path)


def _rewrite_metadata(tmp_path, **changes):
    buf = io.BytesIO()
    dp.save({"w": dp.ones(2)}, buf)
    path = tmp_path / "edited.st"
    path.write_bytes(
        edit_header(buf.getvalue(), lambda header: header["__metadata__"].update(changes))
    )
    return path


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"format_version": "99"}, "format 99"),
        ({"format_version": "x"}, "bad format_version"),
        ({"structure": "{oops"}, "unreadable structure"),
        ({"structure": json.dumps({"w": {"__tensor__": "missing"}})}, "does not contain"),
    ],
)
def test_corrupt_metadata_raises_checkpoint_error(tmp_path, changes, match):
    path = _rewrite_metadata(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=match):
        dp.load(path)
    assert dp.load(_rewrite_metadata(tmp_path))["w"].tolist() == [1.0, 1.0]


def test_corrupted_data_offsets_raise_checkpoint_error(tmp_path):
    def edit(header):
        header["model.w"]["data_offsets"] = [0, 10**6]

    path = tmp_path / "off.st"
    path.write_bytes(edit_header(_valid_bytes(), edit))
    with pytest.raises(CheckpointError, match="truncated"):
        dp.load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dp.load(tmp_path / "nope.st")


# ----------------------------------------------------------------------------------------------
# files written by earlier versions, and by other tools
# ----------------------------------------------------------------------------------------------

LEGACY = os.path.join(os.path.dirname(__file__), "data", "legacy_v1")


def test_format_1_file_still_loads():
    ckpt = dp.load(os.path.join(LEGACY, "io_v1.safetensors"))
    assert ckpt["epoch"] == 3
    assert sorted(ckpt["model"]) == ["bias", "weight"]
    assert ckpt["model"]["weight"].shape == (2, 3)
    assert list(ckpt["optimizer"]["state"]) == [0, 1]
    extra = ckpt["extra"]
    assert extra["t"] == (1, 2.5) and math.isnan(extra["nan"]) and extra[7] == "int key"
    assert extra["arr"].dtype == np.int16 and extra["arr"].tolist() == [0, 1, 2]
    assert isinstance(extra["scalar"], np.float32) and extra["scalar"] == 1.5
    model = nn.Linear(3, 2)
    model.load_state_dict(ckpt["model"])
    optim.Adam(model.parameters(), lr=0.01).load_state_dict(ckpt["optimizer"])
    dp.set_rng_state(ckpt["rng"])


def test_format_1_training_checkpoint_loads_as_its_state():
    """Training checkpoints of format 1 kept their structure in a ``__meta__`` array."""
    state = dp.load(os.path.join(LEGACY, "run_mid", "checkpoints", "last.safetensors"))
    assert state["epoch"] == 1 and state["partial"]["batch"] == 4
    assert sorted(state["model"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert isinstance(state["model"]["0.weight"], dp.Tensor)
    assert state["model"]["0.weight"].shape == (4, 2)
    assert list(state["optimizer"]["state"]) == [0, 1, 2, 3]
    assert state["history"][0]["test_acc"] == 0.625


def _safetensors_bytes(entries, metadata=None):
    """A safetensors file built by hand: entries is [(name, dtype, shape, raw bytes)]."""
    header, body = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(body), len(body) + len(raw)],
        }
        body += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


def test_foreign_float16_and_bfloat16_are_upcast_to_float32(tmp_path):
    values = np.array([1.5, -2.0, 0.099975586], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(
        _safetensors_bytes(
            [
                ("h", "F16", [3], values.astype("<f2").tobytes()),
                ("b", "BF16", [3], bf16),
                ("i", "I64", [1], np.array([7], "<i8").tobytes()),
                ("m", "BOOL", [2], b"\x01\x00"),
            ]
        )
    )
    loaded = dp.load(path)
    assert loaded["h"].dtype == np.float32 and loaded["b"].dtype == np.float32
    np.testing.assert_allclose(loaded["h"].data, values, rtol=1e-3)
    np.testing.assert_allclose(loaded["b"].data, values, rtol=1e-2)
    assert loaded["b"].data[:2].tolist() == [1.5, -2.0]  # exact in bfloat16
    assert loaded["i"].dtype == np.int64 and loaded["m"].tolist() == [True, False]


@needs_torch
def test_pytorch_safetensors_state_dict_loads(tmp_path):
    from safetensors.torch import save_file as torch_save_file

    tmodel = torch.nn.Linear(3, 2)
    state = {k: v.detach() for k, v in tmodel.state_dict().items()}
    state_bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    for sd, rtol in ((state, 0), (state_bf16, 1e-2)):
        torch_save_file(sd, str(tmp_path / "t.safetensors"))
        model = nn.Linear(3, 2)
        model.load_state_dict(dp.load(tmp_path / "t.safetensors"))
        np.testing.assert_allclose(model.weight.data, state["weight"].numpy(), rtol=rtol)


def test_saved_file_has_the_permissions_of_a_normal_file(tmp_path):
    dp.save({"w": dp.ones(1)}, tmp_path / "p.st")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "p.st").st_mode & 0o777 == 0o666 & ~mask
