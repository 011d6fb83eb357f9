"""``forked_map``: a function over a list in forked processes, for pure-Python work (header
parsing) that threads cannot spread over cores.

Not ``multiprocessing``/``concurrent.futures``: a Celery prefork worker child is a daemonic process,
and the standard library refuses to start children from one ("daemonic processes are not allowed to
have children"; checked with billiard's pool, which Celery uses). A plain ``os.fork`` is allowed.
The children share nothing with the caller but what they inherit (read-only here: positioned
reads of an open archive are fork-safe), send their results back pickled through a pipe and end
with ``os._exit`` (no atexit handlers, no database connection closed under the parent). A share
whose child fails is computed by the caller itself, so the result never depends on the fork.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

# Below this many items a fork is not worth it: a fork of a worker child costs a few ms, a header
# of the bench's 3000-member archive 3.4 ms to read (3.8 s of CPU; forked in two: 2.2 + 2.3 s).
FORK_MIN_ITEMS = 200

T = TypeVar("T")
R = TypeVar("R")


def forked_map(
    fn: Callable[[T], R], items: Sequence[T], processes: int, progress: Callable[[float], None] | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, the first share in this process and the others in ``processes - 1``
    forked children (contiguous shares). ``progress(fraction)`` is called as this process's share
    goes on; an exception there (a time limit) ends the children too."""
    processes = max(1, min(processes, len(items)))
    bounds = [len(items) * k // processes for k in range(processes + 1)]
    shares = [items[bounds[k] : bounds[k + 1]] for k in range(processes)]
    children: list[_Child] = []
    gc.freeze()  # the children's collector leaves the inherited objects alone (no copy of every page)
    try:
        children = [_Child.start(fn, share) for share in shares[1:]]
        gc.unfreeze()
        results = []
        for number, item in enumerate(shares[0], start=1):
            results.append(fn(item))
            if progress:
                progress(number / len(shares[0]))
        for child in children:
            results.extend(child.results())
        return results
    finally:
        gc.unfreeze()
        for child in children:
            child.end()


class _Child:
    def __init__(self, fn, share, pid: int | None = None, reader: int | None = None):
        self.fn, self.share, self.pid, self.reader = fn, share, pid, reader

    @classmethod
    def start(cls, fn, share) -> _Child:
        if not hasattr(os, "fork"):
            return cls(fn, share)
        reader, writer = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no processes left: this share is done by the caller
            os.close(reader)
            os.close(writer)
            return cls(fn, share)
        if pid == 0:  # the child: compute, send, leave without running the parent's clean-ups
            code = 1
            try:
                os.close(reader)
                data = pickle.dumps([fn(item) for item in share], protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(writer, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        return cls(fn, share, pid, reader)

    def results(self) -> list:
        """The child's results; computed here instead when it failed or was never started."""
        if self.pid is None:
            return [self.fn(item) for item in self.share]
        chunks = []
        while chunk := os.read(self.reader, 1 << 20):
            chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        try:
            if os.waitstatus_to_exitcode(status) == 0:
                results = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's output, via a pipe
                if len(results) == len(self.share):
                    return results
        except Exception:
            pass
        return [self.fn(item) for item in self.share]

    def end(self) -> None:
        """Stop a child still running (the caller stopped early) and close its pipe."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = None
        if self.reader is not None:
            os.close(self.reader)
            self.reader = None
