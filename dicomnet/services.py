"""What the DICOM network service does to the database: who may associate (the registry of remote
AEs and the unknown-AE setting), what an association stored (one Upload), and their audit events.
Audit details name AE titles, addresses and counts, never patients."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from dicomnet.models import RemoteAE
from studies.services.imports import upload_staged

A = AuditEvent.Action
log = logging.getLogger(__name__)

# A-ASSOCIATE-RJ diagnostics (PS3.8 9.3.4), source "DICOM UL service-user"
NO_REASON = 0x01
CALLING_AE_NOT_RECOGNISED = 0x03
CALLED_AE_NOT_RECOGNISED = 0x07


@dataclass(frozen=True)
class Admission:
    """The answer to an association request: who owns what it stores, or why it is rejected."""

    remote: RemoteAE | None = None  # None: an unknown AE let in by DICOM_ACCEPT_UNKNOWN_AE
    owner: object | None = None
    rejected: str = ""  # the reason, for the audit trail
    diagnostic: int = 0
    transient: bool = False  # rejected-transient (try again later), else rejected-permanent
    # Whether the call comes from the AE's registered host. Storing may come from anywhere (behind NAT
    # every modality seems to come from one address: DICOM_CHECK_HOST decides); finding and
    # retrieving hand out the owner's patients, so a title alone, which anyone can claim, is not enough.
    from_host: bool = False

    @property
    def may_store(self) -> bool:
        return self.remote.may_store if self.remote is not None else self.owner is not None

    @property
    def may_find(self) -> bool:
        return self.remote is not None and self.remote.may_find and self.from_host

    @property
    def may_retrieve(self) -> bool:
        return self.remote is not None and self.remote.may_retrieve and self.from_host


def _peer(address: str):
    """Stands in for a request in audit.services.record: the peer's address as the client IP."""
    address = (address or "").split("%")[0] or None  # an IPv6 zone is no part of the address
    return SimpleNamespace(META={"REMOTE_ADDR": address, "HTTP_USER_AGENT": "DICOM"}, user=None)


def printable(title: str) -> str:
    return "".join(ch if " " <= ch <= "~" else "?" for ch in title)[:16]


def admit(*, calling: str, called: str, address: str) -> Admission:
    """Look the calling AE title up (trailing spaces are not significant) and decide."""
    calling, called = calling.strip(" "), called.strip(" ")
    if called != settings.DICOM_AE_TITLE.strip(" "):
        admission = Admission(rejected="called AE title not recognised", diagnostic=CALLED_AE_NOT_RECOGNISED)
    else:
        admission = _admit_calling(calling, address)
    if admission.rejected:
        record(
            A.DICOM_REJECTED,
            request=_peer(address),
            outcome=AuditEvent.Outcome.FAILURE,
            detail={
                "calling_ae_title": printable(calling),
                "called_ae_title": printable(called),
                "address": address,
                "reason": admission.rejected,
            },
        )
    return admission


def _admit_calling(calling: str, address: str) -> Admission:
    remote = RemoteAE.objects.select_related("owner").filter(ae_title=calling).first()
    if remote is None:
        owner = unknown_ae_owner()
        if owner is None:
            return Admission(rejected="calling AE title not recognised", diagnostic=CALLING_AE_NOT_RECOGNISED)
        return Admission(owner=owner)
    if not remote.owner.is_active:
        return Admission(rejected="the AE's owner account is inactive", diagnostic=CALLING_AE_NOT_RECOGNISED)
    from_host = host_matches(remote.host, address)
    if settings.DICOM_CHECK_HOST and not from_host:
        return Admission(rejected="calling address is not the AE's host", diagnostic=CALLING_AE_NOT_RECOGNISED)
    return Admission(remote=remote, owner=remote.owner, from_host=from_host)


def unknown_ae_owner():
    """The active user named by DICOM_ACCEPT_UNKNOWN_AE, or None (unknown AEs are rejected)."""
    username = settings.DICOM_ACCEPT_UNKNOWN_AE
    if not username:
        return None
    return get_user_model().objects.filter(username=username, is_active=True).first()


def check_dicom_settings() -> str:
    """Why the DICOM settings cannot be served (a sentence), or ""."""
    from django.core.exceptions import ValidationError

    from dicomnet.models import validate_ae_title

    try:
        validate_ae_title(settings.DICOM_AE_TITLE)
    except ValidationError as exc:
        return f"DICOM_AE_TITLE {settings.DICOM_AE_TITLE!r}: {' '.join(exc.messages)}"
    if not 1 <= settings.DICOM_PORT <= 65535:
        return f"DICOM_PORT {settings.DICOM_PORT} is not a TCP port (1-65535)."
    if settings.DICOM_ACCEPT_UNKNOWN_AE and unknown_ae_owner() is None:
        return f"DICOM_ACCEPT_UNKNOWN_AE names no active user ({settings.DICOM_ACCEPT_UNKNOWN_AE!r})."
    return ""


def host_matches(host: str, address: str) -> bool:
    """Whether ``address`` is one of the addresses ``host`` (a name or an address) resolves to."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return address in addresses


def operation_refused(*, admission: Admission, operation: str, calling: str, address: str) -> None:
    """A C-STORE, C-FIND, C-GET or C-MOVE the calling AE may not do."""
    record(
        A.DICOM_REJECTED,
        request=_peer(address),
        user=admission.owner,
        outcome=AuditEvent.Outcome.FAILURE,
        detail={"calling_ae_title": printable(calling), "address": address, "operation": operation},
    )


def association_stored(
    *, admission: Admission, calling: str, address: str, staged: Path | None, stored: int, failed: int, ended: str
):
    """What an association stored becomes one Upload of the AE's owner (the ingest then runs as
    for any upload); one DICOM_STORE event says how many instances came and went."""
    upload = None
    if staged is not None:
        title = printable(calling).replace("/", "_") or "unknown AE"
        name = f"DICOM from {title} {timezone.localtime():%Y-%m-%d %H:%M:%S}"
        upload = hand_over(owner=admission.owner, staged=staged, name=name)
    if stored or failed:
        record(
            A.DICOM_STORE,
            request=_peer(address),
            user=admission.owner,
            obj=upload,
            outcome=AuditEvent.Outcome.SUCCESS if upload is not None else AuditEvent.Outcome.FAILURE,
            detail={
                "calling_ae_title": printable(calling),
                "address": address,
                "instances": stored,
                "failed": failed,
                "upload_id": upload.pk if upload is not None else None,
                "ended": ended,
            },
        )
    return upload


def hand_over(*, owner, staged: Path, name: str):
    """The staged ZIP as an Upload; if that fails (storage or database down), the ZIP stays in
    the scratch folder (swept after a day) for an operator to import, and the log says where."""
    kept = staged.with_name(f"{staged.stem}-unsent.zip")
    os.link(staged, kept)  # upload_staged removes the file it is given, whatever happens
    try:
        upload = upload_staged(owner=owner, path=staged, name=name)
    except Exception:
        staged.unlink(missing_ok=True)
        log.exception("received DICOM instances could not become an upload; kept in %s", kept)
        return None
    kept.unlink(missing_ok=True)
    return upload


# --- the registry -------------------------------------------------------------------------------

PERMISSIONS = {"store": "may_store", "find": "may_find", "retrieve": "may_retrieve"}


class RegistryError(ValueError):
    """A remote AE cannot be added or removed; the message says why."""


def remote_ae_add(*, ae_title: str, host: str, port: int, owner, allow: set[str], description: str = "") -> RemoteAE:
    """Register a remote AE (validated as the admin validates it); audited as an admin change."""
    from django.core.exceptions import ValidationError

    unknown = set(allow) - set(PERMISSIONS)
    if unknown:
        raise RegistryError(f"unknown permission {', '.join(sorted(unknown))} (use store, find, retrieve)")
    remote = RemoteAE(ae_title=ae_title, host=host, port=port, owner=owner, description=description)
    for word, field in PERMISSIONS.items():
        setattr(remote, field, word in allow)
    remote.ae_title = remote.ae_title.strip(" ")
    try:
        remote.full_clean()
    except ValidationError as exc:
        messages = [f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items()]
        raise RegistryError("; ".join(messages)) from None
    remote.save()
    record(A.ADMIN_CHANGE, obj=remote, detail={"action": "added", "via": "dicom_ae"})
    return remote


def remote_ae_remove(*, ae_title: str) -> None:
    remote = RemoteAE.objects.filter(ae_title=ae_title.strip(" ")).first()
    if remote is None:
        raise RegistryError(f"no remote AE titled {printable(ae_title)!r}")
    record(A.ADMIN_CHANGE, obj=remote, detail={"action": "deleted", "via": "dicom_ae"})
    remote.delete()
