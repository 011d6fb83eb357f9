"""A map over this process and one forked helper, for pure-Python work that holds the GIL (reading
DICOM headers: two threads are no faster than one there).

Why ``os.fork`` and two pipes, not ``concurrent.futures.ProcessPoolExecutor`` with the fork context:
the executor pickles the function with every task (a closure over an open archive does not pickle),
runs a manager thread and queue feeder threads inside the caller (a Celery prefork child), can
neither take back the work a stuck process holds nor kill that process (its processes are private),
and turns one dead process into BrokenProcessPool for everything pending. Here the helper is one
fork that inherits the function and the items. The items are cut into chunks whose numbers the
parent writes into a pipe before the fork; both processes claim chunks by reading 4 bytes from it
(the kernel hands each record to exactly one reader: no lock that a killed process could leave
held). The helper sends each chunk's results back pickled on a second pipe. Once the claims are
gone the parent waits for the helper's last chunks; whatever the helper has not sent when it ends,
dies, raises or stays silent for ``stall_seconds`` the parent does itself. The helper is killed and
reaped before the call returns or raises, whatever happens.

The helper must not use what it inherited from the caller beyond the items and the function:
``in_helper`` gives it its own function (e.g. one that reads through its own file descriptor, since
a file object shared across a fork shares its offset). It ends with ``os._exit``: no atexit, Django,
Celery or finalizer clean-up runs in it (the parent's database and broker sockets are never closed
or written by it), and the objects it inherited are never garbage-collected there (``gc.freeze``).
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Below this many items the plain loop is about as fast: the fork costs 3-8 ms, more with a bigger
# heap (its page tables are copied), and a header ~0.25 ms. The ingest's header scan of the first n
# members of the bench's small ZIP (64x64 MR), one process against two, ms, median of 5 interleaved
# rounds (`.venv/bin/python bench/headers.py --scan [--ballast-mb M]`, 2-core machine, load 0.5-0.6,
# 2026-11-30 20:20); a fresh worker child holds ~150 MB, the bench ~55 MB before its ballast:
#     n         50           100          200          400           1000          3000
#     +0 MB     13 vs 12     25 vs 20     51 vs 34     104 vs 63     256 vs 149    784 vs 427
#     +200 MB   13 vs 19     24 vs 26     50 vs 41     101 vs 69     250 vs 161    777 vs 458
#     +600 MB   13 vs 29     25 vs 38     47 vs 51      99 vs 81     257 vs 166    728 vs 445
FORK_MIN_ITEMS = 200
STALL_SECONDS = 30.0  # silence after which a helper holding chunks is given up (killed; its chunks redone)
CHUNK_ITEMS = 16  # ~5 ms of header reading: the parent waits at most about that for the helper's last chunk
MAX_CHUNKS = 1024  # the claims are written before the fork: 4 KB fits the smallest pipe buffer
_CLAIM = struct.Struct("<I")
_MESSAGE = struct.Struct("<iI")  # chunk number (-1: the helper failed, the payload says why), payload bytes
_MISSING = object()


def map_forked(
    fn: Callable[[T], R],
    items: Iterable[T],
    processes: int,
    *,
    in_helper: Callable[[], Callable[[T], R]] | None = None,
    on_progress: Callable[[int], None] | None = None,
    min_items: int = FORK_MIN_ITEMS,
    stall_seconds: float = STALL_SECONDS,
) -> list[R]:
    """``[fn(item) for item in items]``, on this process and a forked helper when ``processes`` >= 2
    and there are at least ``min_items`` items (else exactly that loop).

    ``in_helper()`` is called in the helper right after the fork and answers the function it maps
    with (default ``fn``); its results must pickle and equal ``fn``'s. ``on_progress(done)`` is called
    in this process with the count of items done so far (here, and by the helper). An exception from
    ``fn`` or ``on_progress`` in this process reaches the caller (the helper is killed first); one in
    the helper only means this process does the helper's part.
    """
    items = list(items)
    progress = on_progress or _no_progress
    results: list = [_MISSING] * len(items)
    if processes < 2 or len(items) < min_items or not hasattr(os, "fork"):
        return _mapped_here(fn, items, range(len(items)), results, 0, progress)
    size = max(CHUNK_ITEMS, -(-len(items) // MAX_CHUNKS))
    chunks = [range(start, min(start + size, len(items))) for start in range(0, len(items), size)]
    claims = _claims(len(chunks))
    helper, done = None, 0
    try:
        helper = _Helper.fork(claims, items, chunks, in_helper or (lambda: fn))
        if helper is None:
            return _mapped_here(fn, items, range(len(items)), results, 0, progress)
        while (number := _claim(claims)) is not None:
            for index in chunks[number]:
                results[index] = fn(items[index])
                done += 1
                progress(done)
            if arrived := helper.collect(results, chunks, timeout=0):
                done += arrived
                progress(done)
        while helper.running and done < len(items) and (idle := time.monotonic() - helper.heard) < stall_seconds:
            done += helper.collect(results, chunks, timeout=min(0.5, stall_seconds - idle))
            progress(done)  # also while waiting: the caller's own time limit is checked there
    finally:
        if helper is not None:
            helper.stop()
        os.close(claims)
    left = [index for index, result in enumerate(results) if result is _MISSING]
    if left:
        log.warning("the helper process did not do its part (%s): %d items done here", helper.ending, len(left))
    return _mapped_here(fn, items, left, results, done, progress)


def _no_progress(done: int) -> None:
    pass


def _mapped_here(fn, items: list, indexes: Iterable[int], results: list, done: int, progress) -> list:
    for index in indexes:
        results[index] = fn(items[index])
        done += 1
        progress(done)
    return results


def _claims(count: int) -> int:
    """A pipe holding the chunk numbers 0..count-1, write end closed: its read end."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"".join(_CLAIM.pack(number) for number in range(count)))
    finally:
        os.close(write_fd)
    return read_fd


def _claim(claims: int) -> int | None:
    """The next chunk number nobody has taken, or None (the pipe is empty and has no writer)."""
    record = os.read(claims, _CLAIM.size)
    return _CLAIM.unpack(record)[0] if record else None


class _Helper:
    """The forked helper as the parent sees it: what it has sent, and when it was last heard."""

    def __init__(self, pid: int, results_fd: int):
        self.pid = pid
        self._fd = results_fd
        self._poll = select.poll()  # not select.select: a worker may hold descriptors above 1024
        self._poll.register(results_fd, select.POLLIN)
        self._buffer = bytearray()
        self.running = True  # until its end of the pipe closes (it ended or died)
        self.heard = time.monotonic()
        self.ending = ""  # why it stopped early, for the log

    @classmethod
    def fork(cls, claims: int, items: list, chunks: list[range], in_helper: Callable) -> _Helper | None:
        """The helper, started; None when no process can be forked now (this process does it all)."""
        read_fd, write_fd = os.pipe()
        collecting = gc.isenabled()
        gc.disable()  # no collection between the fork and the freeze in the helper
        try:
            pid = os.fork()
            if pid == 0:
                _helper_main(claims, read_fd, write_fd, items, chunks, in_helper)  # never returns
        except OSError as exc:
            log.warning("no helper process for the scan (%s): done in this one", exc)
            os.close(read_fd)
            return None
        finally:
            os.close(write_fd)
            if collecting:
                gc.enable()
        return cls(pid, read_fd)

    def collect(self, results: list, chunks: list[range], timeout: float) -> int:
        """Store the chunks that have arrived, waiting up to ``timeout`` s for bytes; answers how many items."""
        if not self.running or not self._poll.poll(int(timeout * 1000)):
            return 0
        data = os.read(self._fd, 1 << 20)
        if not data:
            self.running = False
            return 0
        self.heard = time.monotonic()
        self._buffer += data
        count = 0
        while len(self._buffer) >= _MESSAGE.size:
            number, size = _MESSAGE.unpack_from(self._buffer)
            if len(self._buffer) < _MESSAGE.size + size:
                break
            payload = bytes(self._buffer[_MESSAGE.size : _MESSAGE.size + size])
            del self._buffer[: _MESSAGE.size + size]
            if number < 0:
                self.ending = payload.decode(errors="replace")
                continue
            for index, result in zip(chunks[number], pickle.loads(payload), strict=True):
                results[index] = result
                count += 1
        return count

    def stop(self) -> None:
        """Kill the helper if it still runs, and reap it (a zombie's pid is not reused: killing it is safe)."""
        if self.running:
            self.ending = self.ending or f"silent for {time.monotonic() - self.heard:.1f} s"
        # signals held meanwhile: an exception from a handler (Celery's soft time limit) must not cut
        # the wait short and leave the helper unreaped; it is raised once this is done
        held = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            os.kill(self.pid, signal.SIGKILL)
            code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        except (ProcessLookupError, ChildProcessError):  # reaped already, by a SIGCHLD handler of the caller's
            code = None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if not self.ending and code is not None:
            self.ending = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        os.close(self._fd)


def _helper_main(claims: int, read_fd: int, results_fd: int, items: list, chunks: list[range], in_helper) -> None:
    """The helper process's whole life; it never returns into the caller's code."""
    code = 1
    try:
        os.close(read_fd)  # the parent's end: with it closed here, a write after the parent died fails
        gc.freeze()  # what it inherited is never collected here: no finalizer of the parent's objects runs
        gc.enable()
        for number in signal.valid_signals():  # the worker's handlers (soft time limit, shutdown) are not its own
            if callable(signal.getsignal(number)):
                signal.signal(number, signal.SIG_DFL)
        fn = in_helper()
        while (number := _claim(claims)) is not None:
            payload = pickle.dumps([fn(items[index]) for index in chunks[number]], pickle.HIGHEST_PROTOCOL)
            _send(results_fd, number, payload)
        code = 0
    except BaseException as exc:  # anything at all: the parent does the rest
        try:
            _send(results_fd, -1, f"it raised {type(exc).__name__}: {exc}"[:300].encode())
        except BaseException:
            pass
    finally:
        os._exit(code)


def _send(fd: int, number: int, payload: bytes) -> None:
    view = memoryview(_MESSAGE.pack(number, len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]
