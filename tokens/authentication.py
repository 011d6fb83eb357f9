"""``Authorization: Token <key>`` or ``Authorization: Bearer <key>`` (DICOMweb clients send Bearer).

A key is a named API token (``tokens.ApiToken``, stored hashed, revocable; ``POST /api/tokens/``
and ``POST /api/auth/token/`` make them). There are no other keys.
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
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, key

    def authenticate_header(self, request):
        return 'Token realm="api"'
