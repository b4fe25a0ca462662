"""Weights to and from PyTorch through safetensors files, for the MLP and LeNet-5 presets.

PyTorch -> deltaprop: ``torch_model.state_dict()`` -> ``safetensors.torch.save_file`` (float32,
float16, bfloat16) -> ``dp.load`` -> ``load_state_dict``. deltaprop -> PyTorch: ``dp.save`` ->
``safetensors.torch.load_file`` -> ``torch_model.load_state_dict``. Both ways the two models then
give the same outputs within 1e-6 relative. The PyTorch model is built from the same layer list
(deltaprop's layer types and arguments are PyTorch's), so the state_dict keys match.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch interop tests need torch")
safetensors_torch = pytest.importorskip(
    "safetensors.torch", reason="PyTorch interop tests need safetensors with torch"
)

import deltaprop as dp  # noqa: E402
from deltaprop.errors import CheckpointError  # noqa: E402
from deltaprop.models import build_model, preset_layers  # noqa: E402

CASES = [
    ("mlp", (1, 8, 8), {}),
    ("mlp", (1, 28, 28), {"activation": "gelu", "dropout": 0.2}),
    ("lenet5", (1, 8, 8), {}),
    ("lenet5", (1, 28, 28), {"activation": "tanh", "dropout": 0.2}),
]
IDS = [f"{name}-{'x'.join(map(str, shape[1:]))}" for name, shape, _ in CASES]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_model(layers):
    """The PyTorch twin of a resolved deltaprop layer list, in eval mode."""
    modules = []
    for layer in layers:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in layer.items()}
        modules.append(getattr(torch.nn, kwargs.pop("type"))(**kwargs))
    return torch.nn.Sequential(*modules).eval()


def models(name, shape, options):
    dp.manual_seed(0)
    torch.manual_seed(1)  # different initial weights: only the transfer can make them agree
    model, resolved = build_model(preset_layers(name, shape, 10, **options), shape, 10)
    return model.eval(), torch_model(resolved)


def outputs(dp_model, t_model, shape):
    x = np.random.default_rng(2).standard_normal((5, *shape)).astype(np.float32)
    with dp.no_grad():
        ours = dp_model(dp.tensor(x)).data
    with torch.no_grad():
        theirs = t_model(torch.from_numpy(x)).numpy()
    return ours, theirs


def assert_same(ours, theirs):
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_pytorch_weights_into_deltaprop(tmp_path, name, shape, options, dtype):
    model, t_model = models(name, shape, options)
    state = {k: v.to(DTYPES[dtype]).contiguous() for k, v in t_model.state_dict().items()
             if v.is_floating_point()}  # fmt: skip
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(state, str(path))

    loaded = dp.load(path)
    assert set(loaded) == set(state)
    assert all(t.dtype == np.float32 for t in loaded.values())  # float16/bfloat16 upcast
    result = model.load_state_dict(loaded, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {k for k in model.state_dict() if "num_batches" in k}

    # the PyTorch reference runs on exactly the stored (rounded) weights, in float32
    t_model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    assert_same(*outputs(model, t_model, shape))


@pytest.mark.parametrize("name,shape,options", CASES, ids=IDS)
def test_deltaprop_weights_into_pytorch(tmp_path, name, shape, options):
    model, t_model = models(name, shape, options)
    path = tmp_path / "deltaprop.safetensors"
    dp.save(model.state_dict(), path)

    state = safetensors_torch.load_file(str(path))
    assert set(state) == set(model.state_dict())
    t_model.load_state_dict(state)  # strict: every key and shape matches
    assert_same(*outputs(model, t_model, shape))


def test_batchnorm_statistics_round_trip(tmp_path):
    """Running statistics travel too (buffers are part of both state dicts)."""
    layers = [{"type": "Flatten"}, {"type": "Linear", "out_features": 6},
              {"type": "BatchNorm1d"}, {"type": "ReLU"}, {"type": "Linear"}]  # fmt: skip
    dp.manual_seed(0)
    model, resolved = build_model(layers, (2, 3), 4)
    model.train()
    for _ in range(3):
        model(dp.randn(8, 2, 3) * 3 + 1)
    model.eval()
    dp.save(model.state_dict(), tmp_path / "bn.safetensors")
    t_model = torch_model(resolved)
    t_model.load_state_dict(safetensors_torch.load_file(str(tmp_path / "bn.safetensors")))
    assert_same(*outputs(model, t_model, (2, 3)))

    back, _ = build_model(layers, (2, 3), 4)
    safetensors_torch.save_file(t_model.state_dict(), str(tmp_path / "back.safetensors"))
    back.load_state_dict(dp.load(tmp_path / "back.safetensors"))
    assert_same(*outputs(back.eval(), t_model, (2, 3)))


@pytest.mark.parametrize("suffix,zipped", [(".pt", True), (".bin", False)])
def test_pickled_pytorch_files_are_refused_with_the_conversion(tmp_path, suffix, zipped):
    path = tmp_path / f"model{suffix}"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError, match=r"pickle.*safetensors\.torch\.save_file") as info:
        dp.load(path)
    assert str(path) in str(info.value)
