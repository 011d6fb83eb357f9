"""Wildcard matching of QIDO values (PS3.4 C.2.2.2.4: ``*`` any run of characters, ``?`` one
character) as SQL LIKE patterns, never regular expressions: LIKE runs in time linear in the value
on SQLite and PostgreSQL whatever the pattern, where a regex of ``.*`` runs could backtrack for
minutes. Case-insensitive, with the backends' own ``icontains`` SQL.
"""

from __future__ import annotations

from django.db.models import F, Q
from django.db.models.lookups import IContains, PatternLookup

ESCAPED = {"\\": "\\\\", "%": "\\%", "_": "\\_"}  # what Django escapes for its own LIKE lookups


def has_wildcards(value: str) -> bool:
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """``value`` with ``*``/``?`` as LIKE's ``%``/``_`` and everything else literal (backslash escapes)."""
    out: list[str] = []
    for char in value:
        if char == "*":
            if not out or out[-1] != "%":  # a run of * is one %
                out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(ESCAPED.get(char, char))
    return "".join(out)


class ILike(IContains):
    """``lhs LIKE pattern`` ignoring case, ``pattern`` a ready LIKE pattern (see ``like_pattern``).
    Built on icontains so that each backend writes its usual SQL (UPPER on PostgreSQL, ESCAPE on
    SQLite); only the wrapping in % and the escaping of the value are left out."""

    def process_rhs(self, qn, connection):
        return super(PatternLookup, self).process_rhs(qn, connection)


def wildcard_q(field_name: str, value: str) -> Q:
    """Rows whose ``field_name`` matches ``value`` with QIDO wildcards, ignoring case."""
    return Q(ILike(F(field_name), like_pattern(value)))
