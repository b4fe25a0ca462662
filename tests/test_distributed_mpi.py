"""Data parallelism on real MPI processes: ``mpirun -n N python tests/mpi/ddp_worker.py CASE``.

Skipped, with the reason shown, when mpi4py or mpirun is missing (``pip install
"deltaprop[mpi]"``). Every run has a timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltaprop.distributed.training import find_mpirun

WORKER = Path(__file__).parent / "mpi" / "ddp_worker.py"
MPIRUN = find_mpirun()
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("mpi4py") is None,
        reason='mpi4py is not installed: pip install "deltaprop[mpi]"',
    ),
    pytest.mark.skipif(
        MPIRUN is None, reason='mpirun is not installed: pip install "deltaprop[mpi]"'
    ),
]


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    # Open MPI refuses to run as root unless told; harmless otherwise
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    # more processes than cores (mpirun --oversubscribe, for the runs that start mpirun themselves)
    env.setdefault("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe")
    return env


def mpirun(n: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``mpirun -n N python ARGS``; a job that outlives ``timeout`` seconds fails the test
    (``subprocess.TimeoutExpired``)."""
    cmd = [MPIRUN, "-n", str(n), "--oversubscribe", sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env())


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_match_one_process_and_each_other(ranks):
    """SGD+momentum and Adam, an MLP and a conv net with SyncBatchNorm (several bucket layouts):
    N ranks with batch b == one process with batch N*b within 1e-10 relative (float64), with
    bit-identical parameters on every rank; also no_sync, unused parameters, the collectives
    and the cross-rank argument checks."""
    proc = mpirun(ranks, str(WORKER), "same_numbers")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PASS")]
    for rank in range(ranks):
        mine = [line for line in lines if line.startswith(f"PASS rank{rank} ")]
        assert len(mine) == 10, proc.stdout
        assert sum("identical_on_all_ranks" in line for line in mine) == 6
        assert any("bad input" in line for line in mine)


@pytest.mark.parametrize("case, words", [
    ("raise", "rank 1 of 2 failed with an uncaught RuntimeError"),
    ("sigkill", "rank 1"),
])  # fmt: skip
def test_a_failing_rank_ends_the_whole_job(case, words):
    """A rank that raises, or is SIGKILLed, while the other waits in a collective: the job
    exits non-zero within 30 s (else ``subprocess.TimeoutExpired``), naming the rank."""
    proc = mpirun(2, str(WORKER), case, timeout=30)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert words in out, out
    if case == "sigkill":
        assert "signal 9" in out, out


def test_three_ranks_one_raises():
    proc = mpirun(3, str(WORKER), "raise", timeout=30)
    assert proc.returncode != 0
    assert "rank 2 of 3 failed" in proc.stderr
