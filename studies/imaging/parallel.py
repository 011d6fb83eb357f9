"""Threads for per-file work only where they pay: on big files.

Extracting, decoding and rendering a file release the GIL inside zlib, the decoders and numpy,
so two threads overlap well on a CT slice. On a small image the work between those calls is
Python, and two threads fighting for the GIL are slower than one. Measured on this project's
2-core machine, per file, one thread vs two (`.venv/bin/python bench/threads.py`: 200 files per
size, median of 5 interleaved rounds), two runs on the quiet machine (load average 0.7 and 1.0;
2026-11-30, 17:35), ms:

                        extract                      decode+PNG+store
    64 x 64 (9 KB)      0.15 vs 0.24 | 0.51 vs 0.33   0.34 vs 0.65 | 0.73 vs 0.78
    128 x 128 (33 KB)   0.24 vs 0.25 | 0.49 vs 0.37   0.40 vs 0.68 | 0.70 vs 0.85
    256 x 256 (129 KB)  0.73 vs 0.44 | 0.98 vs 0.60   0.82 vs 0.99 | 1.13 vs 1.14
    512 x 512 (513 KB)  1.76 vs 1.04 | 2.09 vs 1.16   2.22 vs 1.52 | 2.62 vs 1.79

(the disk's speed for new files moves from minute to minute here: the extract columns of small
files are mostly that). Extraction goes on threads from ``EXTRACT_THREADED_BYTES`` per file (two
threads won at 129 KB in both runs, not reliably below), decoding and rendering from
``RENDER_THREADED_PIXELS`` per frame (two threads lost up to 256 x 256 and won at 512 x 512). On a
machine whose other core is busy, two threads paid only for extracting 512 x 512 files (a run at
load average 2.7: 2.06 vs 1.68 ms; decode+PNG+store at 512 x 512 2.47 vs 2.73 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

EXTRACT_THREADED_BYTES = 64 * 1024
RENDER_THREADED_PIXELS = 128 * 1024  # above 256 x 256, below 512 x 512

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
