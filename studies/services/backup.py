"""Backing up and restoring the database and the stored originals together.

A backup is a folder:

    manifest.json        what it holds, when it was made, which originals were missing
    database.json        every row that matters (Django's dumpdata): accounts, groups, API tokens,
                         patients, studies, series, instances, uploads, shares, the audit trail
    files/originals/...  every stored original, byte for byte, under its storage name

The rows are read in one snapshot (one transaction; REPEATABLE READ on PostgreSQL), then the
originals those rows name are copied: originals never change once stored, so the pair is
consistent; one deleted between the two steps is listed as missing (its study was being deleted).
Rendered images are not kept: ``rebuild_images`` makes them again from the originals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from studies import storage
from studies.models import Instance, Series, Study, Upload
from studies.services.queue import Task, enqueue

FORMAT = 1
# what a new database makes by itself (contenttypes, permissions) or what is only transient
EXCLUDED = ["contenttypes", "auth.permission", "sessions", "axes", "admin.logentry"]
APPS = ["auth", "tokens", "studies", "audit"]


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why."""


def backup(target: Path) -> dict:
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a backup goes into a new folder.")
    (target / "files").mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        call_command(
            "dumpdata",
            *APPS,
            exclude=EXCLUDED,
            natural_foreign=True,
            output=str(target / "database.json"),
            verbosity=0,
        )
        originals = list(Instance.objects.values_list("file", flat=True))
    missing = []
    for name in originals:
        destination = target / "files" / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with storage.open_stream(name) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
        except FileNotFoundError:
            destination.unlink(missing_ok=True)
            missing.append(name)
    manifest = {
        "format": FORMAT,
        "created": timezone.now().isoformat(),
        "database": connection.vendor,
        "originals": len(originals) - len(missing),
        "missing": missing,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def restore(source: Path) -> dict:
    """Into a new (migrated, empty) database and any storage: originals first, then the rows.
    Unfinished uploads end failed; every series is marked for ``rebuild_images``."""
    source = Path(source)
    try:
        manifest = json.loads((source / "manifest.json").read_text())
    except (OSError, ValueError):
        raise BackupError(f"{source} is not a backup (no readable manifest.json).") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup of another format ({manifest.get('format')}).")
    if get_user_model().objects.exists() or Study.objects.exists():
        raise BackupError(
            "The database is not empty: restore into a new one (manage.py migrate, then restore, "
            "before any account is created)."
        )
    files = source / "files"
    restored = 0
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        storage.save_file(path.relative_to(files).as_posix(), path)
        restored += 1
    call_command("loaddata", str(source / "database.json"), verbosity=0)
    interrupted = Upload.objects.filter(status__in=[Upload.Status.QUEUED, Upload.Status.PROCESSING])
    interrupted.update(
        status=Upload.Status.FAILED,
        stage="failed",
        file="",
        error="The upload was being processed when the backup was made; upload it again.",
    )
    Upload.objects.exclude(file="").update(file="")  # archives are not kept in backups
    Series.objects.update(render_status=Series.Render.PENDING, images_done=0)
    return {"originals": restored, "series": Series.objects.count(), "studies": Study.objects.count()}


def rebuild_images(series_ids: list[int] | None = None) -> int:
    """Queue every series (or these) to be laid out, decoded and rendered again from its originals."""
    queryset = Series.objects.all() if series_ids is None else Series.objects.filter(pk__in=series_ids)
    ids = list(queryset.values_list("pk", flat=True))
    for series_id in ids:
        enqueue(Task.SERIES_REBUILD, series_id)
    return len(ids)
