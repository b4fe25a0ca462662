"""Shared helpers of the benchmark scripts: thread pinning, data, timing, memory, reporting.

Import this module *before* NumPy in every benchmark script: it sets the BLAS thread count
through the environment, which OpenBLAS / MKL / OpenMP only read when they are loaded.

    import _common  # first: pins BLAS threads before NumPy loads
    import numpy as np

The thread count is 2 unless ``DELTAPROP_BENCH_THREADS`` says otherwise.
"""

from __future__ import annotations

import os

BLAS_THREADS = int(os.environ.get("DELTAPROP_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(BLAS_THREADS)

import gc  # noqa: E402
import gzip  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# MNIST files: $DELTAPROP_MNIST_DIR, else shared/datasets/mnist-10k inside or beside the checkout.
_MNIST_CANDIDATES = [REPO_ROOT / "shared/datasets/mnist-10k"]
_MNIST_CANDIDATES.append(REPO_ROOT.parent / "shared/datasets/mnist-10k")
MNIST_DIR = Path(
    os.environ.get(
        "DELTAPROP_MNIST_DIR",
        next((p for p in _MNIST_CANDIDATES if p.is_dir()), _MNIST_CANDIDATES[-1]),
    )
)
# The usual MNIST normalisation (mean and std of the training pixels, in [0, 1] units).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# Hyper-parameters shared by every implementation of the training workloads.
LR = 0.01
MOMENTUM = 0.9

# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------

_threadpool_limiter = None  # kept alive: threadpoolctl restores the old limits when collected


def pin_threads(n: int = BLAS_THREADS) -> str:
    """Limit every BLAS / OpenMP pool loaded so far to ``n`` threads (threadpoolctl, if present).

    The environment variables set at import time cover pools loaded later; call this again after
    importing a library that brings its own pool (torch). Returns a one-line description.
    """
    global _threadpool_limiter
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return f"threadpoolctl not installed; relying on *_NUM_THREADS={n}"
    _threadpool_limiter = threadpool_limits(limits=n)
    pools = [
        f"{p.get('internal_api')}({p.get('num_threads')})"
        for p in threadpool_info()
        if p.get("user_api") in ("blas", "openmp")
    ]
    return "threadpoolctl: " + ", ".join(pools)


# Implementations compared by the scripts: report name -> module in this folder.
IMPL_MODULES = {
    "deltaprop": "deltaprop_impl",
    "compiled": "deltaprop_compiled_impl",
    "numpy": "numpy_ref",
    "torch": "torch_ref",
}


def load_impls(names: Sequence[str] = tuple(IMPL_MODULES)):
    """Import the implementation modules: ({name: module}, {name: why it is unavailable}).

    Any exception counts as "unavailable" (a framework under construction may fail in many
    ways at import). Thread limits are applied again once everything is loaded.
    """
    loaded, unavailable = {}, {}
    for name in names:
        try:
            module = importlib.import_module(IMPL_MODULES[name])
        except Exception as e:  # noqa: BLE001 - reported, not swallowed
            unavailable[name] = f"{type(e).__name__}: {e}"
            continue
        if hasattr(module, "configure_threads"):
            module.configure_threads()
        loaded[name] = module
    pin_threads()
    return loaded, unavailable


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def read_idx_images(path: Path) -> np.ndarray:
    """Images of an IDX file (gzip): 16-byte big-endian header (magic 2051, count, rows, cols)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise ValueError(f"{path}: bad IDX image magic {magic}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """Labels of an IDX file (gzip): 8-byte big-endian header (magic 2049, count)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic != 2049:
        raise ValueError(f"{path}: bad IDX label magic {magic}")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.shape[0] != count:
        raise ValueError(f"{path}: header says {count} labels, file holds {labels.shape[0]}")
    return labels


def load_mnist(split: str = "train", root: Path = MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of the ``train`` or ``t10k`` split."""
    images = read_idx_images(root / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx_labels(root / f"{split}-labels-idx1-ubyte.gz")
    return images, labels


def mnist_batches(
    batch_size: int, *, flat: bool, limit: int | None = None, dtype=np.float32
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalised MNIST training digits cut into full batches, in file order.

    ``flat``: images as (B, 784) for an MLP, else (B, 1, 28, 28) for a CNN. Labels are int64.
    ``limit`` caps the number of batches (the file's 10,000 digits give 78 of 128).
    """
    images, labels = load_mnist("train")
    n_batches = len(images) // batch_size
    if limit is not None:
        n_batches = min(n_batches, limit)
    n = n_batches * batch_size
    x = (images[:n].astype(dtype) / dtype(255.0) - dtype(MNIST_MEAN)) / dtype(MNIST_STD)
    x = x.reshape(n, 784) if flat else x.reshape(n, 1, 28, 28)
    y = labels[:n].astype(np.int64)
    return [
        (np.ascontiguousarray(x[i : i + batch_size]), y[i : i + batch_size].copy())
        for i in range(0, n, batch_size)
    ]


def tiny_regression_data(n: int = 100, seed: int = 0, dtype=np.float32):
    """(x (n, 2), y (n, 1)): a smooth 2-D regression target for the tiny tanh MLP."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2)).astype(dtype)
    y = (np.sin(np.pi * x[:, :1]) * np.cos(np.pi * x[:, 1:])).astype(dtype)
    return x, y


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


@dataclass
class TimingResult:
    """Seconds per call of one implementation: the median over blocks, and every block's figure."""

    name: str
    calls_per_block: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median over the blocks: a rough noise figure."""
        return (max(self.samples) - min(self.samples)) / self.median


# Seconds to wait before each timed block: longer than OpenBLAS's spin after its last call.
SETTLE_S = 0.25


def time_block(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls in a row."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def compare(
    fns: dict[str, Callable[[], object]],
    *,
    warmup_s: float = 0.5,
    block_s: float = 0.25,
    repeats: int = 7,
    settle_s: float = SETTLE_S,
) -> dict[str, TimingResult]:
    """Time several implementations of one workload, alternated round-robin in this process.

    1. Warm-up: each function runs for ``warmup_s`` (caches, allocator, lazy initialisation),
       which also estimates its cost and fixes how many calls make one ``block_s`` block.
    2. ``repeats`` rounds; each round times one block of every function, the starting function
       rotating from round to round so that none always follows the same neighbour.
    3. The figure is the median of the per-call times of the blocks.

    Before each block: a full garbage collection, ``settle_s`` seconds of sleep and one untimed
    call, so that the block does not pay for the previous implementation's garbage or its thread
    pools still spinning: after its last multi-threaded call, OpenBLAS's worker thread spins
    for about 0.1 s (deltaprop's and the NumPy step's, measured: 0.096 s of CPU in the 0.5 s
    after a LeNet-5 step; PyTorch's OpenMP threads 0.010 s), taking the second core from
    whatever runs next.
    """
    results: dict[str, TimingResult] = {}
    for name, fn in fns.items():
        fn()  # first call: lazy initialisation, kept out of the estimate
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= warmup_s:
                break
        per_call = elapsed / calls
        results[name] = TimingResult(name, max(1, round(block_s / per_call)))
    names = list(fns)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            time.sleep(settle_s)
            fns[name]()
            results[name].samples.append(time_block(fns[name], results[name].calls_per_block))
    return results


def gemm_peak_gflops(n: int = 2048, repeats: int = 5, dtype=np.float32) -> float:
    """Best observed GFLOP/s of an n x n x n NumPy matmul (2 n^3 flops) with the pinned threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)  # warm-up
    best = min(time_block(lambda: np.matmul(a, b, out=c), 1) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this whole process so far (ru_maxrss; KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # bytes there
        kib /= 1024
    return kib / 1024


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mib() -> float:
    """Current resident set size (Linux /proc; the peak elsewhere, as a stand-in)."""
    kib = _proc_status_kib("VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mib()


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0). True if it did."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_rss_mib() -> float:
    """RSS high-water mark since the last :func:`reset_peak_rss` (VmHWM), else ru_maxrss."""
    kib = _proc_status_kib("VmHWM")
    return kib / 1024 if kib is not None else peak_rss_mib()


def traced_peak_mib(fn: Callable[[], object], calls: int = 3) -> float:
    """Peak of Python-visible allocations (tracemalloc) during ``calls`` calls, above the start.

    NumPy reports its array buffers to tracemalloc, so for NumPy code (and deltaprop) this is
    the per-step working set; PyTorch's C++ allocator is invisible to it.
    """
    return _traced_peak_since_start_mib(lambda: fn, calls)


def _traced_peak_since_start_mib(prepare: Callable[[], Callable[[], object]], calls: int) -> float:
    """Start tracemalloc, run ``prepare()`` (which returns the step and may allocate what the
    step holds), reset the peak, call the step ``calls`` times: the peak above the start, MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        fn = prepare()
        tracemalloc.reset_peak()
        for _ in range(calls):
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - start) / 2**20


def held_peak_mib(build: Callable[[], Callable[[], object]], warmup: int = 3, calls: int = 3):
    """Peak of Python-visible memory a step holds: everything allocated from building it (model,
    optimizer state, a compiled step's buffers) to the highest point of ``calls`` calls made
    after ``warmup`` calls (a compiled step records during its first calls)."""

    def prepare() -> Callable[[], object]:
        fn = build()
        for _ in range(warmup):
            fn()
        gc.collect()
        return fn

    return _traced_peak_since_start_mib(prepare, calls)


# ---------------------------------------------------------------------------------------------
# glibc malloc tuning (src/deltaprop/_malloc.py), loaded without importing the deltaprop package
# ---------------------------------------------------------------------------------------------


def load_malloc_module():
    """``deltaprop._malloc`` loaded by file path, so the framework's __init__ does not run."""
    path = REPO_ROOT / "src" / "deltaprop" / "_malloc.py"
    spec = importlib.util.spec_from_file_location("_deltaprop_malloc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_description() -> str:
    """NumPy's BLAS as NumPy's build reports it (name, version)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def load_line() -> str:
    """The load average now, as the scripts print it (other work skews the timings)."""
    if not hasattr(os, "getloadavg"):
        return "load average (1, 5, 15 min): unknown on this system"
    return "load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_lines(extra: Sequence[str] = ()) -> list[str]:
    """A few lines describing the machine and the libraries, for the report."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        f"CPU: {cpu_model()} ({os.cpu_count()} logical cores, {usable} usable)",
        f"Python {platform.python_version()}, NumPy {np.__version__} (BLAS: {blas_description()})",
        f"BLAS threads: {BLAS_THREADS} ({pin_threads()})",
    ]
    if hasattr(os, "getloadavg"):  # other work on the machine skews the timings: say so
        lines.append(load_line())
        if os.getloadavg()[0] > 0.5 and BLAS_THREADS > 1:
            lines.append(
                "WARNING: the machine was busy before this run. A multi-threaded BLAS call "
                "waits for its slowest thread, which may sit out a whole scheduler slice: "
                "timings can be many times too slow (DELTAPROP_BENCH_THREADS=1 is far less "
                "sensitive)."
            )
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        lines.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} intra-op threads)")
    lines.extend(extra)
    return lines


def _numeric(cell: str) -> bool:
    """A cell that reads as a number (maybe with a unit after it), or a placeholder."""
    if cell in ("-", "n/a"):
        return True
    try:
        float(cell.split()[0].replace(",", "").rstrip("%"))
    except (ValueError, IndexError):
        return False
    return True


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; columns whose cells all look numeric are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(cells) and all(_numeric(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if num else "-") for w, num in zip(widths, numeric))
    return "\n".join([fmt(headers), rule + "|"] + [fmt(r) for r in cells])


def fmt_rate(x: float) -> str:
    """A throughput with three significant digits and thousands separators."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"
