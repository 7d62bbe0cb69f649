"""The start of a forked worker process: SIGTERM back to its default action.

A forked process inherits its parent's Python signal handlers. ``conceptkit``'s command line
turns SIGTERM into an exception, so that the parent's cleanup runs (temporary folders removed).
In a worker that exception can be raised where it is swallowed (in a finalizer, say) and the
worker lives on; ``multiprocessing.Pool`` ends its workers with SIGTERM, so its parent then
waits for ever (seen once in the test suite, in ``conceptkit explain``'s pool: a worker blocked
on the task queue's lock, the parent in ``join``). Every pool's initializer therefore calls
:func:`reset_signals` first: a worker dies on SIGTERM, as processes do by default; the parent,
which handles it, removes what the run wrote.
"""

from __future__ import annotations

import signal

from conceptkit import heap


def reset_signals() -> None:
    """SIGTERM's default action in this (worker) process."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_image_worker() -> None:
    """Initialiser of a pool worker that processes images (conversion, the format readers):
    :func:`reset_signals`, then :func:`conceptkit.heap.steady_heap` (each image allocates and
    frees arrays of a few hundred kB to a few MB, which glibc's defaults would hand back)."""
    reset_signals()
    heap.steady_heap()
