"""Keep freed memory in the process instead of handing it back to the kernel.

glibc's malloc serves blocks of a few MB (a batch's activations) with fresh mmap()s and
returns them on free, so every training step pays page faults to touch new zeroed pages
again. Raising the mmap and trim thresholds makes malloc reuse the same memory. This only
changes where memory comes from, never what is computed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt() parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum; far above any per-step buffer
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def reuse_freed_memory() -> bool:
    """Tune glibc malloc for training; returns False (and does nothing) without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
