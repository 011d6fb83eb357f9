"""Ingest of an uploaded ZIP, run by a Celery worker.

Headers first, from the first bytes of each member. Then, for every series, rows first (the upload
lists its studies and each series its planes), then the first image from only the files it needs,
and last the decode of each whole series, after which rendering of all plane images is queued across
the workers (``series_build``, ``rendering``). A stack of small plain images skips the wait: it is
extracted and queued with its rows, since the render chunks do all its work.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from dicomviewer.metrics import FAILURES, STAGE_SECONDS
from studies import scratch, storage
from studies.imaging import archive, forked, parallel
from studies.imaging.headers import NEED_MORE, Header, read_header, read_header_prefix
from studies.models import Upload
from studies.services import locks, rendering, series_build

log = logging.getLogger(__name__)

# progress bands of the ingest stages; rendering fills the rest (see upload_progress)
# the first bytes read for a header: most fit in 8 KB, nearly all in 64 KB; longer ones are read whole
HEADER_PREFIX_BYTES = (8 * 1024, 64 * 1024)
STAGE_BANDS = {"extracting": (0, 30), "storing": (30, 40), "decoding": (40, 50), "rendering": (50, 100)}


class IngestFailed(Exception):
    """The upload cannot be ingested; the message is for the uploader."""


@dataclass
class IngestState:
    upload: Upload
    skipped: list[dict] = field(default_factory=list)
    last_progress_write: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stage: str = "extracting"
    stage_started: float = field(default_factory=time.monotonic)

    def enter(self, stage: str) -> None:
        """Time the stage that ends (metrics)."""
        now = time.monotonic()
        if stage != self.stage:
            STAGE_SECONDS.labels(self.stage).observe(now - self.stage_started)
            self.stage, self.stage_started = stage, now

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name, "reason": reason})

    def progress(self, stage: str, fraction: float, force: bool = False) -> None:
        """Record progress; also where the time limit is checked (Celery's soft limit is the
        backstop for a single step that hangs)."""
        now = time.monotonic()
        self.enter(stage)
        if now - self.started > settings.INGEST_TIME_LIMIT:
            raise SoftTimeLimitExceeded()
        if not force and now - self.last_progress_write < 0.25:
            return
        self.last_progress_write = now
        low, high = STAGE_BANDS[stage]
        value = int(low + (high - low) * min(max(fraction, 0.0), 1.0))
        Upload.objects.filter(pk=self.upload.pk).update(stage=stage, progress=value)


def archive_limits() -> archive.Limits:
    return archive.Limits(
        max_members=settings.INGEST_MAX_MEMBERS,
        max_total_bytes=settings.INGEST_MAX_TOTAL_BYTES,
        max_member_bytes=settings.INGEST_MAX_MEMBER_BYTES,
        max_ratio=settings.INGEST_MAX_RATIO,
    )


def upload_ingest(upload_id: int) -> None:
    """Run the ingest of one upload. Safe to deliver twice: a second delivery while the first
    runs does nothing; after an interrupted attempt it undoes that attempt and starts again."""
    with locks.claim(locks.UPLOAD, upload_id) as held:
        if held:
            _run(upload_id)
        else:
            log.info("upload %s is already being ingested by another process", upload_id)


def _run(upload_id: int) -> None:
    upload = Upload.objects.select_related("owner").filter(pk=upload_id).first()
    if upload is None or upload.is_finished:
        return
    state = IngestState(upload)
    # attempts counts the starts; a finished ingest is never started again, so each earlier start
    # was interrupted: its worker was killed (out of memory, SIGKILL) or stopped mid-task.
    if upload.attempts >= settings.TASK_MAX_WORKER_DEATHS:
        _fail(
            state,
            f"The ingest was interrupted {upload.attempts} times (the worker stopped while working on it: "
            "killed, or out of memory) and was given up, so that it cannot stop the worker again; run it "
            "again, and tell the administrator if it happens again.",
        )
        return
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING,
        stage="extracting",
        progress=0,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        error="",
    )
    work = scratch.work_dir(upload.pk)
    scratch.remove_tree(work)
    if upload.attempts > 0:  # redelivered after a crash, or run again: start from a clean slate
        series_build.undo_upload(upload)
    try:
        _ingest(state, work)
    except (archive.ArchiveError, IngestFailed, series_build.SeriesBusy) as exc:
        _fail(state, str(exc))
    except storage.StorageUnavailable as exc:
        log.warning("ingest of upload %s stopped: %s", upload.pk, exc)
        FAILURES.labels("storage").inc()
        _fail(
            state,
            f"The file storage could not be used ({exc}). Nothing of this upload was kept but its archive; "
            "run it again once the storage is back.",
        )
    except SoftTimeLimitExceeded:
        _fail(
            state, f"The ingest took longer than the limit of {settings.INGEST_TIME_LIMIT:g} seconds and was stopped."
        )
    except Exception:
        log.exception("ingest of upload %s failed", upload.pk)
        _fail(
            state,
            "An internal error stopped the ingest. The files that were already stored are kept; "
            "try again, and tell the administrator if it happens again.",
        )
    finally:
        scratch.remove_tree(work)
        state.enter("rendering")
        STAGE_SECONDS.labels("total").observe(time.monotonic() - state.started)


def _ingest(state: IngestState, work) -> None:
    with archive.Archive(_archive_file(state.upload, work), archive_limits()) as source:
        Upload.objects.filter(pk=state.upload.pk).update(files_total=source.member_count)
        for item in source.skipped:
            state.skip(item.name, item.reason)
        with locks.commits_flushed_later():  # redone from the start if this process dies
            members = _scan_headers(state, source, work)
            if not members:
                raise IngestFailed("No DICOM images were found in the archive (see the skipped files for why).")
            _store_and_build(state, source, members)
    _finish_stage(state)  # an ordinary commit: what the block committed is on disk with it


def _archive_file(upload: Upload, work) -> Path:
    """The uploaded ZIP on this host: in place in a local storage folder, else fetched into the
    ingest's work folder."""
    path = storage.local_path(upload.file)
    if path is not None:
        return path
    work.mkdir(parents=True, exist_ok=True)
    path = work / "upload.zip"
    try:
        storage.default().fetch(upload.file, path)
    except FileNotFoundError:
        raise IngestFailed("The uploaded archive is no longer kept; upload it again.") from None
    return path


def _scan_headers(state: IngestState, source: archive.Archive, work) -> dict[int, archive.Member]:
    """Headers from the first bytes of each member: nothing is extracted yet. Answers
    {id(header): member} in archive order. Many members are read by this process and a forked
    helper (``forked``: header parsing holds the GIL), which reads through its own descriptor."""
    total = len(source.members)

    def in_helper():
        own = source.reopened()
        return lambda member: _member_header(own, member, work)

    headers = forked.map_forked(
        lambda member: _member_header(source, member, work),
        source.members,
        settings.INGEST_THREADS,
        in_helper=in_helper,
        on_progress=lambda done: state.progress("extracting", done / total),
    )
    found = {}
    for header, member in zip(headers, source.members, strict=True):
        if isinstance(header, Header):
            found[id(header)] = (header, member)
        else:
            state.skip(header.name, header.reason)
    return found


def _member_header(source: archive.Archive, member: archive.Member, work) -> Header | archive.Skipped:
    size = member.info.file_size
    max_frames = series_build.render_limits().max_frames
    try:
        for prefix_bytes in HEADER_PREFIX_BYTES:
            head = source.prefix(member, prefix_bytes)
            header = read_header_prefix(head, member.name, size, work / f"{member.number:06d}", max_frames)
            if header is not NEED_MORE or len(head) >= size:
                break
        if header is NEED_MORE:  # a long header (big sequences, private data): read all of it, to the file
            # the member will have (the scan's helper too: no two processes ever read the same member)
            work.mkdir(parents=True, exist_ok=True)
            path = work / f"{member.number:06d}"
            source.extract(member, path)
            header = read_header(path, member.name, max_frames)
            path.unlink(missing_ok=True)
    except archive.MemberError as exc:
        return archive.Skipped(member.name, str(exc))
    return header


def _store_and_build(state: IngestState, source: archive.Archive, members: dict) -> None:
    """Rows for every series first, with the first image of each (small stacks: all of it, rendered
    by the other worker meanwhile); then extract and decode the rest."""
    upload = state.upload
    groups: dict[tuple[str, str], list[Header]] = defaultdict(list)
    seen: set[str] = set()
    for header, _member in members.values():
        if header.sop_instance_uid in seen:
            state.skip(header.name, "same SOPInstanceUID as another file in this upload (duplicate)")
            continue
        seen.add(header.sop_instance_uid)
        groups[(header.study_instance_uid, header.series_instance_uid)].append(header)
    extracted: dict[int, str | None] = {}  # id(header) -> None, or why it could not be extracted

    def fetch(headers: list[Header]) -> None:
        todo = [h for h in headers if id(h) in members and id(h) not in extracted]
        if not todo:
            return
        mean_bytes = sum(h.file_size for h in todo) / len(todo)
        threads = parallel.threads_for(mean_bytes, parallel.EXTRACT_THREADED_BYTES, settings.INGEST_THREADS)
        for folder in {h.path.parent for h in todo}:
            folder.mkdir(parents=True, exist_ok=True)
        stored_in_place = storage.is_local()  # else each file is copied to the storage
        for header, problem in zip(
            todo,
            parallel.map_on(threads, lambda h: _extract(source, members[id(h)][1], h, stored_in_place), todo),
            strict=True,
        ):
            extracted[id(header)] = problem

    def build(plan: series_build.SeriesPlan) -> None:
        fetch(plan.fresh)
        position = {id(h): i for i, h in enumerate(plan.headers)}
        failures = {position[id(h)]: extracted[id(h)] for h in plan.fresh if extracted.get(id(h))}
        if failures:
            series_build.drop_failures(plan, failures, state.skipped, upload)
        else:
            series_build.decode_and_queue(plan, state.skipped, upload)

    # Largest series first: the one a viewer most likely opens gets its images first. A stack that
    # render chunks draw (small plain images: extracting it is all the ingest does) is built at once,
    # so that the other worker renders it while this one goes on; every other series gets its rows
    # and first image now, and its decode after all of them.
    ordered = sorted(groups.values(), key=len, reverse=True)
    later = []
    for number, group in enumerate(ordered, start=1):
        plan = series_build.store_series(upload, group, state.skipped)
        if plan is not None and series_build.renders_in_chunks(plan):
            build(plan)
        elif plan is not None:
            series_build.write_first_image(plan, fetch)
            later.append(plan)
        state.progress("storing", number / len(ordered))
    for number, plan in enumerate(later, start=1):
        state.progress("decoding", (number - 1) / len(later), force=True)
        build(plan)


def _extract(source: archive.Archive, member: archive.Member, header: Header, stored_in_place: bool) -> str | None:
    """Write a member where the ingest reads it (``header.path``, in a folder that exists) and,
    unless that is its place in a local storage folder, store it; None, or why it could not be."""
    try:
        written = source.extract(member, header.path)
    except archive.MemberError as exc:
        return str(exc)
    if written != header.file_size:
        header.path.unlink(missing_ok=True)
        return "corrupt in the archive (its size differs from the ZIP directory's)"
    if not stored_in_place:
        storage.save_file(header.stored_name, header.path)
    return None


def _finish_stage(state: IngestState) -> None:
    upload = state.upload
    Upload.objects.filter(pk=upload.pk).update(
        skipped=state.skipped,
        files_skipped=len(state.skipped),
        stage="rendering",
        progress=STAGE_BANDS["rendering"][0],
    )
    if not upload.series.exists() and not upload.studies.exists():
        reasons = {item["reason"] for item in state.skipped}
        message = "None of the DICOM files could be stored."
        if len(reasons) == 1:
            message += f" Every file was skipped: {reasons.pop()}."
        _fail(state, message)
        return
    rendering.finish_uploads_if_rendered(upload_ids=[upload.pk])


def _fail(state: IngestState, message: str) -> None:
    """End the upload failed. What it had stored goes too (nothing half-written stays); its ZIP
    is kept so that it can be run again."""
    series_build.undo_upload(state.upload)
    changed = (
        Upload.objects.filter(pk=state.upload.pk)
        .exclude(status=Upload.Status.FAILED)
        .update(
            status=Upload.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
            stage="failed",
            skipped=state.skipped,
            files_skipped=len(state.skipped),
        )
    )
    if changed:
        FAILURES.labels("ingest").inc()
        state.upload.refresh_from_db()
        rendering.audit_ingest_end(state.upload, Upload.Status.FAILED, message)


def upload_progress(upload: Upload) -> int:
    """0-100: the ingest stages, then the share of this upload's images already rendered."""
    if upload.status == Upload.Status.DONE:
        return 100
    if upload.stage != "rendering":
        return upload.progress
    totals = upload.series.aggregate(total=Sum("images_total"), done=Sum("images_done"))
    low, high = STAGE_BANDS["rendering"]
    if not totals["total"]:
        return low
    return int(low + (high - low) * min(1.0, totals["done"] / totals["total"]))
