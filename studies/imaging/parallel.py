"""Threads for per-file work only where they pay: on big files.

Extracting, decoding and rendering a file release the GIL inside zlib, the decoders and numpy,
so two threads overlap well on a CT slice. On a small image the work between those calls is
Python, and two threads fighting for the GIL are slower than one. Measured on this project's
2-core machine, per file, one thread vs two (`.venv/bin/python bench/threads.py`: 200 files per
size, median of 5 interleaved rounds; 2026-11-30 with a load average of 2.7 from other work on
the machine, so the second core was often busy):

    64 x 64 (9 KB)      extract 0.20 vs 0.26 ms   decode+PNG+store 0.47 vs 0.51 ms
    128 x 128 (33 KB)   extract 0.51 vs 0.60 ms   decode+PNG+store 0.78 vs 0.93 ms
    256 x 256 (129 KB)  extract 0.96 vs 0.96 ms   decode+PNG+store 1.03 vs 1.36 ms
    512 x 512 (513 KB)  extract 2.06 vs 1.68 ms   decode+PNG+store 2.47 vs 2.73 ms

Extraction goes on threads from ``EXTRACT_THREADED_BYTES`` per file, decoding and rendering
from ``RENDER_THREADED_PIXELS`` per frame. These thresholds were set from a quieter machine; on
the loaded run above two threads paid only for extracting 512 x 512 files (on two quieter runs
without the files' window, extracting 256 x 256 took 0.77 vs 0.49 and 0.71 vs 0.48 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

EXTRACT_THREADED_BYTES = 16 * 1024
RENDER_THREADED_PIXELS = 256 * 256

T = TypeVar("T")
R = TypeVar("R")


def threads_for(size: float, threshold: float, threads: int) -> int:
    """``threads`` when the per-item ``size`` reaches ``threshold``, else 1."""
    return max(1, threads) if size >= threshold else 1


def map_on(threads: int, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map(fn, items)`` in order, on ``threads`` threads (in this thread when 1)."""
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(fn, items)
