"""What one association stores: each received instance is checked as the ingest will check it and
added, whole, to one ZIP in the scratch folder; at the association's end that ZIP becomes one
Upload (dicomnet.services). Nothing is held in memory: pynetdicom writes each data set to a file
as it arrives (STORE_RECV_CHUNKED_DATASET) and the handler copies that file into the ZIP.

Only instances whose C-STORE completed (and were answered with success) are in the ZIP: one cut
off by an abort never reached the handler, so an aborted association stores its complete
instances and nothing half-received.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import UID

from studies.imaging.archive import Skipped
from studies.imaging.headers import PIXEL_KEYWORDS, read_header
from studies.imaging.uids import is_valid_uid

from .statuses import Status

DISK_RESERVE_BYTES = 256 * 1024**2  # refuse before the scratch disk is this close to full
CHECK_TAGS = ["SOPClassUID", "SOPInstanceUID", *PIXEL_KEYWORDS]


@dataclass(frozen=True)
class Limits:
    """The upload limits, applied to one association as to one uploaded ZIP."""

    member_bytes: int  # INGEST_MAX_MEMBER_BYTES: one instance
    total_bytes: int  # MAX_UPLOAD_BYTES and INGEST_MAX_TOTAL_BYTES: the whole association
    members: int  # INGEST_MAX_MEMBERS
    frames: int  # INGEST_MAX_FRAMES

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            member_bytes=settings.INGEST_MAX_MEMBER_BYTES,
            total_bytes=min(settings.MAX_UPLOAD_BYTES, settings.INGEST_MAX_TOTAL_BYTES),
            members=settings.INGEST_MAX_MEMBERS,
            frames=settings.INGEST_MAX_FRAMES,
        )


@dataclass(frozen=True)
class Outcome:
    code: Status
    comment: str = ""


class Staging:
    """One association's received instances, in a ZIP under ``folder`` (the scratch tmp folder)."""

    def __init__(self, folder: Path, limits: Limits):
        fd, name = tempfile.mkstemp(dir=folder, prefix="dimse-", suffix=".zip")
        os.close(fd)
        self.path = Path(name)
        self.limits = limits
        self.stored = 0
        self.failed = 0
        self.bytes = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED, allowZip64=True)

    def receive(self, source: Path, sop_class: str, sop_instance: str) -> Outcome:
        """Check the data set in ``source`` (a DICOM file) and keep it, or say why not."""
        with self._lock:
            if self._zip is None:
                return Outcome(Status.OUT_OF_RESOURCES, "the association is ending")
            outcome = self._check(source, str(sop_class or "").strip(), str(sop_instance or "").strip())
            if outcome is None:
                outcome = self._keep(source, str(sop_instance).strip())
            if outcome.code != Status.SUCCESS:
                self.failed += 1
            return outcome

    def _check(self, source: Path, sop_class: str, sop_instance: str) -> Outcome | None:
        size = source.stat().st_size
        limits = self.limits
        if size > limits.member_bytes:
            return Outcome(Status.OUT_OF_RESOURCES, f"instance larger than {limits.member_bytes} bytes")
        if self.bytes + size > limits.total_bytes:
            return Outcome(Status.OUT_OF_RESOURCES, f"association over {limits.total_bytes} bytes")
        if self.stored >= limits.members:
            return Outcome(Status.OUT_OF_RESOURCES, f"association over {limits.members} instances")
        if shutil.disk_usage(self.path.parent).free < size + DISK_RESERVE_BYTES:
            return Outcome(Status.OUT_OF_RESOURCES, "the server's disk is full")
        return check_dataset(source, sop_class, sop_instance, limits.frames)

    def _keep(self, source: Path, sop_instance: str) -> Outcome:
        if sop_instance in self._seen:
            return Outcome(Status.SUCCESS)  # sent twice: the first copy is kept
        self._zip.write(source, f"{self.stored + 1:06d}.dcm")
        self._seen.add(sop_instance)
        self.stored += 1
        self.bytes += source.stat().st_size
        return Outcome(Status.SUCCESS)

    def close(self) -> Path | None:
        """End receiving: the ZIP of what was stored, or None (and no file) when nothing was."""
        with self._lock:
            if self._zip is not None:
                try:
                    self._zip.close()
                finally:
                    self._zip = None
            if self.stored:
                return self.path
            self.path.unlink(missing_ok=True)
            return None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def check_dataset(path: Path, sop_class: str, sop_instance: str, max_frames: int) -> Outcome | None:
    """None when the ingest will take the file; else the failure status and why."""
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=1024, specific_tags=CHECK_TAGS)
        found_class = str(ds.get("SOPClassUID") or "").strip().replace("\x00", "")
        found_instance = str(ds.get("SOPInstanceUID") or "").strip().replace("\x00", "")
        has_pixels = any(keyword in ds for keyword in PIXEL_KEYWORDS)
    except Exception as exc:  # pydicom raises many kinds on damaged data
        return Outcome(Status.CANNOT_UNDERSTAND, f"unreadable data set ({type(exc).__name__})")
    for keyword, value in (("SOPClassUID", found_class), ("SOPInstanceUID", found_instance)):
        if not is_valid_uid(value):
            return Outcome(Status.CANNOT_UNDERSTAND, f"{keyword} missing or not a valid UID")
    if found_class != sop_class or found_instance != sop_instance:
        return Outcome(Status.DOES_NOT_MATCH, "SOP class or instance UID differs from the request's")
    if not has_pixels:
        return Outcome(Status.SOP_CLASS_NOT_SUPPORTED, f"not an image ({UID(found_class).name}): images only")
    header = read_header(path, "received", max_frames=max_frames)
    if isinstance(header, Skipped):
        return Outcome(Status.CANNOT_UNDERSTAND, header.reason)
    return None
