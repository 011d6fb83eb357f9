"""De-identified exports of a study (PS3.15 Annex E, see ``studies.imaging.deid``): a streamed ZIP
(``deid_archive``) or an anonymised copy ingested as a new study of the requesting user
(``deid_copy``). Each export has its own random key: UIDs, pseudonyms and the date shift agree
within it and are unrelated to any other export's. Both are audited here (DEID_EXPORT,
DEID_COPY) with the options and counts, never a patient value.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from pydicom.uid import UID

from audit.models import AuditEvent
from audit.services import record
from studies import scratch, storage
from studies.imaging.deid import OPTION_NAMES, Deidentifier, DeidError, Options, deidentify_file
from studies.models import Upload
from studies.services.archives import Member, zip_stream_of
from studies.services.imports import upload_staged

# Entry times in the ZIP: a fixed time, as the stored files' times could tell when a study was made.
ENTRY_TIME = datetime(1980, 1, 1)
MANIFEST_NAME = "DEIDENTIFICATION.txt"

__all__ = ["OPTION_NAMES", "DeidError", "Options", "deid_archive", "deid_copy"]


@dataclass
class Summary:
    files: int = 0
    left_out: list[dict] = field(default_factory=list)  # {"number", "modality", "sop_class", "reason"}

    def audit_detail(self, options: Options) -> dict:
        return {"profile": "basic", "options": options.names, "files": self.files, "left_out": len(self.left_out)}


def deid_entries(
    members: Iterable[Member], deidentifier: Deidentifier, summary: Summary
) -> Iterator[tuple[str, datetime, bytes]]:
    """(name, time, bytes) of each de-identified file, named <new series UID>/<new SOP UID>.dcm;
    files left out are counted in ``summary`` instead."""
    for number, member in enumerate(members, start=1):
        try:
            with storage.open_stream(member.stored_name) as source:
                data = source.read()
        except FileNotFoundError:
            continue  # removed meanwhile (a concurrent delete)
        out, ds, reason = deidentify_file(data, deidentifier)
        if out is None:
            summary.left_out.append(
                {
                    "number": number,
                    "modality": str(ds.get("Modality", "") or "")[:16] if ds is not None else "",
                    "sop_class": sop_class_name(ds),
                    "reason": reason,
                }
            )
            continue
        summary.files += 1
        yield f"{ds.get('SeriesInstanceUID') or 'series'}/{ds.SOPInstanceUID}.dcm", ENTRY_TIME, out


def sop_class_name(ds) -> str:
    uid = str(ds.get("SOPClassUID", "") or "") if ds is not None else ""
    return UID(uid).name[:80] if uid else ""


def manifest(summary: Summary, options: Options, deidentifier: Deidentifier) -> bytes:
    """The export's README: what was done and which files were left out (by their number in the
    study, modality, SOP class and reason: no patient data)."""
    lines = [
        "De-identified with dicomviewer: DICOM PS3.15 Annex E, " + deidentifier.method_description() + ".",
        f"Options: {', '.join(options.names) or 'none'}.",
        f"Files: {summary.files} de-identified, {len(summary.left_out)} left out.",
        "Private elements removed; UIDs replaced (consistently within this export).",
    ]
    if options.retain_dates:
        lines.append("Dates moved by the same whole number of days in every file of this export.")
    if summary.left_out:
        lines += ["", "Left out (pixel data may show identifying text, or unreadable):"]
        for item in summary.left_out:
            lines.append(
                f"  file {item['number']}: {item['modality'] or '?'} {item['sop_class'] or '?'} - {item['reason']}"
            )
    return ("\n".join(lines) + "\n").encode()


def new_deidentifier(options: Options) -> Deidentifier:
    return Deidentifier(key=secrets.token_bytes(32), options=options)


def deid_archive(*, obj, members: list[Member], options: Options, request=None, user=None) -> Iterator[bytes]:
    """The bytes of a ZIP of a study's or series' (``obj``) files, de-identified, with a manifest; audited when the
    stream ends (complete, or cut short by the client: then as a failure)."""
    deidentifier = new_deidentifier(options)
    summary = Summary()

    def entries():
        yield from deid_entries(members, deidentifier, summary)
        yield MANIFEST_NAME, ENTRY_TIME, manifest(summary, options, deidentifier)

    complete = False
    try:
        yield from zip_stream_of(entries())
        complete = True
    finally:
        record(
            AuditEvent.Action.DEID_EXPORT,
            request=request,
            user=user,
            obj=obj,
            outcome=AuditEvent.Outcome.SUCCESS if complete else AuditEvent.Outcome.FAILURE,
            detail={**summary.audit_detail(options), "format": "zip", "complete": complete},
        )


def deid_copy(*, study, members: list[Member], options: Options, user, request=None) -> tuple[Upload, Summary]:
    """De-identify the study's files into a ZIP in the scratch folder and ingest it as a new
    upload of ``user`` (the ingest runs in the worker). DeidError when every file is left out;
    InvalidUpload (from the upload service) when the ZIP is not acceptable, e.g. too large."""
    size = sum(member.size for member in members)
    if size > settings.MAX_UPLOAD_BYTES:  # a copy is an upload: the same limit as one sent over HTTP
        raise DeidError(
            f"This study is too large to copy: {size / 1024**3:.1f} GB, over the upload limit of "
            f"{settings.MAX_UPLOAD_BYTES / 1024**3:.1f} GB."
        )
    deidentifier = new_deidentifier(options)
    summary = Summary()
    fd, name = tempfile.mkstemp(dir=scratch.tmp_dir(), prefix="deid-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for entry_name, _when, data in deid_entries(members, deidentifier, summary):
                archive.writestr(entry_name, data)
        if not summary.files:
            raise DeidError(
                f"Nothing to copy: all {len(summary.left_out)} files of this study were left out "
                "(images that may show identifying text in their pixels are not exported)."
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = upload_staged(owner=user, path=path, name=f"anonymised-study-{study.pk}.zip")
    record(
        AuditEvent.Action.DEID_COPY,
        request=request,
        user=user,
        obj=study,
        detail={**summary.audit_detail(options), "upload_id": upload.pk},
    )
    return upload, summary
