"""The DICOM network service (DIMSE, pynetdicom): C-ECHO, C-STORE, and C-FIND / C-GET / C-MOVE
(dicomnet.find, dicomnet.retrieve), run by ``manage.py serve dicom``.

- Association: the calling AE title must be registered (dicomnet.RemoteAE) or, with
  DICOM_ACCEPT_UNKNOWN_AE, is let in to echo and store only; the called AE title must be ours
  (DICOM_AE_TITLE). A rejection is an A-ASSOCIATE-RJ (permanent, service user, "calling AE title
  not recognised" or "called AE title not recognised") and a DICOM_REJECTED audit event.
- An operation the AE may not do is answered "Refused: Not Authorised" (0x0124) for C-STORE,
  C-FIND and C-GET; C-MOVE, whose first answer pynetdicom takes as the destination, fails with
  0xC514 ("unable to process"). Each is audited (DICOM_REJECTED, with the operation).
- C-STORE: dicomnet.staging checks and stages each instance; when the association ends (released,
  aborted or cut), what was stored becomes one Upload (dicomnet.services).

Handlers run in pynetdicom's association threads; each thread closes its database connections
when its association ends.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections
from pydicom.pixels import get_decoder
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomnet import find, retrieve, services
from dicomnet.staging import Limits, Staging
from dicomnet.statuses import Status, status
from studies import scratch

log = logging.getLogger(__name__)
SESSION = "dicomviewer_session"  # the attribute of a pynetdicom Association holding its Session

# Transfer syntaxes of stored instances: those the ingest decodes (studies/imaging/pixels.py,
# through pydicom and its pylibjpeg plugins), offered only when this installation has a decoder.
IMAGE_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
)
QUERY_RETRIEVE = (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)


def decodable_transfer_syntaxes() -> list[str]:
    found = []
    for uid in IMAGE_TRANSFER_SYNTAXES:
        try:
            if get_decoder(uid).is_available:
                found.append(uid)
        except NotImplementedError:
            continue
    return found


def build_ae() -> AE:
    ae = AE(ae_title=settings.DICOM_AE_TITLE)
    ae.maximum_associations = settings.DICOM_MAX_ASSOCIATIONS
    ae.add_supported_context(Verification)
    syntaxes = decodable_transfer_syntaxes()
    for context in AllStoragePresentationContexts:
        # both roles: a peer stores to us (we are SCP), or, in C-GET, takes the SCP role itself
        ae.add_supported_context(context.abstract_syntax, syntaxes, scu_role=True, scp_role=True)
    for sop_class in QUERY_RETRIEVE:
        ae.add_supported_context(sop_class)
    return ae


@dataclass
class Session:
    """One accepted association: who called, who owns what it stores, what it stored."""

    admission: services.Admission
    calling: str
    address: str
    staging: Staging | None = None
    refused: set[str] = field(default_factory=set)  # operations already audited as refused


def session_of(assoc) -> Session | None:
    return getattr(assoc, SESSION, None)


# --- association ------------------------------------------------------------------------------


def on_requested(event) -> None:
    assoc = event.assoc
    request = assoc.requestor.primitive
    calling, called = str(request.calling_ae_title or ""), str(request.called_ae_title or "")
    address = str(assoc.requestor.address or "")
    try:
        admission = services.admit(calling=calling, called=called, address=address)
    except Exception:  # the database is down, say: the caller may try again later
        log.exception("DICOM association from %s could not be checked", address)
        admission = services.Admission(rejected="server error", diagnostic=services.NO_REASON, transient=True)
    finally:
        connections.close_all()
    if admission.rejected:
        log.info("DICOM association rejected: %s (%s)", admission.rejected, address)
        assoc.acse.send_reject(0x02 if admission.transient else 0x01, 0x01, admission.diagnostic)
        assoc.kill()
        return
    session = Session(admission=admission, calling=calling.strip(" "), address=address)
    setattr(assoc, SESSION, session)
    finisher = threading.Thread(target=finish_after, args=(assoc, session), name=f"dicom-finish-{address}")
    with _finishers_lock:
        _finishers.add(finisher)
    finisher.start()


def on_ended(event) -> None:
    """Released or aborted: this association thread's database connections go."""
    connections.close_all()


_finishers: set[threading.Thread] = set()
_finishers_lock = threading.Lock()


def finish_after(assoc, session: Session) -> None:
    """Once the association's thread has ended (released, aborted, connection lost, timed out),
    hand what it stored to the ingest: no C-STORE handler can run any more."""
    try:
        assoc.join()
        drop_partial_dataset(assoc)
        if session.staging is None:
            return
        ended = "released" if assoc.is_released else "aborted"
        staging = session.staging
        try:
            staged = staging.close()
            upload = services.association_stored(
                admission=session.admission,
                calling=session.calling,
                address=session.address,
                staged=staged,
                stored=staging.stored,
                failed=staging.failed,
                ended=ended,
            )
            log.info(
                "DICOM association from %s (%s) %s: %d stored, %d refused, upload %s",
                services.printable(session.calling),
                session.address,
                ended,
                staging.stored,
                staging.failed,
                upload.pk if upload is not None else "-",
            )
        except Exception:
            log.exception(
                "DICOM association from %s: its %d instances were not stored", session.address, staging.stored
            )
            staging.discard()
    finally:
        connections.close_all()
        with _finishers_lock:
            _finishers.discard(threading.current_thread())


def drop_partial_dataset(assoc) -> None:
    """The file of a data set cut off by the association's end (pynetdicom's chunked receiving
    leaves it behind): removed, as nothing of it is stored."""
    message = getattr(assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    try:
        partial.close()
        Path(partial.name).unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove a partly received data set")


def wait_for_finishers(timeout: float) -> None:
    with _finishers_lock:
        pending = list(_finishers)
    for thread in pending:
        thread.join(timeout)


# --- operations -------------------------------------------------------------------------------


def refuse(event, operation: str) -> bool:
    """True (and audited once per association and operation) when the AE may not do ``operation``."""
    session = session_of(event.assoc)
    if session is None:
        return True
    admission = session.admission
    allowed = {
        "C-STORE": admission.may_store,
        "C-FIND": admission.may_find,
        "C-GET": admission.may_retrieve,
        "C-MOVE": admission.may_retrieve,
    }[operation]
    if allowed:
        return False
    if operation not in session.refused:
        session.refused.add(operation)
        services.operation_refused(
            admission=admission, operation=operation, calling=session.calling, address=session.address
        )
    return True


def on_store(event):
    if refuse(event, "C-STORE"):
        return status(Status.NOT_AUTHORISED, "this AE may not store here")
    session = session_of(event.assoc)
    if session.staging is None:
        session.staging = Staging(scratch.tmp_dir(), Limits.from_settings())
    request = event.request
    path, temporary = received_file(event)
    try:
        outcome = session.staging.receive(path, request.AffectedSOPClassUID, request.AffectedSOPInstanceUID)
    finally:
        if temporary:
            path.unlink(missing_ok=True)
    if outcome.code != Status.SUCCESS:
        log.info("C-STORE from %s refused: 0x%04X %s", session.address, outcome.code, outcome.comment)
    return status(outcome.code, outcome.comment)


def received_file(event) -> tuple[Path, bool]:
    """The received data set as a DICOM file: pynetdicom's (chunked receiving), else written here."""
    try:
        return Path(event.dataset_path), False
    except AttributeError:
        fd, name = tempfile.mkstemp(dir=scratch.tmp_dir(), prefix="dimse-", suffix=".dcm")
        with open(fd, "wb") as out:
            out.write(event.encoded_dataset())
        return Path(name), True


def on_find(event):
    if refuse(event, "C-FIND"):
        yield status(Status.NOT_AUTHORISED, "this AE may not query"), None
        return
    yield from find.handle_find(event, session_of(event.assoc).admission.remote)


def on_get(event):
    if refuse(event, "C-GET"):
        yield 1
        yield status(Status.NOT_AUTHORISED, "this AE may not retrieve"), None
        return
    yield from retrieve.handle_get(event, session_of(event.assoc).admission.remote)


class NotAuthorised(Exception):
    pass


def on_move(event):
    if refuse(event, "C-MOVE"):
        raise NotAuthorised("this AE may not retrieve")  # pynetdicom answers 0xC514
    yield from retrieve.handle_move(event, session_of(event.assoc).admission.remote)


def handlers() -> list:
    return [
        (evt.EVT_REQUESTED, on_requested),
        (evt.EVT_RELEASED, on_ended),
        (evt.EVT_ABORTED, on_ended),
        (evt.EVT_C_STORE, on_store),
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_GET, on_get),
        (evt.EVT_C_MOVE, on_move),
    ]


# --- running ----------------------------------------------------------------------------------


def serve(host: str, port: int, block: bool = True):
    """Listen on ``host``:``port``. Blocking: until SIGTERM or SIGINT, then abort what is under way
    (its complete instances are still stored) and return. Else: the running server (``shutdown()``)."""
    _config.STORE_RECV_CHUNKED_DATASET = True  # received data sets go to files, not memory
    # no patient data in the logs: pynetdicom logs query and answer identifiers by default
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = build_ae()
    server = ae.start_server((host, int(port)), block=False, evt_handlers=handlers())
    if not block:
        return server
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("DICOM service %s listening on %s:%s", settings.DICOM_AE_TITLE, host, port)
    stop.wait()
    ae.shutdown()
    wait_for_finishers(timeout=120)
    return None
