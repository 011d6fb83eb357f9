from django.core.management.base import BaseCommand

from studies.services.backup import rebuild_images


class Command(BaseCommand):
    help = "Render every series' images again from its stored originals (a worker does it), or only these series."

    def add_arguments(self, parser):
        parser.add_argument("series", nargs="*", type=int, help="series ids (default: every series)")

    def handle(self, *args, series, **options):
        queued = rebuild_images(series or None)
        self.stdout.write(f"{queued} series queued to have their images rendered again.")
