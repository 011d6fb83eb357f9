"""C-GET and C-MOVE SCP, Study Root Query/Retrieve Information Model (PS3.4 C.4.2, C.4.3):
handlers for pynetdicom's EVT_C_GET and EVT_C_MOVE, called by the server with the RemoteAE it has
already checked for ``may_retrieve``.

Each matched instance is read from storage and sent as a C-STORE sub-operation, in the transfer
syntax it was stored in when the peer accepted it. When the peer accepted only uncompressed
syntaxes for its SOP class, a compressed instance is decompressed with pydicom (a Big Endian one
has its pixels swapped) and sent as Explicit VR Little Endian; when that fails (or the peer took
neither), that sub-operation fails and the instance is listed in the final response's
FailedSOPInstanceUIDList (status 0xB000, or 0xA702 when every one failed).

A C-MOVE goes only to an AE registered to the same owner as the requester
(query_services.move_destination); any other title is answered 0xA801 (Move Destination unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.sop_class import Verification

from audit.models import AuditEvent
from dicomnet.identifiers import REQUIRED_FOR_RETRIEVE, Refused, read_identifier, request_identifier
from dicomnet.query_services import instances_to_send, move_destination, record_send
from dicomnet.statuses import Status
from dicomweb import pixels
from studies import storage
from studies.models import Instance

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2: odd IDs 1-255)
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def handle_get(event, remote):
    try:
        instances = _instances(event, remote)
    except Refused as exc:
        record_send(**_failed(remote, "C-GET", remote.ae_title, exc))
        yield 1  # pynetdicom's protocol: a count first; the failure then ends the request
        yield exc.status_dataset(), None
        return
    if not instances:  # pynetdicom reads no further than a count of 0: audit it here
        record_send(remote=remote, operation="C-GET", destination=remote.ae_title, instances=[], sent=0)
    yield len(instances)
    accepted = [cx for cx in event.assoc.accepted_contexts if cx.as_scu]
    yield from _send(event, remote, "C-GET", remote.ae_title, instances, lambda: accepted)


def handle_move(event, remote):
    title = (event.move_destination or "").strip()
    destination = move_destination(remote=remote, ae_title=title)
    if destination is None:
        unknown = Refused(Status.MOVE_DESTINATION_UNKNOWN, "Move destination unknown")
        record_send(**_failed(remote, "C-MOVE", title, unknown))
        yield None, None  # pynetdicom answers 0xA801
        return
    try:
        instances = _instances(event, remote)
    except Refused as exc:
        record_send(**_failed(remote, "C-MOVE", title, exc))
        yield destination.host, destination.port, {"contexts": [build_context(Verification)]}
        yield 1
        yield exc.status_dataset(), None
        return
    accepted: list = []

    def on_accepted(store_event):  # the store association's accepted contexts, once negotiated
        accepted.extend(cx for cx in store_event.assoc.accepted_contexts if cx.as_scu)

    kwargs = {"contexts": proposed_contexts(instances), "evt_handlers": [(evt.EVT_ACCEPTED, on_accepted)]}
    yield destination.host, destination.port, kwargs
    if not instances:  # as for C-GET: nothing is read after a count of 0
        record_send(remote=remote, operation="C-MOVE", destination=title, instances=[], sent=0)
    yield len(instances)
    yield from _send(event, remote, "C-MOVE", title, instances, lambda: accepted)


def _instances(event, remote) -> list[Instance]:
    identifier = read_identifier(request_identifier(event), REQUIRED_FOR_RETRIEVE)
    return instances_to_send(remote=remote, identifier=identifier)


def _failed(remote, operation: str, destination: str, exc: Refused) -> dict:
    return {
        "remote": remote,
        "operation": operation,
        "destination": destination,
        "instances": [],
        "sent": 0,
        "outcome": AuditEvent.Outcome.FAILURE,
        "reason": exc.comment,
    }


def _send(event, remote, operation: str, destination: str, instances: list[Instance], contexts: Callable):
    """Yield (Pending, data set) per instance; audit once at the end, however it ends."""
    sent = 0
    outcome, reason = AuditEvent.Outcome.SUCCESS, ""
    try:
        for instance in instances:
            if event.is_cancelled:
                outcome, reason = AuditEvent.Outcome.FAILURE, "cancelled"
                yield Status.CANCEL, None
                return
            yield Status.PENDING, dataset_for(instance, contexts())
            sent += 1
    finally:
        if sent < len(instances) and not reason:
            outcome, reason = AuditEvent.Outcome.FAILURE, "association ended"
        record_send(
            remote=remote,
            operation=operation,
            destination=destination,
            instances=instances,
            sent=sent,
            outcome=outcome,
            reason=reason,
        )


def proposed_contexts(instances: Iterable[Instance]) -> list:
    """Per SOP class: the uncompressed syntaxes (what a compressed instance is decompressed to),
    and every other syntax an instance of it is stored in, as a context of its own, so that the
    peer can accept or refuse each."""
    contexts: list = []
    seen: set[tuple[str, tuple]] = set()
    for instance in instances:
        sop_class = instance.sop_class_uid
        for syntaxes in (UNCOMPRESSED, [instance.transfer_syntax_uid or ImplicitVRLittleEndian]):
            key = (sop_class, tuple(syntaxes))
            if key in seen or (len(syntaxes) == 1 and syntaxes[0] in UNCOMPRESSED):
                continue
            seen.add(key)
            contexts.append(build_context(sop_class, syntaxes))
    if len(contexts) > MAX_CONTEXTS:
        log.warning("C-MOVE: %d presentation contexts needed, %d proposed", len(contexts), MAX_CONTEXTS)
    return contexts[:MAX_CONTEXTS]


def dataset_for(instance: Instance, contexts: list) -> Dataset:
    """The stored instance as the peer can take it (see the module's docstring). When it cannot be
    sent, a data set without transfer syntax: pynetdicom then counts a failed sub-operation and lists
    the instance's SOP Instance UID as failed, without sending anything."""
    offered = [UID(cx.transfer_syntax[0]) for cx in contexts if cx.abstract_syntax == instance.sop_class_uid]
    try:
        ds = pixels.read(storage.local_copy(instance.file), instance.transfer_syntax_uid)
    except Exception:
        log.exception("C-STORE sub-operation: cannot read stored instance %s", instance.pk)
        return _unsendable(instance)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax in offered:
        return ds
    if not syntax.is_compressed and any(
        not s.is_compressed and s.is_little_endian == syntax.is_little_endian for s in offered
    ):
        return ds  # pynetdicom converts between explicit and implicit VR
    if any(not s.is_compressed and s.is_little_endian for s in offered):
        try:
            return _as_little_endian(ds, syntax)
        except Exception as exc:
            log.warning("C-STORE sub-operation: cannot convert instance %s: %s", instance.pk, exc)
    return _unsendable(instance)


def _as_little_endian(ds: Dataset, syntax: UID) -> Dataset:
    """``ds`` as Explicit VR Little Endian: decompressed by pydicom, or (Big Endian) with its
    pixel data swapped; a Big Endian data set with other binary data (not swapped here) is refused."""
    if syntax.is_compressed:
        ds.decompress(generate_instance_uid=False)  # the same image: it keeps its UID
        return ds
    others = [e.keyword for e in ds.iterall() if e.VR in ("OW", "OF", "OL", "OD", "OV") and e.tag != 0x7FE00010]
    if others:
        raise ValueError(f"Big Endian binary data besides the pixels ({', '.join(others[:3])})")
    pixels_le = None
    if "PixelData" in ds:
        arr = ds.pixel_array
        pixels_le = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    ds.set_original_encoding(False, True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if pixels_le is not None:
        ds.PixelData = pixels_le
    return ds


def _unsendable(instance: Instance) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = instance.sop_class_uid
    ds.SOPInstanceUID = instance.sop_instance_uid
    return ds
