"""Import a ZIP or a folder of DICOM files for a user, through the same pipeline as an upload."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import record
from studies.services.imports import upload_from_disk, upload_wait
from studies.services.uploads import InvalidUpload


def find_user(username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"No user named '{username}' (create one with: manage.py createsuperuser).") from None


def report_and_wait(command: BaseCommand, upload, options) -> None:
    """Print the upload id, then (unless --no-wait) progress until the ingest ends."""
    from studies.services.ingest import upload_progress

    command.stdout.write(f"upload {upload.pk} queued")
    if options["no_wait"]:
        command.stdout.write(f"not waiting: follow it at /api/uploads/{upload.pk}/")
        return

    def show(current):
        command.stdout.write(f"  {current.status:<10} {current.stage:<10} {upload_progress(current):3d}%")

    upload = upload_wait(upload, timeout=options["timeout"], on_change=show)
    if not upload.is_finished:
        raise CommandError(
            f"upload {upload.pk} is still {upload.stage} after {options['timeout']:.0f} s "
            "(is a worker running? `make run` starts one)."
        )
    command.stdout.write(
        f"upload {upload.pk} {upload.status}: {upload.files_dicom} file(s) stored, {upload.files_skipped} skipped, "
        f"studies {list(upload.studies.values_list('pk', flat=True))}"
    )
    for item in upload.skipped[:20]:
        command.stdout.write(f"  skipped {item['name']}: {item['reason']}")
    if upload.status == upload.Status.FAILED:
        raise CommandError(upload.error or "the ingest failed")


def add_wait_arguments(parser) -> None:
    parser.add_argument("--user", required=True, help="owner of the imported studies (username)")
    parser.add_argument("--no-wait", action="store_true", help="queue the ingest and return at once")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the ingest (default 3600)")


class Command(BaseCommand):
    help = "Import a ZIP file or a folder of DICOM files for a user (bulk loads without HTTP)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .zip file or a folder of DICOM files")
        add_wait_arguments(parser)

    def handle(self, *args, **options):
        user = find_user(options["user"])
        path = Path(options["path"]).expanduser()
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            upload = upload_from_disk(owner=user, path=path)
        except InvalidUpload as exc:
            raise CommandError(str(exc)) from None
        record(
            AuditEvent.Action.UPLOAD_RECEIVED,
            user=user,
            obj=upload,
            detail={"size_bytes": upload.size_bytes, "source": "import_dicom"},
        )
        report_and_wait(self, upload, options)
