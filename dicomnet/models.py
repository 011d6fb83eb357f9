"""Remote application entities allowed to talk DIMSE to this server (C-ECHO, C-STORE, C-FIND,
C-GET, C-MOVE). What a remote AE may find or retrieve is exactly what its owner may see."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def validate_ae_title(value: str) -> None:
    """PS3.5 6.2, AE: at most 16 characters of the default repertoire, no backslash or control
    characters, not only spaces (leading and trailing spaces are not significant)."""
    title = value.strip(" ")
    if not title:
        raise ValidationError("An AE title cannot be empty.")
    if len(title) > 16:
        raise ValidationError("An AE title has at most 16 characters.")
    if any(ch == "\\" or not (" " <= ch <= "~") for ch in title):
        raise ValidationError("An AE title holds printable ASCII characters only, without backslash.")


class RemoteAE(models.Model):
    ae_title = models.CharField("AE title", max_length=16, unique=True, validators=[validate_ae_title])
    host = models.CharField(max_length=255, help_text="Where C-MOVE sends to (and C-STORE comes from).")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="remote_aes",
        help_text="Instances stored by this AE belong to this user; it finds and retrieves what this user sees.",
    )
    may_store = models.BooleanField("store (C-STORE to us)", default=True)
    may_find = models.BooleanField("find (C-FIND)", default=False)
    may_retrieve = models.BooleanField("retrieve (C-GET, C-MOVE to it)", default=False)
    description = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ae_title"]
        verbose_name = "remote AE"
        verbose_name_plural = "remote AEs"

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.host}:{self.port})"

    def save(self, *args, **kwargs):
        self.ae_title = self.ae_title.strip(" ")
        super().save(*args, **kwargs)
