"""``deltaprop train`` on several MPI processes: ``--nproc N`` and ``mpirun -n N deltaprop
train``; rank 0 alone writes; the reported accuracy is the single-process evaluation's; a rank
that fails ends the job, the last checkpoint stays loadable and ``--resume`` continues (also
with another number of processes). Skipped, with the reason, without mpi4py or mpirun."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_distributed_mpi import MPIRUN, mpi_env, pytestmark  # noqa: F401  (the skip marks)

HERE = Path(__file__).parent


def deltaprop(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deltaprop", *args], capture_output=True,
                          text=True, timeout=timeout, env=mpi_env())  # fmt: skip


def accuracy(text: str) -> str:
    return re.search(r"accuracy: ([\d.]+%) \((\d+/\d+)\)", text).group(0)


def rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_nproc_trains_on_two_processes_and_rank_0_alone_writes(tmp_path):
    out = tmp_path / "run"
    proc = deltaprop("train", "--nproc", "2", "--epochs", "2", "--batch-size", "32",
                     "--out", str(out), "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # one process printed: one summary line per epoch, one final accuracy
    assert proc.stdout.count("test accuracy:") == 1
    assert len(re.findall(r"^epoch +\d/2", proc.stdout, re.M)) == 2
    assert [r["epoch"] for r in rows(out)] == ["1", "2"]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2 and config["settings"]["batch_size"] == 32
    assert (out / "checkpoints" / "last.safetensors").is_file()
    assert (out / "loss.png").is_file()
    # the accuracy reported over both ranks is the one a single process measures
    single = deltaprop("evaluate", "--run", str(out))
    assert single.returncode == 0, single.stderr
    assert accuracy(proc.stdout).split()[1:] == accuracy(single.stdout).split()[1:]


def test_help_says_batch_size_is_per_process():
    proc = deltaprop("train", "--help")
    text = " ".join(proc.stdout.split())
    assert "--nproc" in text and "in each process" in text and "global batch is N times" in text


@pytest.mark.parametrize("mode, words", [
    ("kill", "signal 9"),
    ("raise", "rank 1 of 2 failed with an uncaught RuntimeError"),
])  # fmt: skip
def test_a_failing_rank_ends_the_job_and_the_run_resumes(tmp_path, mode, words):
    out = tmp_path / "run"
    cmd = [MPIRUN, "-n", "2", sys.executable, str(HERE / "mpi" / "train_fault.py"), mode, str(out)]
    # the job ends within 30 s + the start-up of the processes, else subprocess.TimeoutExpired
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30 + 10, env=mpi_env())
    assert proc.returncode != 0
    assert words in proc.stdout + proc.stderr
    # the last checkpoint loads (after epoch 1 or 2, whichever was complete) ...
    # (metrics.csv is written after the checkpoint: it may lag one epoch behind)
    evaluated = deltaprop("evaluate", "--run", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    # ... and --resume continues from it, here on 3 processes instead of 2
    resumed = deltaprop("train", "--nproc", "3", "--out", str(out), "--resume", "--no-progress",
                        "--no-plots")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    position = re.search(rf"resuming run {re.escape(str(out))}: epoch (\d) of 4", resumed.stdout)
    assert position and position.group(1) in ("2", "3"), resumed.stdout
    assert [r["epoch"] for r in rows(out)] == ["1", "2", "3", "4"]
    assert json.loads((out / "config.json").read_text())["world_size"] == 3


def test_nproc_under_mpirun_is_refused(tmp_path):
    cmd = [MPIRUN, "-n", "2", sys.executable, "-m", "deltaprop", "train", "--nproc", "2",
           "--out", str(tmp_path / "r")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=mpi_env())
    assert proc.returncode == 2
    assert "under mpirun leave it out" in proc.stderr


NO_MPI = textwrap.dedent(
    """
    import sys
    sys.modules["mpi4py"] = None  # as if mpi4py were not installed
    from deltaprop.cli import main
    sys.exit(main(["train", "--nproc", "2", "--out", sys.argv[1]]))
    """
)


def test_nproc_without_mpi_says_what_to_install(tmp_path):
    proc = subprocess.run([sys.executable, "-c", NO_MPI, str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert 'pip install "deltaprop[mpi]"' in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_ctrl_c_stops_every_rank_after_the_same_batch_and_resumes(tmp_path):
    """SIGINT to ``deltaprop train --nproc 2``: the ranks agree to stop, rank 0 saves a
    mid-epoch checkpoint, exit status 130; --resume continues at that batch."""
    import signal

    out = tmp_path / "run"
    # small batches: an epoch lasts long enough that the signal lands before the last one ends
    cmd = [sys.executable, "-m", "deltaprop", "train", "--nproc", "2", "--epochs", "3",
           "--batch-size", "2", "--out", str(out), "--no-progress", "--no-plots"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env(), start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoints" / "last.safetensors").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # (a failure: SIGTERM makes the launcher end the whole job)
            proc.terminate()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    stopped = re.search(r"stopped at epoch (\d+), batch (\d+) of (\d+)", stderr)
    after = re.search(r"stopped after epoch (\d+);", stderr)  # (agreed at an epoch's last batch)
    assert stopped or after, stderr
    resumed = deltaprop("train", "--nproc", "2", "--out", str(out), "--resume", "--epochs", "3",
                        "--no-progress", "--no-plots")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    if stopped:
        epoch, batch, total = stopped.groups()
        assert f"epoch {epoch} of 3, after batch {batch} of {total}" in resumed.stdout
    else:
        assert f"epoch {int(after.group(1)) + 1} of 3\n" in resumed.stdout
    assert [r["epoch"] for r in rows(out)] == ["1", "2", "3"]


def test_bad_input_on_the_ranks_ends_the_job_with_status_2(tmp_path):
    proc = deltaprop("train", "--nproc", "2", "--dataset", "nonexistent", "--out",
                     str(tmp_path / "r"))  # fmt: skip
    assert proc.returncode == 2
    assert "deltaprop train: error: (rank " in proc.stderr
    assert "unknown dataset 'nonexistent'" in proc.stderr
    assert not (tmp_path / "r").exists()
