from django.core.management.base import BaseCommand, CommandError

from studies.services.backup import BackupError, rebuild_images, restore


class Command(BaseCommand):
    help = "Restore a backup into a new, migrated, empty database and the configured storage; queue image rebuilds."

    def add_arguments(self, parser):
        parser.add_argument("folder", help="a folder made by manage.py backup")

    def handle(self, *args, folder, **options):
        try:
            report = restore(folder)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        queued = rebuild_images()
        self.stdout.write(
            f"Restored {report['studies']} studies and {report['originals']} original file(s); "
            f"{queued} series queued to have their images rendered again (a worker does it)."
        )
