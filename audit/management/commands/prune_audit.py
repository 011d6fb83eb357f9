from django.conf import settings
from django.core.management.base import BaseCommand

from audit.services import audit_prune


class Command(BaseCommand):
    help = "Delete audit events older than AUDIT_RETENTION_DAYS (the only way events are ever removed)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="override AUDIT_RETENTION_DAYS")

    def handle(self, *args, days=None, **options):
        days = settings.AUDIT_RETENTION_DAYS if days is None else days
        if days <= 0:
            self.stdout.write("Retention is 0 (keep forever): nothing pruned.")
            return
        deleted = audit_prune(days)
        self.stdout.write(f"Deleted {deleted} audit event(s) older than {days} days.")
