"""STOW-RS (PS3.18 10.5): store the DICOM parts of a multipart request through the upload pipeline.

The request body goes to a temporary file (chunked bodies included), each part's header is read
(never its pixels), parts that cannot be understood or belong to another study fail at once, and
the accepted ones are staged as one ZIP that becomes an ordinary Upload for the same ingest task.
The request then waits (at most STOW_WAIT_SECONDS) for the ingest to store them and answers with
what was stored and what failed, with the standard failure reasons.
"""

from __future__ import annotations

import io
import mmap
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from django.conf import settings

from dicomweb.multipart import MultipartError, split_multipart
from studies import scratch
from studies.imaging.uids import is_valid_uid
from studies.models import Instance, Upload
from studies.services.imports import upload_staged

# FailureReason (0008,1197) values, PS3.18 Table 10.5.3-2 / PS3.4 Annex GG
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH = 0xA900  # data set does not match SOP class / the study of the request
PROCESSING_FAILURE = 0x0110
DUPLICATE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
READ_BYTES = 1024 * 1024
HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]


class TooLarge(Exception):
    pass


class BadRequest(ValueError):
    pass


@dataclass
class Item:
    name: str  # member name in the staged ZIP
    sop_class: str = ""
    sop_instance: str = ""
    study: str = ""
    failure: int | None = None
    warning: str = ""


@dataclass
class Outcome:
    items: list[Item] = field(default_factory=list)
    upload: Upload | None = None
    pending: bool = False  # the ingest was still running when the wait ended

    @property
    def stored(self) -> list[Item]:
        return [item for item in self.items if item.failure is None]

    @property
    def failed(self) -> list[Item]:
        return [item for item in self.items if item.failure is not None]


# --- reading the body --------------------------------------------------------------------------


def body_to_file(request, limit: int) -> Path:
    """The request body in a temporary file under MEDIA_ROOT/tmp; chunked bodies are de-chunked
    here when the server passed the framing through (Django's runserver and test server)."""
    environ = request.META
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked or environ.get("CONTENT_LENGTH"):
        chunks = _plain(request)
    elif environ.get("wsgi.input_terminated"):  # gunicorn and others: de-chunked, read to the end
        chunks = _plain(environ["wsgi.input"])
    else:
        chunks = _dechunk(_raw_input(environ["wsgi.input"]))
    fd, name = tempfile.mkstemp(dir=scratch.tmp_dir(), prefix="stow-")
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise TooLarge()
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _plain(stream):
    while chunk := stream.read(READ_BYTES):
        yield chunk


def _raw_input(stream):
    """The socket file under Django's development server's LimitedStream (which, without a
    Content-Length, would read nothing)."""
    from django.core.handlers.wsgi import LimitedStream

    while isinstance(stream, LimitedStream):
        stream = stream._read.__self__
    return stream


def _dechunk(stream):
    while True:
        line = stream.readline(1024)
        if not line:
            raise BadRequest("the chunked request body ended early")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest("malformed chunked request body") from None
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return
        remaining = size
        while remaining:
            chunk = stream.read(min(remaining, READ_BYTES))
            if not chunk:
                raise BadRequest("the chunked request body ended early")
            remaining -= len(chunk)
            yield chunk
        stream.readline(16)  # the CRLF after each chunk


# --- parts ------------------------------------------------------------------------------------


def read_parts(body: Path, boundary: str, study_uid: str | None) -> tuple[list[Item], Path | None]:
    """Check each part; stage the accepted ones as a ZIP. Returns every item and the ZIP (or None)."""
    items: list[Item] = []
    seen: set[str] = set()
    fd, zip_name = tempfile.mkstemp(dir=scratch.tmp_dir(), prefix="stow-", suffix=".zip")
    os.close(fd)
    try:
        accepted = _stage(body, boundary, study_uid, items, seen, zip_name)
    except BaseException:
        Path(zip_name).unlink(missing_ok=True)
        raise
    if not items:
        Path(zip_name).unlink(missing_ok=True)
        raise BadRequest("the multipart body holds no parts")
    if not accepted:
        Path(zip_name).unlink(missing_ok=True)
        return items, None
    return items, Path(zip_name)


def _stage(body: Path, boundary: str, study_uid: str | None, items: list[Item], seen: set[str], zip_name) -> int:
    accepted = 0
    with open(body, "rb") as fp, zipfile.ZipFile(zip_name, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        size = os.fstat(fp.fileno()).st_size
        if size == 0:
            raise BadRequest("the request body is empty")
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            try:
                for number, part in enumerate(split_multipart(buffer, boundary), start=1):
                    item = Item(name=f"part-{number:05d}.dcm")
                    data = buffer[part.start : part.end]
                    _check(item, part.content_type, data, study_uid, seen)
                    if item.failure is None:
                        archive.writestr(item.name, data)
                        accepted += 1
                    items.append(item)
            except MultipartError as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from None
    return accepted


def _check(item: Item, content_type: str, data, study_uid: str | None, seen: set[str]) -> None:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in ("", "application/dicom"):
        item.failure = CANNOT_UNDERSTAND
        return
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=HEADER_TAGS)
        meta = getattr(ds, "file_meta", None) or {}
        item.sop_class = _text(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID"))
        item.sop_instance = _text(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID"))
        item.study = _text(ds.get("StudyInstanceUID"))
        series = _text(ds.get("SeriesInstanceUID"))
    except Exception:
        item.failure = CANNOT_UNDERSTAND
        return
    if not all(map(is_valid_uid, (item.sop_class, item.sop_instance, item.study, series))):
        item.failure = CANNOT_UNDERSTAND  # the ingest would skip it too (studies.imaging.uids)
        item.sop_class, item.sop_instance = _checked(item.sop_class), _checked(item.sop_instance)
    elif study_uid and item.study != study_uid:
        item.failure = DOES_NOT_MATCH
    elif item.sop_instance in seen:
        item.failure = DUPLICATE
    seen.add(item.sop_instance)


def _text(value) -> str:
    """A UID as the ingest reads it (studies.imaging.headers): padding and NULs off."""
    return str(value or "").strip().replace("\x00", "")


def _checked(uid: str) -> str:
    """``uid`` when it is one, else nothing: the answer never echoes what is not a UID."""
    return uid if is_valid_uid(uid) else ""


# --- storing ----------------------------------------------------------------------------------


def store(*, owner, items: list[Item], staged: Path | None) -> Outcome:
    outcome = Outcome(items=items)
    if staged is None:
        return outcome
    outcome.upload = upload_staged(owner=owner, path=staged, name="stow.zip")
    return outcome


def wait_and_settle(outcome: Outcome, owner, wait_seconds: float) -> Outcome:
    """Wait for the ingest to store the files (or fail), then mark each item stored or failed."""
    upload = outcome.upload
    if upload is None:
        return outcome
    deadline = time.monotonic() + wait_seconds
    while True:
        upload.refresh_from_db()
        if upload.is_finished or upload.stage == "rendering":
            break
        if time.monotonic() >= deadline:
            outcome.pending = True
            break
        time.sleep(0.2)
    skipped = {entry.get("name"): entry.get("reason", "") for entry in upload.skipped or []}
    accepted = [item for item in outcome.items if item.failure is None]
    stored = set(
        Instance.objects.filter(owner=owner, sop_instance_uid__in=[i.sop_instance for i in accepted]).values_list(
            "sop_instance_uid", flat=True
        )
    )
    for item in accepted:
        reason = skipped.get(item.name)
        if reason is not None and reason.startswith("already stored"):
            item.warning = "already stored"
        elif item.sop_instance in stored:
            continue
        elif outcome.pending and reason is None:
            item.warning = "still being processed"
        elif reason is not None and reason.startswith("not an image"):
            item.failure = SOP_CLASS_NOT_SUPPORTED
        elif reason is not None and reason.startswith(("not a DICOM", "unreadable", "damaged")):
            item.failure = CANNOT_UNDERSTAND
        else:
            item.failure = PROCESSING_FAILURE
    return outcome


def wait_seconds() -> float:
    return float(getattr(settings, "STOW_WAIT_SECONDS", 30))
