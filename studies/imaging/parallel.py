"""Threads for per-file work only where they pay: on big files.

Extracting, decoding and rendering a file release the GIL inside zlib, the decoders and numpy,
so two threads overlap well on a CT slice. On a small image the work between those calls is
Python, and two threads fighting for the GIL are slower than one. Measured on this project's
2-core machine, per file, one thread vs two (`python /tmp`-free figures from ``bench/threads.py``):

    64 x 64 (8 KB)      extract 0.17 vs 0.26 ms   decode+PNG+store 0.38 vs 0.67 ms
    128 x 128 (32 KB)   extract 0.64 vs 0.41 ms   decode+PNG+store 1.52 vs 1.83 ms
    256 x 256 (128 KB)  extract 1.57 vs 0.47 ms   decode+PNG+store 2.29 vs 2.22 ms
    512 x 512 (512 KB)  extract 2.26 vs 1.14 ms   decode+PNG+store 2.90 vs 2.42 ms

so extraction goes on threads from ``EXTRACT_THREADED_BYTES`` per file, decoding and rendering
from ``RENDER_THREADED_PIXELS`` per frame.
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
