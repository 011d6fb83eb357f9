"""C-FIND, C-GET and C-MOVE identifiers (Study Root, PS3.4 C.4) read into the QIDO matcher's
``Query``, so that DIMSE and QIDO-RS match with one set of rules (dicomweb/qido.py: single values,
``*``/``?`` wildcards, UID lists, date ranges, universal matching, case-insensitive text and PN),
and matches written back as identifiers.

What is matched is always what the remote AE's owner may see (``studies.selectors``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import QuerySet
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomnet.statuses import Status, status
from dicomweb import qido
from dicomweb.dicomjson import keyword_of, parse_tag
from dicomweb.matching import has_wildcards
from studies import selectors
from studies.models import Instance

STUDY, SERIES, IMAGE = "STUDY", "SERIES", "IMAGE"
LEVELS = (STUDY, SERIES, IMAGE)
# the unique key of each level, and those a request at that level must carry (hierarchical)
UNIQUE_KEY = {STUDY: "StudyInstanceUID", SERIES: "SeriesInstanceUID", IMAGE: "SOPInstanceUID"}
REQUIRED_FOR_FIND = {STUDY: (), SERIES: ("StudyInstanceUID",), IMAGE: ("StudyInstanceUID", "SeriesInstanceUID")}
REQUIRED_FOR_RETRIEVE = {
    STUDY: ("StudyInstanceUID",),
    SERIES: ("StudyInstanceUID", "SeriesInstanceUID"),
    IMAGE: ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
NOT_KEYS = {parse_tag("QueryRetrieveLevel"), parse_tag("SpecificCharacterSet")}


class Refused(Exception):
    """The request cannot be answered: a DIMSE failure status and its ErrorComment."""

    def __init__(self, code: Status, comment: str):
        super().__init__(comment)
        self.code = code
        self.comment = comment

    def status_dataset(self) -> Dataset:
        return status(self.code, self.comment)


@dataclass
class Identifier:
    level: str
    query: qido.Query
    requested: list[DataElement] = field(default_factory=list)  # every key asked for, in order

    def key_names(self) -> list[str]:
        """Keywords of the keys used for matching (never their values), for the audit trail."""
        return self.query.filter_names()


def read_identifier(ds: Dataset | None, required: dict[str, tuple[str, ...]]) -> Identifier:
    """The level and matching keys of a request identifier; Refused when it does not fit Study Root."""
    if ds is None:
        raise Refused(Status.CANNOT_UNDERSTAND, "The identifier could not be decoded")
    try:
        level = str(ds.get("QueryRetrieveLevel", "") or "").strip().upper()
        elements = list(ds)
    except Exception:  # a malformed element: pydicom converts values on access
        raise Refused(Status.CANNOT_UNDERSTAND, "The identifier could not be decoded") from None
    if level not in LEVELS:
        raise Refused(Status.DOES_NOT_MATCH, "QueryRetrieveLevel must be STUDY, SERIES or IMAGE")
    identifier = Identifier(level=level, query=qido.Query())
    for element in elements:
        if element.tag.group in (0x0000, 0x0002) or int(element.tag) in NOT_KEYS:
            continue
        identifier.requested.append(element)
        text = _text(element)
        if text:
            if len(text) > qido.MAX_VALUE_CHARS or "\x00" in text:
                raise Refused(Status.CANNOT_UNDERSTAND, f"{keyword_of(int(element.tag))}: value too long or with NUL")
            identifier.query.matches[int(element.tag)] = text
    for keyword in required[level]:
        value = identifier.query.matches.get(parse_tag(keyword), "").strip()
        if not value or has_wildcards(value):
            raise Refused(Status.DOES_NOT_MATCH, f"{keyword} is required at {level} level")
    return identifier


def _text(element: DataElement) -> str:
    """The matching value of an element as QIDO's parser would have it ('' for none or a sequence)."""
    if element.VR == "SQ" or element.value is None:
        return ""
    values = element.value if isinstance(element.value, (MultiValue, list, tuple)) else [element.value]
    if any(isinstance(value, (bytes, bytearray)) for value in values):
        return ""
    return "\\".join(str(value) for value in values).strip()


# --- matching ------------------------------------------------------------------------------------

LEVEL_KEYS = {
    STUDY: [(qido.STUDY_KEYS, "")],
    SERIES: [(qido.SERIES_KEYS, ""), (qido.STUDY_KEYS, "study__")],
    IMAGE: [(qido.INSTANCE_KEYS, ""), (qido.SERIES_KEYS, "series__"), (qido.STUDY_KEYS, "series__study__")],
}


def matches(user, identifier: Identifier) -> QuerySet:
    """Studies, series or instances (by level) visible to ``user`` that match; qido.QueryError on a bad value."""
    level = identifier.level
    if level == STUDY:
        queryset = selectors.studies_visible_to(user).select_related("patient").order_by("-study_date", "-id")
    elif level == SERIES:
        queryset = selectors.series_visible_to(user).select_related("study__patient").defer("layout", "planes")
        queryset = queryset.order_by("study_id", "series_number", "id")
    else:
        queryset = selectors.instances_visible_to(user).select_related("series__study__patient")
        queryset = queryset.defer("series__layout", "series__planes").order_by(
            "series__study_id", "series_id", "instance_number", "id"
        )
    return qido.apply(queryset, identifier.query, LEVEL_KEYS[level])


def instances_matching(user, identifier: Identifier) -> QuerySet[Instance]:
    """The instances a C-GET or C-MOVE identifier names (its unique keys only, PS3.4 C.4.2.2.1)."""
    unique = {parse_tag(keyword) for keyword in REQUIRED_FOR_RETRIEVE[identifier.level]}
    query = qido.Query(matches={tag: value for tag, value in identifier.query.matches.items() if tag in unique})
    queryset = selectors.instances_visible_to(user).select_related("series__study")
    queryset = queryset.order_by("series__study_id", "series_id", "instance_number", "id")
    return qido.apply(queryset, query, LEVEL_KEYS[IMAGE])


# --- answers -------------------------------------------------------------------------------------


def row_values(row, level: str) -> dict[str, object]:
    """Attribute values of a match by keyword, from the database as QIDO answers them; a series
    or instance also carries its study's (and series') attributes."""
    if level == STUDY:
        values = qido.study_values(row, "")
    elif level == SERIES:
        values = {**qido.study_values(row.study, ""), **qido.series_values(row, "")}
    else:
        series = row.series
        values = {
            **qido.study_values(series.study, ""),
            **qido.series_values(series, ""),
            **qido.instance_values(row, ""),
        }
    values.pop("RetrieveURL", None)
    return values


def answer(row, identifier: Identifier, retrieve_ae_title: str) -> Dataset:
    """The C-FIND response identifier of one match: every requested key (empty when there is no
    value), the unique keys of its level and those above, QueryRetrieveLevel and RetrieveAETitle."""
    values = row_values(row, identifier.level)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, as QIDO answers
    ds.QueryRetrieveLevel = identifier.level
    ds.RetrieveAETitle = retrieve_ae_title
    for keyword in REQUIRED_FOR_RETRIEVE[identifier.level]:
        setattr(ds, keyword, values[keyword])
    for element in identifier.requested:
        tag = int(element.tag)
        keyword = keyword_of(tag)
        if tag in ds:
            continue
        if keyword in values and element.VR != "SQ":
            setattr(ds, keyword, _dicom_value(values[keyword]))
        else:
            ds.add_new(tag, element.VR, [] if element.VR == "SQ" else None)
    return ds


def _dicom_value(value):
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, dt.time):
        return value.strftime("%H%M%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    if isinstance(value, (list, tuple)):
        return [_dicom_value(item) for item in value] or None
    return value


def request_identifier(event) -> Dataset | None:
    """The request's identifier, or None when it cannot be decoded."""
    try:
        return event.identifier
    except Exception:  # pynetdicom raises whatever the decoder raised
        return None
