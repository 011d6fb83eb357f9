"""Named API tokens: a user may hold several, each revocable. Only a hash of the key is stored."""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """One API token of a user, shown once when created; sent as ``Token <key>`` or ``Bearer <key>``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)  # the first characters of the key, to tell tokens apart
    key_hash = models.CharField(max_length=64, unique=True)  # sha256 hex of the key
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
