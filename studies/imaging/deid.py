"""De-identification of one dataset: PS3.15 Annex E, Basic Application Level Confidentiality
Profile, with the options Retain Longitudinal Temporal Information with Modified Dates, Retain
Patient Characteristics and Clean Descriptors. No Django here.

The profile's table (Table E.1-1: which attribute gets D, Z, X, K, C, U or one of the compound
actions) comes from ``dicom-anonymizer`` (its ``dicomfields_2026c`` database, generated from the
standard); this module only decides what each action does here:

- ``X`` remove; ``Z`` empty (a sequence: no items); ``D`` a dummy value of the VR (a sequence:
  kept, its items cleaned by the same table); the compound actions take the one that keeps the IOD
  valid (``X/Z`` -> Z, ``X/D``, ``Z/D``, ``X/Z/D`` -> D, ``X/Z/U*`` -> kept, references inside mapped).
- ``U`` and every other UID that is not a class UID or a UID the standard defines: a new UID,
  ``2.25.<HMAC-SHA256(key, uid) as a 128-bit integer>``, so the same UID gives the same new UID for
  one key (series, frames of reference and references stay linked) and nothing else can reverse it.
- PatientName and PatientID: a pseudonym from the HMAC of the original ID and name (one per
  patient for one key).
- Private elements are removed, but for those on ``SAFE_PRIVATE`` (empty: no private element is
  known here to be free of identifying data and needed by this viewer).
- Retain Longitudinal Temporal Information (Modified Dates): dates and date-times the table
  touches (and every other DA/DT) are moved by a whole number of days taken from the key (the same
  shift for every file of one key), times are kept; birth date and time are emptied still.
- Retain Patient Characteristics: the option's K attributes (sex, age, size, weight, ...) are kept.
- Clean Descriptors: the option's C descriptors (study/series description, protocol name,
  comments, ...) are kept, cleaned: every occurrence of the file's own identifying values (the
  parts of every person name, patient and other IDs, accession number, institution, birth date)
  and every run of five or more digits is replaced by ``***``. Free text can still name something
  the header names nowhere else: a person must check descriptors before publishing them.

The option columns (``RETAIN_PATIENT_KEEPS``, ``CLEAN_DESCRIPTORS``) are the standard's option
columns of Table E.1-1 for those attributes; no library found carries them (see requirements.txt).

Images that may show identifying text in their pixels are left out (``left_out_reason``):
BurnedInAnnotation YES, or ultrasound and secondary capture without BurnedInAnnotation NO.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import re
from dataclasses import dataclass

import pydicom
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID_dictionary

TABLE_VERSION = "dicomfields_2026c"  # PS3.15 2026c, Table E.1-1 (Basic Profile column)
OPTION_NAMES = ("retain_dates", "retain_patient", "clean_descriptors")
# CID 7050 De-identification Method: the DCM codes, from pydicom's code dictionary
CODES = {
    name: (code.value, code.meaning)
    for name, code in {
        "basic": codes.DCM.BasicApplicationConfidentialityProfile,
        "retain_dates": codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,  # 113107
        "retain_patient": codes.DCM.RetainPatientCharacteristicsOption,  # 113108
        "clean_descriptors": codes.DCM.CleanDescriptorsOption,  # 113105
    }.items()
}
# Table E.1-1, "Rtn. Pat. Chars. Opt." column: the attributes it keeps (K).
RETAIN_PATIENT_KEEPS = frozenset(
    {
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "EthnicGroup",
        "SmokingStatus",
        "PregnancyStatus",
        "PatientSexNeutered",
    }
)
# Table E.1-1, "Clean Desc. Opt." column: free-text descriptors it keeps, cleaned (C).
CLEAN_DESCRIPTORS = frozenset(
    {
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "ImageComments",
        "StudyComments",
        "AcquisitionComments",
        "FrameComments",
        "AdditionalPatientHistory",
        "AdmittingDiagnosesDescription",
        "DerivationDescription",
        "PerformedProcedureStepDescription",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepDescription",
        "ReasonForStudy",
        "ContrastBolusAgent",
        "AcquisitionDeviceProcessingDescription",
        "DischargeDiagnosisDescription",
        "PatientComments",
        "ClinicalTrialSeriesDescription",
    }
)
# Free text the table keeps whatever the options (an SR's text content items): always cleaned.
ALWAYS_CLEANED = frozenset({"TextValue"})
# (private creator, element offset) pairs kept; documented in the module docstring. Empty.
SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()
NEVER_REMAPPED = frozenset({"TransferSyntaxUID", "CodingSchemeUID", "ImplementationClassUID"})
BIRTH = frozenset({"PatientBirthDate", "PatientBirthTime", "PatientBirthDateInAlternativeCalendar"})
SECONDARY_CAPTURE = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
ULTRASOUND = frozenset({"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.6.2", "1.2.840.10008.5.1.4.1.1.3.1"})
DUMMY = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMIZED",
    "UR": "",
}
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 365, 3650
SCRUBBED = "***"
DIGIT_RUN = re.compile(r"\d{5,}")


class DeidError(ValueError):
    """The request for de-identification is not acceptable (the message says why)."""


@dataclass(frozen=True)
class Options:
    retain_dates: bool = False
    retain_patient: bool = False
    clean_descriptors: bool = False

    @property
    def names(self) -> list[str]:
        return [name for name in OPTION_NAMES if getattr(self, name)]

    @classmethod
    def parse(cls, text: str | list[str] | None) -> Options:
        """``"retain_dates,clean_descriptors"`` (or a list of names) -> Options; DeidError on an
        unknown name."""
        items = text if isinstance(text, list | tuple) else (text or "").split(",")
        names = {str(item).strip() for item in items if str(item).strip()}
        unknown = sorted(names - set(OPTION_NAMES))
        if unknown:
            raise DeidError(
                f"Unknown de-identification option {', '.join(repr(n[:40]) for n in unknown)}; "
                f"known: {', '.join(OPTION_NAMES)}."
            )
        return cls(**{name: True for name in names})


def _load_table() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for category, tags in dicom_anonymization_database_selector(TABLE_VERSION).items():
        if category == "ALL_TAGS":
            continue
        action = category.removesuffix("_TAGS")  # "D", "Z", "X", "U", "Z_D", "X_Z_U_STAR", ...
        for tag in tags:
            if len(tag) == 2:
                exact[tag[0] << 16 | tag[1]] = action
            else:
                masked.append((*tag, action))
    return exact, masked


EXACT_ACTIONS, MASKED_ACTIONS = _load_table()
# What each compound action does here (the one that keeps the object valid where a type matters).
RESOLVED = {"X_Z": "Z", "X_D": "D", "Z_D": "D", "X_Z_D": "D", "X_Z_U_STAR": "K"}


def table_action(tag: int) -> str | None:
    """Table E.1-1's basic-profile action for ``tag`` (``D``, ``Z``, ``X``, ``U``, ``X_Z``, ...)."""
    action = EXACT_ACTIONS.get(tag)
    if action is None:
        group, element = tag >> 16, tag & 0xFFFF
        for mask_group, mask_element, group_mask, element_mask, masked_action in MASKED_ACTIONS:
            if group & group_mask == mask_group & group_mask and element & element_mask == mask_element & element_mask:
                return masked_action
    return action


def left_out_reason(ds: Dataset) -> str | None:
    """Why an image is not exported (it may show identifying text in its pixels), or None."""
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        return "BurnedInAnnotation is YES"
    if burned_in == "NO":
        return None
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class in SECONDARY_CAPTURE:
        return "secondary capture without BurnedInAnnotation NO"
    if sop_class in ULTRASOUND or str(ds.get("Modality", "") or "").upper() == "US":
        return "ultrasound without BurnedInAnnotation NO"
    return None


class Deidentifier:
    """De-identifies datasets for one export: one key, one set of options. Reuse it for every file
    of the export, so UIDs, pseudonyms and the date shift agree between files."""

    def __init__(self, *, key: bytes, options: Options):
        if len(key) < 16:
            raise DeidError("The de-identification key must have at least 16 bytes.")
        self.key = key
        self.options = options
        self.shift_days = -(MIN_SHIFT_DAYS + self._number("date-shift") % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1))

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}\0{value}".encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def _number(self, kind: str, value: str = "") -> int:
        return int.from_bytes(self._digest(kind, value)[:16], "big")

    def new_uid(self, uid: str) -> str:
        return f"2.25.{self._number('uid', uid.strip())}"

    def pseudonym(self, patient_id: str, patient_name: str) -> str:
        digest = self._digest("patient", patient_id + "\0" + patient_name)
        return f"ANON{digest.hex()[:12].upper()}"

    def methods(self) -> list[str]:
        """The profile and each option by name (one DeidentificationMethod value each: LO, 64 chars)."""
        return [CODES[name][1][:64] for name in ["basic", *self.options.names]]

    def method_description(self) -> str:
        return "; ".join(self.methods())

    # --- one dataset -------------------------------------------------------------------------

    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and return it)."""
        patient = self.pseudonym(str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""))
        # free text to clean: the descriptors (with the option) and an SR's text items
        cleaning = self.options.clean_descriptors or "ContentSequence" in ds
        secrets_ = identifying_values(ds) if cleaning else []
        self._clean(ds, secrets_)
        ds.PatientName = patient
        ds.PatientID = patient
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self.methods()
        ds.DeidentificationMethodCodeSequence = Sequence([self._code(name) for name in ["basic", *self.options.names]])
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.options.retain_dates else "REMOVED"
        self._file_meta(ds)
        return ds

    def _code(self, name: str) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = CODES[name]
        item.CodingSchemeDesignator = "DCM"
        return item

    def _file_meta(self, ds: Dataset) -> None:
        old = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", old.get("MediaStorageSOPClassUID", ""))
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
        if old.get("TransferSyntaxUID"):
            meta.TransferSyntaxUID = old.TransferSyntaxUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta

    def _clean(self, ds: Dataset, secrets_: list[str]) -> None:
        for elem in list(ds):  # a copy: elements are removed while going through
            tag = int(elem.tag)
            if elem.tag.is_private:
                if not self._safe_private(ds, elem):
                    del ds[tag]
                continue
            if elem.tag.element == 0:  # group lengths: written anew
                del ds[tag]
                continue
            self._act(ds, elem, secrets_)

    def _safe_private(self, ds: Dataset, elem) -> bool:
        if not SAFE_PRIVATE or elem.tag.element < 0x1000:
            return False
        creator_tag = elem.tag.group << 16 | elem.tag.element >> 8
        creator = ds.get(creator_tag)
        return creator is not None and (str(creator.value), elem.tag.element & 0xFF) in SAFE_PRIVATE

    def _action(self, tag: int, vr: str, keyword: str) -> str | None:
        """What happens to one element: the table's action, then the options' changes to it."""
        action = table_action(tag)
        if keyword in BIRTH:
            return "X" if action == "X" else "Z"
        if self.options.retain_patient and keyword in RETAIN_PATIENT_KEEPS:
            return "K"
        if (self.options.clean_descriptors and keyword in CLEAN_DESCRIPTORS) or keyword in ALWAYS_CLEANED:
            return "C"
        if self.options.retain_dates and (vr in ("DA", "DT") or (vr == "TM" and action is not None)):
            return "SHIFT"  # every date moves, even one the table leaves alone (it would give the shift away)
        return RESOLVED.get(action, action)

    def _act(self, ds: Dataset, elem, secrets_: list[str]) -> None:
        tag, vr = int(elem.tag), elem.VR
        action = self._action(tag, vr, keyword_for_tag(elem.tag))
        if action == "X":
            del ds[tag]
        elif action == "C":
            elem.value = scrub(elem.value, secrets_)
        elif action == "SHIFT":
            elem.value = self._shifted(elem.value, vr)
        elif vr == "SQ":
            if action == "Z":
                elem.value = Sequence()
            else:  # D, K, U on a sequence: kept, its items cleaned
                for item in elem.value:
                    self._clean(item, secrets_)
        elif vr == "UI":
            if action == "Z":
                elem.value = ""
            elif action in ("U", "D") or (action is None and self._remapped(keyword_for_tag(elem.tag), elem.value)):
                elem.value = self._uids(elem.value)
        elif action == "Z":
            elem.value = b"" if vr in ("OB", "UN", "OW") else ""
        elif action == "D":
            elem.value = dummy(vr)

    def _remapped(self, keyword: str, value) -> bool:
        if keyword.endswith("ClassUID") or keyword in NEVER_REMAPPED:
            return False
        values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
        return any(str(v) and str(v) not in UID_dictionary for v in values)

    def _uids(self, value):
        if isinstance(value, list | tuple | pydicom.multival.MultiValue):
            return [self._one_uid(v) for v in value]
        return self._one_uid(value)

    def _one_uid(self, value) -> str:
        text = str(value or "").strip("\0 ")
        return "" if not text or text in UID_dictionary else self.new_uid(text)

    def _shifted(self, value, vr: str):
        if vr == "TM":
            return value
        if isinstance(value, list | tuple | pydicom.multival.MultiValue):
            return [self._shifted_one(str(v), vr) for v in value]
        return self._shifted_one(str(value or ""), vr)

    def _shifted_one(self, text: str, vr: str) -> str:
        text = text.strip()
        if len(text) < 8:
            return ""
        try:
            day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
            moved = day + dt.timedelta(days=self.shift_days)
        except (ValueError, OverflowError):
            return ""  # not a date: nothing of it is kept
        return moved.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")


def dummy(vr: str):
    if vr in DUMMY:
        return DUMMY[vr]
    if vr in ("OB", "UN", "OW"):
        return b"\0\0"
    if vr in ("SH", "LO", "ST", "LT", "UT", "UC"):
        return "ANONYMIZED"
    if vr in ("DS", "IS"):
        return "0"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
        return 0
    return None


PERSON_FIELDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "InstitutionName", "InstitutionAddress")


def identifying_values(ds: Dataset) -> list[str]:
    """The file's own identifying strings (person-name parts, IDs, accession, institution, birth
    date), longest first: what Clean Descriptors takes out of free text."""
    found: set[str] = set()

    def visit(dataset: Dataset, elem) -> None:
        if elem.VR == "PN" and elem.value:
            for name in elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]:
                found.update(re.split(r"[\^=\s,]+", str(name)))
        elif elem.keyword in PERSON_FIELDS or elem.keyword == "PatientBirthDate":
            value = elem.value
            for item in value if isinstance(value, pydicom.multival.MultiValue) else [value]:
                text = str(item or "")
                found.add(text)
                found.update(text.split())

    ds.walk(visit)
    return sorted((text for text in found if len(text.strip()) >= 2), key=len, reverse=True)


def scrub(value, secrets_: list[str]):
    """``value`` (text, or several) without the identifying strings and long digit runs."""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return [scrub(v, secrets_) for v in value]
    if not isinstance(value, str):
        return value
    text = value
    for secret in secrets_:
        text = re.sub(re.escape(secret.strip()), SCRUBBED, text, flags=re.IGNORECASE)
    return DIGIT_RUN.sub(SCRUBBED, text)


def deidentify_file(data: bytes, deidentifier: Deidentifier) -> tuple[bytes | None, Dataset | None, str | None]:
    """One stored file's bytes -> (the de-identified file's bytes, or None when it is left out;
    its dataset; why it was left out). A file that cannot be read or written is left out, with
    the kind of error as its reason (never a value of the file)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any reader failure: this one file is left out
        return None, None, f"not readable as DICOM ({type(exc).__name__})"
    reason = left_out_reason(ds)
    if reason:
        return None, ds, reason
    if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
        return None, ds, "no SOPClassUID or SOPInstanceUID"
    try:
        implicit, little = ds.original_encoding
        deidentifier.deidentify(ds)
        if "TransferSyntaxUID" not in ds.file_meta or not ds.file_meta.TransferSyntaxUID:
            ds.file_meta.TransferSyntaxUID = (
                pydicom.uid.ImplicitVRLittleEndian
                if implicit
                else (pydicom.uid.ExplicitVRLittleEndian if little is not False else pydicom.uid.ExplicitVRBigEndian)
            )
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - odd values pydicom cannot write: this one file is left out
        return None, ds, f"could not be de-identified ({type(exc).__name__})"
    return out.getvalue(), ds, None
