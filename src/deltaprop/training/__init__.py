"""The training application: ``deltaprop train``, ``evaluate`` and ``predict``.

* :func:`train` (``trainer.py``) runs a whole training job into a run directory (metrics,
  checkpoints, plots); the loop and its checkpoints are in ``loop.py``, the factories from
  settings (normalisation, optimizer, scheduler, model layers) in ``factories.py``;
* :func:`~deltaprop.training.predict.load_run` rebuilds a trained model from its directory;
* :func:`~deltaprop.training.commands.evaluate_run` and
  :func:`~deltaprop.training.predict.predict_files` back the other two commands.

Heavy imports (matplotlib, tqdm, Pillow) happen inside the functions that need them.
"""

from deltaprop.errors import CheckpointError, TrainingError, TrainingInterrupted
from deltaprop.training.checkpoint import load_checkpoint, save_checkpoint
from deltaprop.training.factories import Normalizer
from deltaprop.training.loop import TrainingRun
from deltaprop.training.metrics import classification_report, confusion_matrix, evaluate_model
from deltaprop.training.settings import TrainSettings, resolve_settings
from deltaprop.training.trainer import RunResult, train

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
