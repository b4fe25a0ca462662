"""Keep glibc's malloc from handing training memory back to the OS every step.

A NumPy training step allocates and frees the same large arrays (activations, im2col columns,
gradients) again and again. With glibc's defaults, blocks above the mmap threshold (128 KiB at
start, raised adaptively up to 32 MiB) are mmap'ed and munmap'ed on every allocation, and free
memory at the top of the heap is trimmed back to the OS once it exceeds the trim threshold; each
fresh page is then page-faulted and zeroed by the kernel on the next step. Fixed, large
thresholds make those blocks come from -- and return to -- the heap, so a steady training loop
reuses the same pages.

The cost is memory held rather than returned: after a peak the process keeps up to the trim
threshold of free heap. Nothing changes on non-glibc systems (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes

__all__ = ["tune_malloc", "tuned"]

# mallopt() parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 * 2**20  # blocks below this come from the heap, not a fresh mmap
# Older glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2, i.e. 32 MiB on 64-bit.
MMAP_THRESHOLD_FALLBACK = 32 * 2**20
TRIM_THRESHOLD = 512 * 2**20  # free heap top kept before giving memory back to the OS

_tuned: bool | None = None  # None: not tried yet; then whether it applied


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds to large fixed values, once per process.

    Returns True if the settings are in force (set by this call or an earlier one), False where
    glibc's ``mallopt`` is unavailable or refused them. Safe to call any number of times.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        _tuned = False
        return _tuned
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int  # 1 on success, 0 on error
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 or (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK) == 1
    )
    trim_ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _tuned = mmap_ok and trim_ok
    return _tuned


def tuned() -> bool:
    """Whether :func:`tune_malloc` has applied its settings in this process."""
    return bool(_tuned)
