from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ohif import install


class Command(BaseCommand):
    help = (
        f"Install OHIF Viewer {install.VERSION} (npm @ohif/app, integrity-checked) into OHIF_DIR, "
        "served at /ohif/ (README: OHIF Viewer)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--registry", default=install.REGISTRY, help="npm registry (default: %(default)s)")
        parser.add_argument("--tarball", type=Path, help="a downloaded app-<version>.tgz instead of the registry")
        parser.add_argument("--force", action="store_true", help="install again even if this version is there")

    def handle(self, *args, registry, tarball, force, **options):
        folder = Path(settings.OHIF_DIR)
        if not force and install.is_current(folder):
            self.stdout.write(f"OHIF Viewer {install.VERSION} is installed in {folder}.")
            return
        try:
            done = install.install(folder, registry=registry, tarball=tarball, force=True)
        except (install.InstallError, OSError) as exc:
            raise CommandError(f"OHIF Viewer {install.VERSION} was not installed: {exc}") from None
        megabytes = done.bytes / 1024**2
        self.stdout.write(f"OHIF Viewer {done.version} installed in {folder} ({done.files} files, {megabytes:.0f} MB).")
