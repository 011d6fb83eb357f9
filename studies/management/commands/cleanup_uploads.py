from django.core.management.base import BaseCommand

from studies.services.cleanup import cleanup


class Command(BaseCommand):
    help = (
        "Remove abandoned temporary files, extraction folders, old failed uploads' ZIPs and files no row "
        "refers to; end uploads stuck in queued/processing. Safe to run any time (e.g. hourly from cron)."
    )

    def handle(self, *args, **options):
        report = cleanup()
        self.stdout.write(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in report.items()))
