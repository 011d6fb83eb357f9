"""C-GET and C-MOVE SCP, Study Root (part B replaces this stub)."""

from __future__ import annotations

from dicomnet.statuses import Status, status


def handle_get(event, remote):
    """pynetdicom's C-GET handler protocol: the number of sub-operations, then (status, dataset)."""
    yield 1
    yield status(Status.CANNOT_UNDERSTAND, "C-GET is not available yet"), None


def handle_move(event, remote):
    """pynetdicom's C-MOVE handler protocol: the destination (address, port), the number of
    sub-operations, then (status, dataset); (None, None) means an unknown destination (0xA801)."""
    yield None, None
