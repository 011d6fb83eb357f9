"""``Authorization: Token <key>`` or ``Authorization: Bearer <key>`` (DICOMweb clients send Bearer).

A key is either a named API token (``tokens.ApiToken``, stored hashed, revocable) or the
per-user key of ``POST /api/auth/token/`` (DRF's authtoken table, kept for compatibility).
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from tokens.services import token_for_key

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: send 'Token <key>' or 'Bearer <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        user = self._user_for(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, key

    @staticmethod
    def _user_for(key: str):
        token = token_for_key(key)
        if token is not None:
            return token.user
        from rest_framework.authtoken.models import Token

        legacy = Token.objects.select_related("user").filter(key=key).first()
        return legacy.user if legacy else None

    def authenticate_header(self, request):
        return 'Token realm="api"'
