"""ZIP archives of stored originals, written as a stream (never held whole in memory or on disk).

``zip_stream(members)`` yields the bytes of a ZIP of ``Member`` (name in the archive, name in the
storage, size, time). DICOM files compress poorly, so members are stored (ZIP_STORED); large
archives use ZIP64.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from studies import storage
from studies.imaging.uids import is_valid_uid

CHUNK_BYTES = 1024 * 1024


class _Sink(io.RawIOBase):
    """A write-only, non-seekable stream that hands out what was written since the last take()."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def safe_member_name(name: str) -> str:
    """``name`` as a relative path of plain components: letters, digits, ``.``, ``-`` and ``_``
    only, no empty, ``.`` or ``..`` component (whatever the database holds, an archive never names
    a file outside the folder it is unpacked in, nor carries control characters)."""
    parts = []
    for part in name.replace("\\", "/").split("/"):
        part = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in part)[:128]
        if part.strip("."):  # drops empty, "." and ".." alike
            parts.append(part)
    return "/".join(parts) or "unnamed"


@dataclass
class Member:
    name: str  # in the archive
    stored_name: str  # in the storage
    size: int
    modified: datetime


def members_of(instances) -> list[Member]:
    """Each instance's file, named <SeriesInstanceUID>/<SOPInstanceUID>.dcm in the archive (rows
    stored before UIDs were checked at ingest, if any, by their ids instead)."""
    rows = instances.values_list(
        "series_id", "series__series_instance_uid", "id", "sop_instance_uid", "file", "file_size", "created_at"
    ).order_by("series__series_number", "series_id", "instance_number", "id")
    return [
        Member(f"{_uid_or(series_uid, 'series', series_id)}/{_uid_or(sop_uid, 'instance', pk)}.dcm", name, size, when)
        for series_id, series_uid, pk, sop_uid, name, size, when in rows
    ]


def _uid_or(uid: str, kind: str, pk: int) -> str:
    return uid if is_valid_uid(uid) else f"{kind}-{pk}"


def zip_stream(members: Iterable[Member]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for member in members:
            try:
                source = storage.open_stream(member.stored_name)
            except FileNotFoundError:
                continue  # removed meanwhile (a concurrent delete): leave it out
            with source:
                chunks = iter(partial(source.read, CHUNK_BYTES), b"")
                yield from _entry(archive, sink, member.name, member.modified, member.size, chunks)
    yield sink.take()


def zip_stream_of(entries: Iterable[tuple[str, datetime, bytes]]) -> Iterator[bytes]:
    """A ZIP of (name, time, bytes) entries made while it is written (de-identified files)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, modified, data in entries:
            yield from _entry(archive, sink, name, modified, len(data), [data])
    yield sink.take()


def _entry(archive, sink: _Sink, name: str, modified: datetime, size: int, chunks) -> Iterator[bytes]:
    info = zipfile.ZipInfo(safe_member_name(name), date_time=modified.timetuple()[:6])
    info.file_size = size
    with archive.open(info, "w") as entry:
        for chunk in chunks:
            entry.write(chunk)
            yield sink.take()
    yield sink.take()
