"""What every request goes through before anything else (dicomviewer/wsgi.py), in this order:

1. **Proxies.** ``REMOTE_ADDR`` becomes the client's address as the nearest trusted proxy saw it:
   ``X-Forwarded-For`` is read from the right, past the addresses of trusted proxies
   (``TRUSTED_PROXIES``, networks), and the first other address is the client. A client cannot
   choose its own address by sending the header: entries it wrote sit left of that one. Forwarded
   headers (``X-Forwarded-*``, ``X-Request-ID``) are kept only when the request comes from a trusted
   proxy, and removed otherwise, so Django (host, scheme), the rate limits, django-axes and the
   audit trail all see the same, checked facts.
2. **A request id**: a trusted proxy's ``X-Request-ID``, else a new one; on every log line written
   while the request is answered, and in the ``X-Request-ID`` response header.
3. **/healthz**, answered here whatever the ``Host`` (container health checks and load balancers ask
   by address, not by the site's name).
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import os
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")
UNTRUSTED_DROP = (*FORWARDED, "HTTP_X_REQUEST_ID", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def trusted_networks(entries) -> tuple:
    """TRUSTED_PROXIES parsed (Front keeps the answer until the setting changes)."""
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from None


def parse_address(text: str):
    """An IP address from a header entry ("203.0.113.7", "[2001:db8::1]:443", "198.51.100.2:5000")."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks) -> tuple[str, bool]:
    """(the client's address, whether the direct peer is a trusted proxy)."""
    if not is_trusted(parse_address(peer), networks):
        return peer, False
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    nearest = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # garbage a client wrote: the nearest trusted proxy's view stands
        if not is_trusted(address, networks):
            return str(address), True
        nearest = str(address)
    return nearest, True


_networks: list = []  # TRUSTED_PROXIES, parsed once (and again when the setting changes)


def _read_networks():
    _networks[:] = [trusted_networks(settings.TRUSTED_PROXIES)]
    return _networks[0]


@receiver(setting_changed)
def _forget_networks(**kwargs):
    _networks.clear()


class Front:
    """The WSGI wrapper around the whole application (see the module's docstring)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        networks = _networks[0] if _networks else _read_networks()
        peer = environ.get("REMOTE_ADDR", "")
        if networks:
            client, via_proxy = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR", ""), networks)
        else:
            client, via_proxy = peer, False
        environ["REMOTE_ADDR"] = client
        environ["dicomviewer.peer"] = peer
        if not via_proxy:
            for name in UNTRUSTED_DROP:
                environ.pop(name, None)
        given = environ.get("HTTP_X_REQUEST_ID", "")
        rid = given if REQUEST_ID.match(given) else os.urandom(16).hex()
        environ["HTTP_X_REQUEST_ID"] = rid
        token = request_id.set(rid)

        def start(status, headers, exc_info=None):
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers) if exc_info is None else start_response(status, headers, exc_info)

        try:
            if environ.get("PATH_INFO") == "/healthz":
                return self.healthz(start)
            return self.app(environ, start)
        finally:
            request_id.reset(token)

    @staticmethod
    def healthz(start_response):
        from dicomviewer.health import health_checks

        healthy, body = health_checks()
        data = json.dumps(body).encode()
        start_response(
            "200 OK" if healthy else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")],
        )
        return [data]


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or "-" outside a request) to every log record."""

    def filter(self, record):
        record.request_id = request_id.get()
        return True
