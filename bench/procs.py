"""The processes under a given one, read from /proc (Linux): for the bench's memory sampler
(bench/run.py) and for tests that look into a worker's processes (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path


def descendants(root: int) -> dict[int, bytes]:
    """{pid: command line} of every process under ``root`` (children, theirs, ...; not ``root``)."""
    parents, commands = {}, {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                # the parent is the 2nd field after the command name, which may hold spaces and ")"
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[int(proc.name)] = (proc / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.update((pid, commands[pid]) for pid in frontier)
    return found
