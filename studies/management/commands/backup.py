from django.core.management.base import BaseCommand, CommandError

from studies.services.backup import BackupError, backup


class Command(BaseCommand):
    help = "Back up the database and the stored originals together, into a new folder (see README: Backups)."

    def add_arguments(self, parser):
        parser.add_argument("folder", help="a new or empty folder")

    def handle(self, *args, folder, **options):
        try:
            manifest = backup(folder)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Backed up the database and {manifest['originals']} original file(s) to {folder}.")
        if manifest["missing"]:
            self.stdout.write(
                f"{len(manifest['missing'])} file(s) were deleted while the backup ran (see manifest.json)."
            )
