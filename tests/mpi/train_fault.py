"""Run under mpirun by tests/test_distributed_cli.py: ``deltaprop train`` on every rank, and the
last rank fails right after epoch 2 (``kill``: SIGKILL; ``raise``: an uncaught exception).

usage: mpirun -n N python train_fault.py kill|raise OUT_DIR
"""

import os
import signal
import sys

import deltaprop.distributed as dist
from deltaprop.cli import main
from deltaprop.training import loop

mode, out = sys.argv[1], sys.argv[2]
end_epoch = loop.TrainingRun._end_epoch


def failing_end_epoch(run):
    end_epoch(run)
    if run.epoch == 2 and dist.get_rank() == dist.get_world_size() - 1:
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("deliberate failure after epoch 2")


loop.TrainingRun._end_epoch = failing_end_epoch
sys.exit(main(["train", "--epochs", "4", "--out", out, "--batch-size", "32", "--no-progress",
               "--no-plots"]))  # fmt: skip
