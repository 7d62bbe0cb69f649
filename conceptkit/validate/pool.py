"""Run chunks of index rows through :func:`~conceptkit.validate.rows.check_chunk`.

Sequentially, or in a process pool fed a bounded window of chunks (at most ``4 * jobs`` in
flight), merging the results in row order either way, so both give identical findings.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from conceptkit.validate.findings import Collector
from conceptkit.validate.rows import (
    ChunkResult,
    RowCheck,
    RowContext,
    check_chunk,
    check_chunk_in_worker,
    init_worker,
)

Progress = Callable[[int, int], None]


@dataclass
class Tally:
    """Pixel statistics and counts merged from every chunk, in row order."""

    out: Collector
    total: int
    progress: Progress | None = None
    frequency: dict[tuple[str, int], int] = field(default_factory=dict)
    coverage: dict[tuple[str, int], float] = field(default_factory=dict)
    bad_planes: int = 0
    rows_seen: int = 0

    def merge(self, res: ChunkResult, n: int) -> None:
        """Add the result of a chunk of ``n`` rows."""
        for f in res.findings:
            self.out.add(f)
        for code, n in res.overflow.items():
            self.out.skip(code, n)
        for k, v in res.frequency.items():
            self.frequency[k] = self.frequency.get(k, 0) + v
        for k, c in res.coverage.items():
            self.coverage[k] = self.coverage.get(k, 0.0) + c
        self.bad_planes += res.bad_planes
        self.rows_seen += n
        if self.progress is not None:
            self.progress(self.rows_seen, self.total)


def default_jobs(total: int) -> int:
    """Worker processes for ``total`` rows: the main process parses and merges, so workers only
    pay off with a core to spare (up to 4 when there are >= 2000 rows and >= 3 cores)."""
    cpus = os.cpu_count() or 1
    return min(4, cpus - 1) if total >= 2000 and cpus >= 3 else 1


@contextmanager
def _pool(jobs: int, ctx: RowContext) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers hold ``ctx``; on any exception (KeyboardInterrupt too) the
    queued chunks are cancelled and the workers joined before the exception goes on."""
    ex = ProcessPoolExecutor(jobs, initializer=init_worker, initargs=(ctx,))
    try:
        yield ex
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def run_chunks(chunks: Iterable[list[RowCheck]], ctx: RowContext, jobs: int, tally: Tally) -> None:
    """Check every chunk with ``jobs`` processes (1: in this process), merging into ``tally``."""
    if jobs <= 1:
        for chunk in chunks:
            tally.merge(check_chunk(ctx, chunk), len(chunk))
        return
    with _pool(jobs, ctx) as ex:
        pending: deque[tuple[Future[ChunkResult], int]] = deque()
        for chunk in chunks:
            pending.append((ex.submit(check_chunk_in_worker, chunk), len(chunk)))
            if len(pending) >= 4 * jobs:
                fut, n = pending.popleft()
                tally.merge(fut.result(), n)
        while pending:
            fut, n = pending.popleft()
            tally.merge(fut.result(), n)
