"""C-FIND SCP, Study Root (part B replaces this stub): what the remote AE's owner may see."""

from __future__ import annotations

from dicomnet.statuses import Status, status


def handle_find(event, remote):
    """pynetdicom's C-FIND handler protocol: yields (status, identifier) pairs."""
    yield status(Status.CANNOT_UNDERSTAND, "C-FIND is not available yet"), None
