"""C-FIND SCP, Study Root Query/Retrieve Information Model - FIND (PS3.4 C.4.1), at STUDY, SERIES
and IMAGE level: a handler for pynetdicom's EVT_C_FIND, called by the server with the RemoteAE it
has already checked for ``may_find``. Matching is QIDO's (dicomnet/identifiers.py); at most
qido.MAX_RESULTS matches are sent, then the request ends with 0xA700 and an ErrorComment saying
the answer was cut short (C-FIND has no warning status).
"""

from __future__ import annotations

from dicomnet.identifiers import REQUIRED_FOR_FIND, Refused, answer, read_identifier, request_identifier
from dicomnet.query_services import find_matches
from dicomnet.statuses import Status
from dicomweb import qido


def handle_find(event, remote):
    try:
        identifier = read_identifier(request_identifier(event), REQUIRED_FOR_FIND)
        rows, truncated = find_matches(remote=remote, identifier=identifier)
    except Refused as exc:
        yield exc.status_dataset(), None
        return
    ae_title = event.assoc.ae.ae_title
    for row in rows:
        if event.is_cancelled:
            yield Status.CANCEL, None
            return
        yield Status.PENDING, answer(row, identifier, ae_title)
    if truncated:
        comment = f"Only the first {qido.MAX_RESULTS} matches were sent: narrow the query"
        yield Refused(Status.OUT_OF_RESOURCES, comment).status_dataset(), None
        return
    yield Status.SUCCESS, None
