"""This host's scratch space: never shared with other hosts, never the only copy of anything.

    <SCRATCH_DIR>/tmp/                  uploads being received, STOW bodies, temporary ZIPs
    <SCRATCH_DIR>/work/<upload>/        an ingest's extraction folder (removed when it ends)
    <SCRATCH_DIR>/cache/<storage name>  copies of stored files this host needed locally (decoded
                                        volumes, originals), and images rendered at other windows
                                        (cache/windows/...); least recently used go first once the
                                        cache passes SCRATCH_CACHE_BYTES

With storage in a local folder, stored files are used in place and only window images are cached.
Processes of one host share the cache: a file appears whole (written, then renamed) and two
processes wanting the same file fetch it once (a lock per file).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

_added_since_sweep = 0
_last_sweep = 0.0
_sweep_lock = threading.Lock()
SWEEP_EVERY_BYTES = 64 * 1024**2
SWEEP_EVERY_S = 30.0


def root() -> Path:
    return Path(settings.SCRATCH_DIR)


def tmp_dir() -> Path:
    path = root() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def work_dir(upload_id: int) -> Path:
    return root() / "work" / str(upload_id)


def cache_root() -> Path:
    return root() / "cache"


def cache_path(name: str) -> Path:
    return cache_root() / name


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(name: str):
    folder = root() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(name.encode()).hexdigest()[:20]
    fd = os.open(folder / f"{digest}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def cached(name: str, fetch: Callable[[Path], None]) -> Path:
    """A local copy of the stored file ``name``: from the cache, or made by ``fetch(target)``."""
    path = cache_path(name)
    if _touch(path):
        return path
    with _locked(name):
        if not _touch(path):
            _write_whole(path, fetch)
    return path


def put(name: str, data: bytes) -> Path:
    """Keep ``data`` in the cache under ``name`` (window images)."""
    path = cache_path(name)
    _write_whole(path, lambda temporary: temporary.write_bytes(data))
    return path


def _write_whole(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` beside ``path``, then rename: readers see no file or all of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    note_added(path)


def get(name: str) -> bytes | None:
    path = cache_path(name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    _touch(path)
    return data


def _touch(path: Path) -> bool:
    """Mark a cached file used now (the cache forgets the least recently used); False if absent."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False


def note_added(path: Path) -> None:
    """Account for a new file in the cache and trim the cache when it may have grown too big."""
    global _added_since_sweep, _last_sweep
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with _sweep_lock:
        _added_since_sweep += size
        due = _added_since_sweep >= SWEEP_EVERY_BYTES or time.monotonic() - _last_sweep > SWEEP_EVERY_S
        if not due:
            return
        _added_since_sweep = 0
        _last_sweep = time.monotonic()
    trim(settings.SCRATCH_CACHE_BYTES)


def trim(limit: int) -> int:
    """Remove least recently used cached files until the cache holds at most ``limit`` bytes.
    Files in use stay readable by whoever has them open or mapped (POSIX unlink)."""
    entries = []
    total = 0
    for folder, _dirs, files in os.walk(cache_root()):
        for file in files:
            path = Path(folder) / file
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
            total += stat.st_size
    removed = 0
    entries.sort()
    for _mtime, size, path in entries:
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed


def forget(prefix: str) -> None:
    """Drop cached copies under a storage name prefix (a series' folder, say)."""
    remove_tree(cache_path(prefix.rstrip("/")))


def cached_series() -> set[int]:
    """Ids of the series this host holds cached files of."""
    found = set()
    for top in ("derived", "originals", "windows"):
        folder = cache_root() / top
        if folder.is_dir():
            found.update(int(child.name) for child in folder.iterdir() if child.name.isdigit())
    return found


def forget_series(series_id: int) -> None:
    for top in ("derived", "originals", "windows"):
        forget(f"{top}/{series_id}")


def size_bytes() -> int:
    total = 0
    for folder, _dirs, files in os.walk(cache_root()):
        for file in files:
            try:
                total += (Path(folder) / file).stat().st_size
            except FileNotFoundError:
                continue
    return total
