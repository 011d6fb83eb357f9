"""DIMSE status codes this service answers with (PS3.4 B.2.3 for C-STORE, PS3.7 C for the general
ones), and the status dataset that carries an ErrorComment."""

from __future__ import annotations

from enum import IntEnum

from pydicom.dataset import Dataset

ERROR_COMMENT_CHARS = 64  # ErrorComment is LO


class Status(IntEnum):
    SUCCESS = 0x0000
    SOP_CLASS_NOT_SUPPORTED = 0x0122  # general: Refused, SOP Class not supported (not an image here)
    NOT_AUTHORISED = 0x0124  # general: Refused, not authorised (the calling AE may not do this)
    OUT_OF_RESOURCES = 0xA700  # C-STORE: Refused, out of resources (size and disk limits)
    DOES_NOT_MATCH = 0xA900  # C-STORE: Error, data set does not match SOP class (or the request)
    CANNOT_UNDERSTAND = 0xC000  # C-STORE: Error, cannot understand (C-FIND/GET/MOVE: unable to process)
    SUB_OPERATIONS_FAILED = 0xA702  # C-GET/C-MOVE: Refused, out of resources (unable to perform sub-operations)
    MOVE_DESTINATION_UNKNOWN = 0xA801  # C-MOVE: Refused, move destination unknown
    CANCEL = 0xFE00  # C-FIND/GET/MOVE: matching or sub-operations terminated by a C-CANCEL
    PENDING = 0xFF00  # C-FIND: a match follows; C-GET/C-MOVE: sub-operations continue


def status(code: Status, comment: str = "") -> Dataset:
    """A status dataset: ``code`` and, when given, an ErrorComment of printable ASCII."""
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        text = "".join(ch if " " <= ch <= "~" and ch != "\\" else "?" for ch in comment)
        ds.ErrorComment = text[:ERROR_COMMENT_CHARS]
    return ds
