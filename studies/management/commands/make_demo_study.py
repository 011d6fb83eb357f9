"""Generate a synthetic demo CT (a chest-abdomen phantom) and import it for a user."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import record
from studies import scratch
from studies.demo import write_demo_ct
from studies.management.commands.import_dicom import add_wait_arguments, find_user, report_and_wait
from studies.services.imports import upload_staged, zip_folder


class Command(BaseCommand):
    help = "Generate a realistic synthetic CT study (phantom with organs, bones, lungs) and import it for a user."

    def add_arguments(self, parser):
        parser.add_argument("--slices", type=int, default=64, help="number of axial slices (default 64)")
        parser.add_argument("--slice-mm", type=float, default=5.0, help="slice spacing in mm (default 5)")
        add_wait_arguments(parser)

    def handle(self, *args, **options):
        user = find_user(options["user"])
        if not 1 <= options["slices"] <= 1000:
            raise CommandError("--slices must be between 1 and 1000.")
        with tempfile.TemporaryDirectory(dir=scratch.tmp_dir(), prefix="demo-") as folder:
            write_demo_ct(Path(folder), slices=options["slices"], slice_mm=options["slice_mm"])
            upload = upload_staged(owner=user, path=zip_folder(Path(folder)), name="demo-ct.zip")
        self.stdout.write(f"generated a {options['slices']}-slice demo CT")
        record(
            AuditEvent.Action.UPLOAD_RECEIVED,
            user=user,
            obj=upload,
            detail={"size_bytes": upload.size_bytes, "source": "make_demo_study"},
        )
        report_and_wait(self, upload, options)
