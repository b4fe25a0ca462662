"""The training application: ``deltaprop train``, ``evaluate`` and ``predict``.

* :func:`train` runs a whole training job into a run directory (metrics, checkpoints, plots);
* :func:`~deltaprop.training.predict.load_run` rebuilds a trained model from its directory;
* :func:`~deltaprop.training.commands.evaluate_run` and
  :func:`~deltaprop.training.predict.predict_files` back the other two commands.

Heavy imports (matplotlib, tqdm, Pillow) happen inside the functions that need them.
"""

from deltaprop.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from deltaprop.training.metrics import classification_report, confusion_matrix
from deltaprop.training.settings import TrainSettings, resolve_settings
from deltaprop.training.trainer import (
    Normalizer,
    RunResult,
    TrainingError,
    TrainingInterrupted,
    TrainingRun,
    evaluate_model,
    train,
)

__all__ = [
    "CheckpointError",
    "Normalizer",
    "RunResult",
    "TrainSettings",
    "TrainingError",
    "TrainingInterrupted",
    "TrainingRun",
    "classification_report",
    "confusion_matrix",
    "evaluate_model",
    "load_checkpoint",
    "resolve_settings",
    "save_checkpoint",
    "train",
]
