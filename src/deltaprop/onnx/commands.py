"""The ``deltaprop export`` subcommand: a training run's model as an ONNX file.

::

    deltaprop export --run runs/lenet --out lenet.onnx            # the last checkpoint
    deltaprop export --run runs/lenet --checkpoint best --out lenet.onnx

The model is rebuilt from the run's ``config.json`` and the checkpoint's weights, traced on an
example batch of the run's input shape and written with a dynamic batch axis. By default the
graph starts with the run's input normalisation (``(x - mean) / std`` with the training set's
statistics), so the file takes raw samples, exactly what ``deltaprop predict`` takes, and returns
the class scores (logits); ``--no-normalize`` leaves it out. The class names and the
normalisation are stored in the file's metadata (``metadata_props``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.cliutils import add_command, add_run_arguments
from deltaprop.errors import CommandError

__all__ = ["add_commands", "cmd_export", "export_run"]

INPUT_NAME, OUTPUT_NAME, BATCH = "input", "logits", "batch"


def add_commands(subparsers: Any) -> None:
    """Register ``export`` on an argparse subparsers object."""
    p = add_command(
        subparsers,
        "export",
        cmd_export,
        "write a trained run's model as an ONNX file (runs in ONNX Runtime)",
        "Write a trained run's model as an ONNX file with a dynamic batch axis. The graph "
        "normalises its input as training did, so it takes raw samples (--no-normalize: already "
        "normalised ones) and returns the class scores (logits).",
    )
    add_run_arguments(p)
    p.add_argument("--out", help="the ONNX file to write (default: RUN/model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version, 13 to 21 (17)")
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="leave the input normalisation out of the graph",
    )


def cmd_export(args: argparse.Namespace) -> int:
    """``deltaprop export``: writes the file and prints its input and output."""
    if importlib.util.find_spec("onnx") is None:
        raise CommandError("deltaprop export needs the onnx package: pip install 'deltaprop[onnx]'")
    out = Path(args.out) if args.out else Path(args.run) / "model.onnx"
    info = export_run(args.run, out, args.checkpoint, args.opset, args.normalize)
    print(
        f"wrote {out} (ONNX opset {info['opset']}, {info['nodes']} nodes, "
        f"{info['parameters']:,} parameters) from checkpoint {info['checkpoint']}"
    )
    for kind, (name, dtype, shape, note) in (("input ", info["input"]), ("output", info["output"])):
        dims = ", ".join(str(d) for d in shape)
        print(f"  {kind}  {name}  {dtype}[{dims}]  {note}")
    print(f"  classes {' '.join(info['class_names'])}")
    return 0


def export_run(
    run: str | Path,
    out: str | Path,
    checkpoint: str = "last",
    opset_version: int = 17,
    normalize: bool = True,
) -> dict[str, Any]:
    """Export a run's model to ``out``; returns what was written (names, shapes, counts).

    Raises an :class:`~deltaprop.errors.InputError` (one sentence) for a missing run or
    checkpoint, an unsupported opset or an output path that cannot be written.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from deltaprop.training import TrainSettings, train
    >>> run = Path(tempfile.mkdtemp()) / "xor"
    >>> _ = train(TrainSettings(dataset="xor", model="mlp", hidden=(8,), epochs=1), run,
    ...           progress=False, plots=False, echo=lambda line: None)
    >>> info = export_run(run, run / "xor.onnx")
    >>> info["input"][:3], info["output"][:3]
    (('input', 'float32', ('batch', 2)), ('logits', 'float32', ('batch', 2)))
    """
    from deltaprop.onnx.export import export_model
    from deltaprop.tensor import _make
    from deltaprop.training.predict import load_run

    loaded = load_run(run, checkpoint)
    shape = tuple(int(s) for s in loaded.input_shape)
    example = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    constants: dict[str, Any] = {}
    preprocess = None
    metadata = {"class_names": json.dumps(loaded.class_names)}
    if normalize:
        mean, std = (np.asarray(loaded.config["normalize"][k], np.float32) for k in ("mean", "std"))
        if mean.size > 1:  # per channel (images) or per feature (tables)
            stat_shape = (1, -1, 1, 1) if len(shape) == 3 else (1, -1)
            mean, std = mean.reshape(stat_shape), std.reshape(stat_shape)
        else:
            mean, std = mean.reshape(()), std.reshape(())
        constants = {"input_mean": _make(mean), "input_std": _make(std)}

        def preprocess(x: Any) -> Any:
            return (x - constants["input_mean"]) / constants["input_std"]

        metadata["normalization"] = json.dumps(loaded.config["normalize"])
    proto = export_model(
        loaded.model,
        example,
        out,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: BATCH}, OUTPUT_NAME: {0: BATCH}},
        opset_version=opset_version,
        preprocess=preprocess,
        constants=constants,
        metadata=metadata,
    )
    n_params = sum(math.prod(p.shape) for p in loaded.model.parameters())
    n_out = len(loaded.class_names)
    note_in = (
        "raw samples (normalised inside the graph with the training set's mean and std)"
        if normalize
        else "normalised samples ((x - mean) / std with the run's statistics)"
    )
    return {
        "opset": opset_version,
        "nodes": len(proto.graph.node),
        "parameters": int(n_params),
        "checkpoint": str(loaded.checkpoint),
        "input": (INPUT_NAME, "float32", (BATCH, *shape), note_in),
        "output": (OUTPUT_NAME, "float32", (BATCH, n_out), "class scores (logits)"),
        "class_names": [str(c) for c in loaded.class_names],
    }
