"""Forms of the pages."""

from __future__ import annotations

import datetime as dt
import re

from django import forms

MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")


class StudyFilterForm(forms.Form):
    """Search and filters of the study list. Values are kept in the session, never in URLs."""

    search = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Patient name or ID, accession number, description"}
        ),
    )
    modality = forms.CharField(required=False, max_length=16, label="Modality")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean_search(self):
        return " ".join(self.cleaned_data["search"].split())

    def clean_modality(self):
        value = self.cleaned_data["modality"].strip().upper()
        if value and not MODALITY.match(value):
            raise forms.ValidationError("Choose a modality from the list.")
        return value

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            data["date_from"], data["date_to"] = end, start
        return data

    def to_session(self) -> dict:
        return {
            key: value.isoformat() if isinstance(value, dt.date) else value
            for key, value in self.cleaned_data.items()
            if value
        }


def filters_from_session(stored) -> dict:
    """The filters kept in the session, checked again (a stale or damaged session is ignored)."""
    form = StudyFilterForm(data=stored if isinstance(stored, dict) else {})
    if not form.is_valid():
        return {}
    return {key: value for key, value in form.cleaned_data.items() if value}
