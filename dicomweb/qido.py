"""QIDO-RS (PS3.18 10.6): query parameters to querysets, rows to DICOM JSON.

Matching keys are keywords or tags (``PatientID`` or ``00100020``); values arrive already
percent-decoded. Supported: single values (case-insensitive), wildcards ``*`` and ``?``,
UID lists (comma or backslash), date ranges (``20240101-20241231``, open ends), times and time
ranges (``0930-1200``, any precision), ModalitiesInStudy
lists. ``limit``, ``offset``, ``includefield`` (keywords, tags, ``all``) and ``fuzzymatching``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from dicomweb.dicomjson import attributes, keyword_of, omit_empty_for_ohif, parse_tag
from dicomweb.matching import has_wildcards, wildcard_q
from studies.api.filters import modality_q

MAX_RESULTS = 1000  # the server's limit when the client gives none (a Warning header says so)
MAX_VALUE_CHARS = 4096  # per key: far above any DICOM value, far below SQLite's 50,000 for a LIKE pattern
MAX_COUNT = 2**31 - 1  # limit and offset beyond this are errors (the databases' offsets are 64-bit at most)


class QueryError(ValueError):
    """A query parameter is malformed; the message says which."""


def T(keyword: str) -> int:  # noqa: N802  (a tag, named like the DICOM keyword it stands for)
    return parse_tag(keyword)


# tag -> (field relative to the level's model, kind of matching)
STUDY_KEYS = {
    T("StudyInstanceUID"): ("study_instance_uid", "uid"),
    T("PatientName"): ("patient__name", "text"),
    T("PatientID"): ("patient__patient_id", "text"),
    T("IssuerOfPatientID"): ("patient__issuer_of_patient_id", "text"),
    T("PatientBirthDate"): ("patient__birth_date", "date"),
    T("PatientSex"): ("patient__sex", "text"),
    T("AccessionNumber"): ("accession_number", "text"),
    T("StudyDate"): ("study_date", "date"),
    T("StudyTime"): ("study_time", "time"),
    T("StudyDescription"): ("description", "text"),
    T("ReferringPhysicianName"): ("referring_physician_name", "text"),
    T("StudyID"): ("study_id", "text"),
    T("ModalitiesInStudy"): ("modalities", "modalities"),
}
SERIES_KEYS = {
    T("SeriesInstanceUID"): ("series_instance_uid", "uid"),
    T("Modality"): ("modality", "list"),
    T("SeriesNumber"): ("series_number", "int"),
    T("SeriesDescription"): ("description", "text"),
    T("BodyPartExamined"): ("body_part_examined", "text"),
    T("SeriesDate"): ("series_date", "date"),
    T("SeriesTime"): ("series_time", "time"),
}
INSTANCE_KEYS = {
    T("SOPInstanceUID"): ("sop_instance_uid", "uid"),
    T("SOPClassUID"): ("sop_class_uid", "uid"),
    T("InstanceNumber"): ("instance_number", "int"),
}
SPECIAL = {"limit", "offset", "includefield", "fuzzymatching"}


@dataclass
class Query:
    matches: dict[int, str] = field(default_factory=dict)
    includes: set[int] = field(default_factory=set)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False

    def filter_names(self) -> list[str]:
        """Keywords of the matching keys used (never their values), for the audit trail."""
        return sorted(keyword_of(tag) for tag in self.matches)


def parse_query(params) -> Query:
    query = Query()
    for key, values in params.lists():
        if any("\x00" in value for value in values):
            raise QueryError("query values cannot contain NUL characters")
        if sum(len(value) for value in values) > MAX_VALUE_CHARS:
            raise QueryError(f"{key.strip()[:64]}: a value is at most {MAX_VALUE_CHARS} characters")
        name = key.strip()
        lower = name.lower()
        if lower == "limit":
            query.limit = _count(values[-1], "limit")
        elif lower == "offset":
            query.offset = _count(values[-1], "offset")
        elif lower == "fuzzymatching":
            if values[-1].lower() not in ("true", "false"):
                raise QueryError("fuzzymatching must be true or false")
            query.fuzzy = values[-1].lower() == "true"
        elif lower == "includefield":
            for value in values:
                for item in value.split(","):
                    item = item.strip()
                    if item.lower() == "all":
                        query.include_all = True
                    elif item:
                        tag = parse_tag(item)
                        if tag is None:
                            raise QueryError(f"includefield: '{item}' is neither a DICOM keyword nor a tag")
                        query.includes.add(tag)
        else:
            tag = parse_tag(name.split(".")[0])
            if tag is not None:  # other parameters (cache busters and the like) are ignored
                query.matches[tag] = ",".join(values)
    return query


def _count(value: str, name: str) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > MAX_COUNT:
        raise QueryError(f"{name} must be a whole number from 0 to {MAX_COUNT}")
    return int(value)


def apply(queryset: QuerySet, query: Query, levels: list[tuple[dict, str]]) -> QuerySet:
    """Filter ``queryset`` by the matching keys of ``levels`` ([(keys, field prefix)])."""
    for tag, value in query.matches.items():
        for keys, prefix in levels:
            if tag in keys and value.strip() not in ("", "*"):
                field_name, kind = keys[tag]
                queryset = queryset.filter(_match(prefix + field_name, kind, value.strip(), tag))
                break
    return queryset


def _match(field_name: str, kind: str, value: str, tag: int) -> Q:
    if kind == "uid":
        return Q(**{f"{field_name}__in": _items(value)})
    if kind == "list":
        return Q(**{f"{field_name}__in": [item.upper() for item in _items(value)]})
    if kind == "modalities":
        condition = Q()
        for item in _items(value):
            condition |= modality_q(field_name, item)
        return condition
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            raise QueryError(f"{keyword_of(tag)} must be a whole number") from None
        if abs(number) > MAX_COUNT:  # the columns are 32-bit: nothing larger is stored
            raise QueryError(f"{keyword_of(tag)} must be a whole number from -{MAX_COUNT} to {MAX_COUNT}")
        return Q(**{field_name: number})
    if kind == "date":
        return _date_range(field_name, value, tag)
    if kind == "time":
        return _time_range(field_name, value, tag)
    if has_wildcards(value):
        return wildcard_q(field_name, value)
    return Q(**{f"{field_name}__iexact": value})


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\\", ",").split(",") if item.strip()]


def _date_range(field_name: str, value: str, tag: int) -> Q:
    start, dash, end = value.partition("-")
    if not dash:
        return Q(**{field_name: _date(start, tag)})
    condition = Q()
    if start:
        condition &= Q(**{f"{field_name}__gte": _date(start, tag)})
    if end:
        condition &= Q(**{f"{field_name}__lte": _date(end, tag)})
    return condition


def _date(text: str, tag: int) -> dt.date:
    text = text.strip().replace(".", "")
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise QueryError(
            f"{keyword_of(tag)}: '{text}' is not a date (YYYYMMDD, or a range YYYYMMDD-YYYYMMDD)"
        ) from None


def _time_range(field_name: str, value: str, tag: int) -> Q:
    """``HHMMSS.FFFFFF`` with any precision (``10`` is 10:00 to 10:59:59.999999), or a range of
    such times with open ends (PS3.4 C.2.2.2.5)."""
    start, dash, end = value.partition("-")
    if not dash:
        end = start
    condition = Q()
    if start.strip():
        # stored times are whole seconds (studies.imaging.headers.parse_time): from the start's second
        condition &= Q(**{f"{field_name}__gte": _time(start, tag, last=False).replace(microsecond=0)})
    if end.strip():
        condition &= Q(**{f"{field_name}__lte": _time(end, tag, last=True)})
    return condition


def _time(text: str, tag: int, *, last: bool) -> dt.time:
    """The first (or last) moment of a time given to any precision."""
    text = text.strip().replace(":", "")
    digits, dot, fraction = text.partition(".")
    whole = digits.isascii() and digits.isdigit() and len(digits) in (2, 4, 6)
    fraction_ok = not dot or (len(digits) == 6 and len(fraction) <= 6 and fraction.isascii() and fraction.isdigit())
    if not whole or not (fraction_ok or (dot and fraction == "" and len(digits) == 6)):
        raise QueryError(f"{keyword_of(tag)}: '{text[:32]}' is not a time (HHMMSS.FFFFFF, or a range of times)")
    fill = ("235959999999" if last else "000000000000")[len(digits) + len(fraction) :]
    full = digits + fraction + fill
    try:
        return dt.time(int(full[0:2]), int(full[2:4]), int(full[4:6]), int(full[6:12]))
    except ValueError:
        raise QueryError(f"{keyword_of(tag)}: '{text[:32]}' is not a time of day") from None


# --- answers -----------------------------------------------------------------------------------


def study_values(study, root: str) -> dict[str, object]:
    patient = study.patient
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "StudyDate": study.study_date,
        "StudyTime": study.study_time,
        "AccessionNumber": study.accession_number,
        "InstanceAvailability": "ONLINE",
        "ModalitiesInStudy": study.modality_list,
        "ReferringPhysicianName": study.referring_physician_name,
        "RetrieveURL": f"{root}studies/{study.study_instance_uid}",
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "IssuerOfPatientID": patient.issuer_of_patient_id,
        "PatientBirthDate": patient.birth_date,
        "PatientSex": patient.sex,
        "StudyInstanceUID": study.study_instance_uid,
        "StudyID": study.study_id,
        "StudyDescription": study.description,
        "NumberOfStudyRelatedSeries": study.num_series,
        "NumberOfStudyRelatedInstances": study.num_instances,
    }


STUDY_DEFAULT = {
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
}


def series_values(series, root: str) -> dict[str, object]:
    study_uid = series.study.study_instance_uid
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "Modality": series.modality,
        "SeriesDescription": series.description,
        "SeriesInstanceUID": series.series_instance_uid,
        "SeriesNumber": series.series_number,
        "SeriesDate": series.series_date,
        "SeriesTime": series.series_time,
        "BodyPartExamined": series.body_part_examined,
        "NumberOfSeriesRelatedInstances": series.num_instances,
        "InstanceAvailability": "ONLINE",
        "RetrieveURL": f"{root}studies/{study_uid}/series/{series.series_instance_uid}",
        "StudyInstanceUID": study_uid,
    }


SERIES_DEFAULT = {
    "SpecificCharacterSet",
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "InstanceAvailability",
    "RetrieveURL",
    "StudyInstanceUID",
}


def instance_values(instance, root: str) -> dict[str, object]:
    series = instance.series
    study_uid = series.study.study_instance_uid
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "SOPClassUID": instance.sop_class_uid,
        "SOPInstanceUID": instance.sop_instance_uid,
        "InstanceAvailability": "ONLINE",
        "AvailableTransferSyntaxUID": instance.transfer_syntax_uid,
        "InstanceNumber": instance.instance_number,
        "Rows": instance.rows,
        "Columns": instance.columns,
        "BitsAllocated": instance.bits_allocated,
        "NumberOfFrames": instance.number_of_frames,
        "PhotometricInterpretation": instance.photometric_interpretation,
        "RetrieveURL": (
            f"{root}studies/{study_uid}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}"
        ),
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series.series_instance_uid,
        "Modality": series.modality,
    }


INSTANCE_DEFAULT = {
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "AvailableTransferSyntaxUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "RetrieveURL",
    "StudyInstanceUID",
    "SeriesInstanceUID",
}


def answer(values: dict[str, object], default: set[str], query: Query) -> dict:
    """The DICOM JSON object of one match: the level's default attributes, the matching keys
    and whatever includefield asked for (all available ones for 'all'); an empty ModalitiesInStudy or
    Modality is left out rather than sent without Value (OHIF's study list throws on it: dicomjson.py)."""
    wanted = {parse_tag(keyword) for keyword in default} | set(query.matches) | query.includes
    return omit_empty_for_ohif(
        attributes(
            (keyword, value) for keyword, value in values.items() if query.include_all or parse_tag(keyword) in wanted
        )
    )


def page(queryset: QuerySet, query: Query) -> tuple[list, bool]:
    """The rows of one page, and whether the server's limit cut the answer short."""
    limit = query.limit if query.limit is not None else MAX_RESULTS
    rows = list(queryset[query.offset : query.offset + min(limit, MAX_RESULTS) + 1])
    truncated = len(rows) > min(limit, MAX_RESULTS) and (query.limit is None or query.limit > MAX_RESULTS)
    return rows[: min(limit, MAX_RESULTS)], truncated
