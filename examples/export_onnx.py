"""Train LeNet-5 on the bundled digits, export it to ONNX, run it in ONNX Runtime, and move its
weights into PyTorch.

    pip install -e ".[onnx]"          # onnx and onnxruntime (PyTorch is optional)
    python examples/export_onnx.py [OUT_DIR]

The same as ``deltaprop train --model lenet5 --out RUN`` followed by ``deltaprop export --run
RUN``; then the exported file classifies the test digits in ONNX Runtime, and (if PyTorch is
installed) the checkpoint's weights are loaded into the equivalent ``torch.nn.Sequential``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

import deltaprop as dp
from deltaprop.datasets import load_digits
from deltaprop.onnx.commands import export_run
from deltaprop.training import TrainSettings, train
from deltaprop.training.commands import evaluate_run
from deltaprop.training.predict import load_run


def main(out_dir: Path) -> None:
    run = out_dir / "lenet-digits"
    settings = TrainSettings(dataset="digits", model="lenet5", epochs=15, seed=0)
    train(settings, run, progress=False, plots=False)
    info = export_run(run, run / "lenet.onnx")  # `deltaprop export --run RUN --out ...`
    print(f"exported {run / 'lenet.onnx'}: input {info['input'][2]}, output {info['output'][2]}")

    digits = load_digits()
    session = ort.InferenceSession(str(run / "lenet.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": digits.X_test})  # raw pixels: normalised in-graph
    onnx_accuracy = float((logits.argmax(axis=1) == digits.y_test).mean())
    print(f"ONNX Runtime test accuracy {onnx_accuracy:.2%}, "
          f"deltaprop evaluate {evaluate_run(run)['accuracy']:.2%}")  # fmt: skip

    try:
        import torch
        from safetensors.torch import load_file
    except ImportError:
        print("PyTorch is not installed: skipping the weight transfer")
        return
    loaded = load_run(run)
    dp.save(loaded.model.state_dict(), run / "lenet.safetensors")
    layers = []
    for layer in loaded.config["layers"]:  # deltaprop's layer types and arguments are PyTorch's
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in layer.items()}
        layers.append(getattr(torch.nn, kwargs.pop("type"))(**kwargs))
    torch_model = torch.nn.Sequential(*layers).eval()
    torch_model.load_state_dict(load_file(str(run / "lenet.safetensors")))
    x = loaded.normalize(digits.X_test)
    with torch.no_grad():
        theirs = torch_model(torch.from_numpy(x)).numpy()
    with dp.no_grad():
        ours = loaded.model(dp.tensor(x)).numpy()
    print(f"PyTorch with the same weights: largest difference {np.abs(ours - theirs).max():.2e}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
