"""The exceptions deltaprop raises for bad input.

Engine errors (:class:`ShapeError`, :class:`DTypeError`, ...) are subclasses of the Python
exception a user would expect (ValueError for a bad value or shape, TypeError for a bad type)
*and* of the one PyTorch raises in the same situation, so code and tests written against either
keep working. Messages name the op, the argument and the shapes or values involved.

Application errors (files, settings, datasets, models, checkpoints, command lines) derive from
:class:`InputError`, a ValueError whose message is one sentence naming the argument or file,
what is wrong and what is allowed. The ``deltaprop`` command prints an ``InputError`` as
``deltaprop COMMAND: error: MESSAGE`` and exits with status 2; any other exception is a bug and
keeps its traceback.

>>> import deltaprop as dp
>>> issubclass(dp.CheckpointError, dp.InputError), issubclass(dp.InputError, ValueError)
(True, True)
"""


class ShapeError(ValueError, RuntimeError):
    """Incompatible shapes: a ValueError, and a RuntimeError as PyTorch raises for them."""


class DTypeError(TypeError, RuntimeError):
    """An unsupported or mismatched dtype: a TypeError, and a RuntimeError as PyTorch raises."""


class InvalidArgumentError(ValueError, RuntimeError):
    """A bad argument value where PyTorch raises RuntimeError: also a ValueError."""


class DimError(IndexError, ValueError):
    """A ``dim`` argument out of range: an IndexError as in PyTorch, and a ValueError."""


class AnomalyError(RuntimeError):
    """Under ``autograd.detect_anomaly()``, an op's backward produced a NaN or infinite gradient;
    the message names the op and the shapes of its forward inputs."""


class InputError(ValueError):
    """A user-facing input (argument, setting, file) cannot be used; the message is one sentence
    naming it, what is wrong and what is allowed."""


class CheckpointError(InputError):
    """A checkpoint file is truncated, corrupt, not in deltaprop's format, or does not fit the
    model or run it is loaded into."""


class DatasetError(InputError):
    """A dataset file is missing, malformed or inconsistent; the message names the file."""


class ModelError(InputError):
    """A model description is invalid or does not fit the data's shape (one clear sentence)."""


class TrainingError(InputError):
    """A training request cannot run: a bad setting, an existing run, an incompatible resume, a
    run directory that cannot be written."""


class DivergenceError(TrainingError):
    """The loss or a gradient became NaN or infinite during training; the run stopped and kept
    its last good checkpoint."""


class PredictError(InputError):
    """A run directory or an input file for ``evaluate``/``predict`` cannot be used."""


class ExportError(InputError):
    """A model cannot be exported (an op without an ONNX mapping, a model that does not run on
    the example input, bad names or axes, an output path that cannot be written)."""


class CommandError(InputError):
    """A command-line error: printed as one clear sentence, exit status 2."""


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C) after saving a checkpoint it can resume from.

    Not an error: ``checkpoint`` is the file to resume from.
    """

    def __init__(self, message: str, checkpoint: object) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


__all__ = [
    "CheckpointError",
    "CommandError",
    "DTypeError",
    "DatasetError",
    "DimError",
    "DivergenceError",
    "ExportError",
    "InputError",
    "InvalidArgumentError",
    "ModelError",
    "PredictError",
    "ShapeError",
    "TrainingError",
    "TrainingInterrupted",
]
