"""The DICOM UID grammar (PS3.5 9.1), the one check every entrance uses (ZIP uploads, the import
command, STOW-RS): components of ASCII digits separated by dots, at most 64 characters. A UID is
used in URLs, file names inside ZIP downloads and HTTP headers, so nothing else may pass: no
slash, no dot-dot, no CR/LF, no ``<``. The one rule of PS3.5 9.1 not enforced is "no leading zero
in a component": older scanners write such UIDs (``...1106034325.07``), they are harmless in every
place a UID goes, and refusing them would lose real studies (as Orthanc and dcm4chee accept them).

Hand-written rather than pydicom's ``UID.is_valid``: that one accepts a trailing newline
(``UID("1.2\\n").is_valid`` is True with pydicom 3.0.2, its pattern ends in ``$``).
"""

from __future__ import annotations

MAX_CHARS = 64
DIGITS = frozenset("0123456789")


def is_valid_uid(value: str) -> bool:
    if not value or len(value) > MAX_CHARS:
        return False
    for component in value.split("."):
        if not component or not DIGITS.issuperset(component):
            return False
    return True


def uid_problem(keyword: str, value: str) -> str | None:
    """Why ``value`` cannot be the ``keyword`` (e.g. SeriesInstanceUID) of a stored file, or None."""
    if not value:
        return f"no {keyword}: the image cannot be placed in a study"
    if len(value) > MAX_CHARS:
        return f"{keyword} is longer than {MAX_CHARS} characters (invalid DICOM)"
    if not is_valid_uid(value):
        return f"{keyword} is not a valid UID (digits and dots only, PS3.5 9.1): {shown(value)}"
    return None


def shown(value: str, limit: int = 40) -> str:
    """``value`` safe to put in a message: printable ASCII only, cut short."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])
    return repr(text + ("..." if len(value) > limit else ""))
