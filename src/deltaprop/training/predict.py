"""Load a trained run and classify new inputs: image files or CSV rows.

A run directory (written by ``deltaprop train``) has everything needed: ``config.json`` gives
the layers, the input shape, the class names and the normalisation; a checkpoint gives the
weights.

Images (PNG, JPEG, anything Pillow opens) are turned into what the model saw in training:

1. converted to grayscale (``L``), or RGB for a 3-channel model;
2. scaled to [0, 1] and **inverted when the background is light**: MNIST and the digits data
   are light strokes on a black background, while a scan or a drawing is usually dark ink on
   white paper. The background is judged from the image border (its mean above 0.5 means light);
3. when the image is not already the model's size: cropped to the bounding box of the strokes,
   padded to a square, resized (with antialiasing) to fit the model's input with a margin
   (MNIST digits fill a 20x20 box of the 28x28 frame, placed so that their centre of mass is
   at the centre, as in MNIST itself; images under 16 pixels, like the 8x8 digits, are filled
   edge to edge);
4. normalised with the training set's mean and std.

CSV rows: one sample per row, exactly the model's number of features (a header row, detected
when its first field is not a number, is skipped; a last extra column, such as the label of a
test file, is dropped when it makes the row one too long).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import PredictError
from deltaprop.training.checkpoint import check_model_fits, load_checkpoint
from deltaprop.training.rundir import CONFIG_FILE, read_config
from deltaprop.userfiles import check_readable_dir, parses_as_float

__all__ = [
    "LoadedRun",
    "PredictError",
    "load_image",
    "load_run",
    "predict_arrays",
    "predict_files",
    "read_csv_rows",
]

#: The largest image ``predict`` decodes (a 28x28 model needs nothing near it).
MAX_IMAGE_PIXELS = 50_000_000

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


@dataclass
class LoadedRun:
    """A trained model with what it needs to preprocess inputs."""

    model: Any
    config: dict[str, Any]
    checkpoint: Path

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["dataset"]["input_shape"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config["dataset"]["class_names"])

    def normalize(self, X: np.ndarray) -> np.ndarray:
        from deltaprop.training.factories import Normalizer

        return Normalizer(**self.config["normalize"])(X)


def load_run(run: str | os.PathLike[str], checkpoint: str = "last") -> LoadedRun:
    """Rebuild the model of a run directory and load a checkpoint's weights.

    Args:
        run: the directory given to ``deltaprop train --out``.
        checkpoint: ``last``, ``previous``, ``best``, or a path to a checkpoint file.

    Raises:
        PredictError: no run there, or the checkpoint is missing.
    """
    from deltaprop.models import build_sequential
    from deltaprop.training.factories import check_memory

    run_dir = Path(run)
    if not run_dir.exists():
        raise PredictError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise PredictError(f"{run_dir} is a file, not a run directory (give --run DIR)")
    check_readable_dir(run_dir, "run directory", PredictError)
    if not (run_dir / CONFIG_FILE).exists():
        raise PredictError(f"{run_dir} is not a training run (no config.json in it)")
    config = read_config(run_dir, PredictError)
    if checkpoint in ("last", "previous", "best"):
        path = run_dir / "checkpoints" / f"{checkpoint}.safetensors"
    else:
        path = Path(checkpoint)
    if path.is_dir():
        raise PredictError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise PredictError(
            f"checkpoint {path} does not exist (has the run finished its first epoch?)"
        )
    state = load_checkpoint(path)
    input_shape = tuple(config["dataset"]["input_shape"])
    check_memory(config["layers"], input_shape, 1000, None, PredictError)
    model = build_sequential(config["layers"])
    check_model_fits(state.get("model"), model, f"checkpoint {str(path)!r} of run {run_dir}")
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedRun(model, config, path)


def predict_arrays(loaded: LoadedRun, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities ``softmax(model(normalize(X)))``, shape ``(N, num_classes)``."""
    import deltaprop as dp

    X = loaded.normalize(np.asarray(X, dtype=np.float32))
    out = []
    with dp.no_grad():
        for start in range(0, len(X), batch_size):
            logits = loaded.model(dp.from_numpy(X[start : start + batch_size]))
            out.append(logits.softmax(dim=1).data)
    if not out:
        return np.zeros((0, len(loaded.class_names)), dtype=np.float32)
    return np.concatenate(out)


def load_image(path: str | os.PathLike[str], input_shape: Sequence[int]) -> np.ndarray:
    """An image file as one model input of shape ``input_shape`` (C, H, W), float32 in [0, 1].

    See the module docstring for the steps (grayscale, invert a light background, fit and
    centre the strokes).
    """
    from PIL import Image, UnidentifiedImageError

    if len(input_shape) != 3:
        raise PredictError(
            f"{path}: this model takes feature vectors of shape {tuple(input_shape)}, not "
            "images; give a CSV file"
        )
    channels, height, width = (int(s) for s in input_shape)
    if channels not in (1, 3):
        raise PredictError(f"{path}: models with {channels} input channels cannot read images")
    if Path(path).is_dir():
        raise PredictError(f"{path}: is a directory, not an image file")
    try:
        with Image.open(path) as image:
            width_px, height_px = image.size  # read from the header: nothing decoded yet
            if width_px * height_px > MAX_IMAGE_PIXELS:
                raise PredictError(
                    f"{path}: the image is {width_px}x{height_px} pixels; images up to "
                    f"{MAX_IMAGE_PIXELS:,} pixels are accepted (scale it down first)"
                )
            image = image.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise PredictError(f"{path}: no such file") from None
    except PermissionError:
        raise PredictError(f"{path}: cannot be read (permission denied)") from None
    except Image.DecompressionBombError as e:
        raise PredictError(
            f"{path}: refused as a possible decompression bomb ({e}); images up to "
            f"{MAX_IMAGE_PIXELS:,} pixels are accepted"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        # Pillow reports damaged files as OSError, and some truncated headers as SyntaxError
        # or ValueError
        raise PredictError(f"{path}: not an image Pillow can read ({e})") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    else:
        pixels = pixels.transpose(2, 0, 1)
    if _border_mean(pixels) > 0.5:
        pixels = 1.0 - pixels
    if pixels.shape[1:] != (height, width):
        pixels = _fit(pixels, height, width)
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _border_mean(pixels: np.ndarray) -> float:
    border = np.concatenate(
        [pixels[:, 0, :], pixels[:, -1, :], pixels[:, :, 0], pixels[:, :, -1]], axis=1
    )
    return float(border.mean())


def _fit(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop to the strokes, pad to a square, resize into the inner box and centre."""
    from PIL import Image

    ink = pixels.max(axis=0)
    rows = np.flatnonzero(ink.max(axis=1) > 0.1)
    cols = np.flatnonzero(ink.max(axis=0) > 0.1)
    if rows.size and cols.size:
        pixels = pixels[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    c, h, w = pixels.shape
    side = max(h, w)
    square = np.zeros((c, side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[:, top : top + h, left : left + w] = pixels
    inner_h = height if height < 16 else max(1, round(height * 20 / 28))
    inner_w = width if width < 16 else max(1, round(width * 20 / 28))
    resized = np.stack(
        [
            np.asarray(
                Image.fromarray(channel).resize((inner_w, inner_h), Image.Resampling.LANCZOS),
                dtype=np.float32,
            )
            for channel in square
        ]
    )
    resized = np.clip(resized, 0.0, 1.0)
    out = np.zeros((c, height, width), dtype=np.float32)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    if height >= 16 and width >= 16:  # MNIST: the centre of mass goes to the centre
        mass = resized.sum(axis=0)
        total = float(mass.sum())
        if total > 0:
            com_y = float((mass.sum(axis=1) * np.arange(inner_h)).sum()) / total
            com_x = float((mass.sum(axis=0) * np.arange(inner_w)).sum()) / total
            top = int(np.clip(round((height - 1) / 2 - com_y), 0, height - inner_h))
            left = int(np.clip(round((width - 1) / 2 - com_x), 0, width - inner_w))
    out[:, top : top + inner_h, left : left + inner_w] = resized
    return out


def read_csv_rows(path: str | os.PathLike[str], num_features: int) -> np.ndarray:
    """The feature rows of a CSV file as float32 ``(N, num_features)`` (see module docstring)."""
    rows: list[list[float]] = []
    try:
        with open(path, newline="") as f:
            lines = [r for r in csv.reader(f) if r and not r[0].lstrip().startswith("#")]
    except FileNotFoundError:
        raise PredictError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise PredictError(
            f"{path}: not UTF-8 text (byte offset {e.start}); expected CSV"
        ) from None
    except OSError as e:
        raise PredictError(f"{path}: cannot be read ({(e.strerror or str(e)).lower()})") from None
    for number, row in enumerate(lines, start=1):
        fields = [field.strip() for field in row]
        if number == 1 and not parses_as_float(fields[0]):
            continue  # header
        if len(fields) == num_features + 1:
            fields = fields[:-1]
        if len(fields) != num_features:
            raise PredictError(
                f"{path}, row {number}: {len(fields)} values, but the model takes "
                f"{num_features} features"
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise PredictError(f"{path}, row {number}: a feature is not a number") from None
    return np.asarray(rows, dtype=np.float32).reshape(-1, num_features)


def predict_files(
    loaded: LoadedRun, files: Sequence[str | os.PathLike[str]], top: int = 1
) -> list[dict[str, Any]]:
    """Classify image files and CSV rows.

    Returns one dict per input: ``source`` (file, or ``file:row``), ``classes`` (the ``top``
    class names, most probable first) and ``probabilities`` (theirs).
    """
    sources: list[str] = []
    inputs: list[np.ndarray] = []
    shape = loaded.input_shape
    for file in files:
        path = Path(file)
        if path.suffix.lower() == ".csv":
            if len(shape) != 1:
                raise PredictError(
                    f"{path}: this model takes images of shape {shape}; CSV rows only work for "
                    "models trained on tables"
                )
            X = read_csv_rows(path, shape[0])
            sources.extend(f"{path}:{i + 1}" for i in range(len(X)))
            inputs.extend(X)
        elif path.suffix.lower() in IMAGE_SUFFIXES or len(shape) == 3:
            inputs.append(load_image(path, shape))
            sources.append(str(path))
        else:
            raise PredictError(f"{path}: expected an image file (PNG, JPEG, ...) or a .csv file")
    if not inputs:
        return []
    probabilities = predict_arrays(loaded, np.stack(inputs))
    k = max(1, min(int(top), probabilities.shape[1]))
    names = loaded.class_names
    results = []
    for source, p in zip(sources, probabilities):
        order = np.argsort(-p, kind="stable")[:k]
        results.append(
            {
                "source": source,
                "classes": [names[i] for i in order],
                "indices": [int(i) for i in order],
                "probabilities": [float(p[i]) for i in order],
            }
        )
    return results
