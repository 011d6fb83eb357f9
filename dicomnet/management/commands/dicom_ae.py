"""The registry of remote DICOM AEs from the command line (the admin edits the same rows)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dicomnet.models import RemoteAE
from dicomnet.services import PERMISSIONS, RegistryError, remote_ae_add, remote_ae_remove


class Command(BaseCommand):
    help = "Add, list or remove the remote DICOM AEs allowed to store to, query and retrieve from this server."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="register a remote AE")
        add.add_argument("ae_title", metavar="TITLE")
        add.add_argument("--host", required=True, help="its host name or address (C-MOVE sends there)")
        add.add_argument("--port", required=True, help="its DICOM port")
        add.add_argument("--owner", required=True, help="the user who owns what it stores and whose studies it sees")
        add.add_argument("--allow", default="store", help="comma-separated: store, find, retrieve (default: store)")
        add.add_argument("--description", default="")
        actions.add_parser("list", help="list the registered AEs")
        remove = actions.add_parser("remove", help="unregister a remote AE")
        remove.add_argument("ae_title", metavar="TITLE")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"handle_{action}")(**options)
        except RegistryError as exc:
            raise CommandError(str(exc)) from None

    def handle_add(self, *, ae_title, host, port, owner, allow, description, **_):
        try:
            port_number = int(port)
        except ValueError:
            raise CommandError(f"--port {port!r} is not a number") from None
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user named {owner!r}")
        words = {word.strip().lower() for word in allow.split(",") if word.strip()}
        if RemoteAE.objects.filter(ae_title=ae_title.strip(" ")).exists():
            raise CommandError(f"a remote AE titled {ae_title.strip()!r} is already registered")
        remote = remote_ae_add(
            ae_title=ae_title, host=host, port=port_number, owner=user, allow=words, description=description
        )
        self.stdout.write(f"added {remote.ae_title} ({remote.host}:{remote.port}), owner {user.get_username()}")

    def handle_list(self, **_):
        remotes = RemoteAE.objects.select_related("owner").order_by("ae_title")
        if not remotes:
            self.stdout.write("no remote AEs registered")
        for remote in remotes:
            allowed = ",".join(word for word, field in PERMISSIONS.items() if getattr(remote, field)) or "-"
            owner = remote.owner.get_username()
            self.stdout.write(f"{remote.ae_title:<16}  {remote.host}:{remote.port}  owner={owner}  allow={allowed}")

    def handle_remove(self, *, ae_title, **_):
        remote_ae_remove(ae_title=ae_title)
        self.stdout.write(f"removed {ae_title.strip()}")
