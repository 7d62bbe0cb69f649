"""Keeping freed memory in the process for the next allocation of the same size (glibc).

A conversion worker allocates and frees arrays of a few hundred kB to a few MB per image; a
dissection allocates and frees activations of up to hundreds of MB per batch (ResNet-18's first
convolution: 205 MB at batch 64). glibc's default thresholds hand such blocks back to the
kernel at once and fault them in again, zero-filled, on the next allocation: a third of a
forked conversion worker's CPU time, and 16 of the 108 CPU seconds of a 2,000-image ResNet-18
dissection, went to page faults. :func:`steady_heap` sets glibc's ``mallopt`` so that freed
blocks stay in the heap: blocks up to ``mmap_bytes`` (or every block, ``mmap_bytes=None``)
come from the heap, and up to ``trim_bytes`` of free heap is kept. The peak resident memory
moves little (the same blocks are reused); memory freed at the end of a phase is not handed
back until the process ends, so only processes that do one job call it (conversion workers,
the ``conceptkit dissect`` command); the library never changes the caller's process.
Elsewhere than on glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import platform

#: glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4


def steady_heap(mmap_bytes: int | None = 16 << 20, trim_bytes: int = 64 << 20) -> bool:
    """Keep freed memory for the next allocation (True when glibc took the settings).

    ``mmap_bytes``: blocks above it still come from ``mmap`` (False when glibc refuses the
    value); None: no block does. ``trim_bytes``: free memory at the top of the heap kept.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = mallopt(_M_TRIM_THRESHOLD, trim_bytes)
    if mmap_bytes is None:
        mmap = mallopt(_M_MMAP_MAX, 0)
    else:
        mmap = mallopt(_M_MMAP_THRESHOLD, mmap_bytes)
    return bool(trim and mmap)
