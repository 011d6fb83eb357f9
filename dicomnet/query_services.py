"""Services of the Query/Retrieve SCP: finding matches, choosing instances and a C-MOVE
destination, and the audit events of these acts (DICOM_FIND, DICOM_SEND). The DIMSE handlers
(find.py, retrieve.py) stay thin and call these.

Audit details name keys, counts, AE titles and study ids, never values or patient names.
"""

from __future__ import annotations

from audit.models import AuditEvent
from audit.services import record
from dicomnet.identifiers import Identifier, Refused, instances_matching, matches
from dicomnet.models import RemoteAE
from dicomnet.statuses import Status
from dicomweb import qido
from studies.models import Instance

# Number of Remaining/Completed/Failed Sub-operations are US (PS3.7 C.4.2.1.5): no C-GET or
# C-MOVE can report more instances than this.
MAX_SUBOPERATIONS = 65535


def find_matches(*, remote: RemoteAE, identifier: Identifier) -> tuple[list, bool]:
    """The first qido.MAX_RESULTS matches (the QIDO limit), and whether there were more. Audited."""
    try:
        rows = list(matches(remote.owner, identifier)[: qido.MAX_RESULTS + 1])
    except qido.QueryError as exc:
        _record_find(remote, identifier, None, AuditEvent.Outcome.FAILURE)
        raise Refused(Status.CANNOT_UNDERSTAND, str(exc)) from None
    truncated = len(rows) > qido.MAX_RESULTS
    rows = rows[: qido.MAX_RESULTS]
    _record_find(remote, identifier, len(rows), AuditEvent.Outcome.SUCCESS, truncated)
    return rows, truncated


def _record_find(remote: RemoteAE, identifier: Identifier, count, outcome, truncated: bool = False) -> None:
    detail = {"ae_title": remote.ae_title, "level": identifier.level, "keys": identifier.key_names()}
    if count is not None:
        detail["results"] = count
    if truncated:
        detail["truncated"] = True
    record(AuditEvent.Action.DICOM_FIND, user=remote.owner, outcome=outcome, detail=detail)


def instances_to_send(*, remote: RemoteAE, identifier: Identifier) -> list[Instance]:
    """What a C-GET or C-MOVE identifier names, as far as the remote AE's owner may see it."""
    try:
        instances = list(instances_matching(remote.owner, identifier)[: MAX_SUBOPERATIONS + 1])
    except qido.QueryError as exc:
        raise Refused(Status.CANNOT_UNDERSTAND, str(exc)) from None
    if len(instances) > MAX_SUBOPERATIONS:
        raise Refused(Status.SUB_OPERATIONS_FAILED, f"More than {MAX_SUBOPERATIONS} instances: ask per series")
    return instances


def move_destination(*, remote: RemoteAE, ae_title: str) -> RemoteAE | None:
    """The registered AE a C-MOVE may send to: one with the same owner as the requester (the
    requester itself included), so that no image reaches a peer whose owner may not see it. Any
    other title, registered to someone else or not at all, is answered alike (unknown)."""
    title = (ae_title or "").strip()
    if not title:
        return None
    return RemoteAE.objects.filter(ae_title=title, owner_id=remote.owner_id).first()


def record_send(
    *,
    remote: RemoteAE,
    operation: str,
    destination: str,
    instances: list[Instance],
    sent: int,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
) -> None:
    """One DICOM_SEND per C-GET or C-MOVE: how many instances matched and how many were handed
    to the association (each answered by the peer's own C-STORE status, reported to the requester)."""
    detail = {
        "operation": operation,
        "ae_title": remote.ae_title,
        "destination": destination,
        "matched": len(instances),
        "sent": sent,
        "study_ids": sorted({instance.series.study_id for instance in instances}),
    }
    if reason:
        detail["reason"] = reason
    record(AuditEvent.Action.DICOM_SEND, user=remote.owner, outcome=outcome, detail=detail)
