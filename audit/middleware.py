"""The request being answered, for audit events written where Django hands over no request
(model signals: a password set, a user deactivated, an admin LogEntry)."""

from __future__ import annotations

import contextvars

_current: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)


def current_request():
    """The request this thread (or task) is answering, or None (worker, command, shell)."""
    return _current.get()


class CurrentRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current.set(request)
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
