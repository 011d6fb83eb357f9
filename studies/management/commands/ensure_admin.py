"""Create the first administrator, and keep its password findable until it is changed.

The password is printed in a box that says how to change and recover it, and kept in
``ADMIN_PASSWORD_FILE`` (default ``var/admin_password``, mode 0600): the web server's access log
(one line per image) soon scrolls it off the console. Later runs (every ``make run`` and container
start) say where that file is while it still holds the password, and remove it once the password
has been changed. ``ADMIN_EMAIL`` gives the account an e-mail address, so "Forgot your password?"
works for it.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

RECOVER = "python manage.py changepassword {username}"


class Command(BaseCommand):
    help = (
        "Create an 'admin' superuser with a random password if no superuser exists yet; the password is "
        "printed and kept in ADMIN_PASSWORD_FILE (0600) until it is changed. --show prints it again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--show", action="store_true", help="Print the first admin password again, if it is still unchanged."
        )

    def handle(self, *args, username, show, **options):
        User = get_user_model()
        path = settings.ADMIN_PASSWORD_FILE
        email = settings.ADMIN_EMAIL
        admin = User.objects.filter(is_superuser=True).order_by("pk").first()
        if admin is None:
            password = secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(username=username, email=email, password=password)
            kept = self.keep(path, password)
            self.box(admin, password, kept, created=True)
            return
        if email and not admin.email:
            admin.email = email
            admin.save(update_fields=["email"])
            self.stdout.write(f"The administrator '{admin.get_username()}' now has the address from ADMIN_EMAIL.")
        password = self.stored(path)
        if password is None:
            if show:
                self.stdout.write(
                    "No first administrator password is kept (it was changed, or never kept here). "
                    f"Set a new one with: {RECOVER.format(username=admin.get_username())}"
                )
            return
        if not admin.check_password(password):
            path.unlink(missing_ok=True)  # changed since: the file only misleads now
            self.stdout.write(f"The first administrator password was changed; {path} is removed.")
            return
        if show:
            self.box(admin, password, kept=True, created=False)
        else:
            self.stdout.write(
                f"The administrator '{admin.get_username()}' still has its first password, kept in {path} "
                "(show it with: python manage.py ensure_admin --show). Change it after signing in."
            )

    @staticmethod
    def keep(path, password: str) -> bool:
        """Write the password to an owner-only file (False where that is not possible)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(password + "\n")
        except OSError:
            return False
        return True

    @staticmethod
    def stored(path) -> str | None:
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def box(self, admin, password: str, kept: bool, created: bool) -> None:
        username = admin.get_username()
        lines = [
            "dicomviewer administrator account" + (" created" if created else ""),
            "",
            f"  username:  {username}",
            f"  password:  {password}",
            f"  e-mail:    {admin.email or '(none: set ADMIN_EMAIL for password reset by mail)'}",
            "",
            (
                f"The password is kept in {settings.ADMIN_PASSWORD_FILE} (owner-only) until you change it;"
                if kept
                else "The password could not be kept in a file: note it now."
            ),
            "show it again with: python manage.py ensure_admin --show" if kept else "",
            "Change it after signing in: user menu > Change password.",
            f"Forgot it? On the server: {RECOVER.format(username=username)}",
        ]
        lines = [line for index, line in enumerate(lines) if line or index in (1, 5)]
        width = max(len(line) for line in lines) + 2
        border = "+" + "-" * width + "+"
        body = "\n".join(f"| {line.ljust(width - 2)} |" for line in lines)
        self.stdout.write(f"{border}\n{body}\n{border}")
