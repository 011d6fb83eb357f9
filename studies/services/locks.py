"""Exclusive claims that die with their process.

A task can be delivered twice (a worker killed mid-task and the message redelivered, or work
re-queued after a restart). An upload's ingest must never run twice at once: it takes a claim
that the operating system or database releases when the process holding it dies.

- PostgreSQL: a session-level advisory lock (released when the connection closes).
- SQLite (one machine by design): an flock on a file under VAR_DIR/locks.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import F

LOCK_SPACE = 0x44560000  # "DV": keeps our advisory lock ids apart from other applications'


@contextmanager
def claim(kind: int, key: int):
    """Yield True if this process now holds the claim (kind, key), False if another does."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_SPACE + kind, key])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_SPACE + kind, key])
        return
    folder = Path(settings.VAR_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{kind}-{key}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)  # closing releases the flock


UPLOAD = 1


@contextmanager
def counted_while_running(rows, field: str):
    """Count one run in ``field`` of ``rows`` (a queryset of one row) while the block runs: the
    count goes back down when it ends, however it ends, so what stays counted are the runs whose
    process died (killed, out of memory): what TASK_MAX_WORKER_DEATHS compares with."""
    rows.update(**{field: F(field) + 1})
    try:
        yield
    finally:
        rows.filter(**{f"{field}__gt": 0}).update(**{field: F(field) - 1})


@contextmanager
def commits_flushed_later():
    """PostgreSQL: this connection's commits inside the block do not wait for their WAL to reach
    the disk (``synchronous_commit = off``); the first ordinary commit after the block (anyone's:
    the WAL is one sequence) makes them durable with it. A crash inside the block can lose the
    last fraction of a second of them, never half of one: for work that is redone from the start
    when its process dies (the ingest, whose attempts count was committed before), that costs
    nothing. The ingest of 3000 small images commits about 600 times, each waiting for an
    fdatasync of the WAL while the same disk takes the upload's files. Elsewhere: nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except Exception:  # a broken connection is closed by Django; the setting goes with it
            connection.close()
