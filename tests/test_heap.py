"""glibc's heap settings: taken in a child process, never in the caller's."""

from __future__ import annotations

import multiprocessing as mp
import platform

import pytest

from conceptkit import heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@pytest.mark.parametrize("mmap_bytes", [16 << 20, None])
def test_steady_heap_settings_are_taken(mmap_bytes: int | None) -> None:
    with mp.get_context("fork").Pool(1) as pool:  # this process is left as it is
        assert pool.apply(heap.steady_heap, (mmap_bytes, 1 << 30)) is True
