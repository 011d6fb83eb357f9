"""ZIP archives of stored originals, written as a stream (never held whole in memory or on disk).

``zip_stream(members)`` yields the bytes of a ZIP of ``(name in archive, path on disk)`` pairs.
DICOM files compress poorly, so members are stored (ZIP_STORED); large archives use ZIP64.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

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


def zip_stream(members: Iterable[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path in members:
            try:
                source = open(path, "rb")
            except FileNotFoundError:
                continue  # removed meanwhile (a concurrent delete): leave it out
            with source:
                info = zipfile.ZipInfo(name, date_time=time.localtime(path.stat().st_mtime)[:6])
                info.file_size = path.stat().st_size
                with archive.open(info, "w") as entry:
                    while chunk := source.read(CHUNK_BYTES):
                        entry.write(chunk)
                        yield sink.take()
            yield sink.take()
    yield sink.take()
