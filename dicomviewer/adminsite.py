"""The admin site: Django's, except that no list URL may filter with a regular expression.

Django's admin accepts any lookup on a model's own fields in the query string of a list page
(``?username__regex=(a*)*b``), and a regex runs in the database (Python's ``re`` on SQLite) with
no bound on its time. Every ModelAdmin registered here, ours and Django's own (users, groups),
refuses such lookups: the list answers 400 like any other disallowed lookup.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models.constants import LOOKUP_SEP

REGEX_LOOKUPS = frozenset({"regex", "iregex"})


class NoRegexLookups:
    def lookup_allowed(self, lookup, value, request=None):
        if REGEX_LOOKUPS.intersection(lookup.lower().split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)


class Site(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, NoRegexLookups):
            namespace = {"__module__": admin_class.__module__}
            admin_class = type(admin_class.__name__, (NoRegexLookups, admin_class), namespace)
        super().register(model_or_iterable, admin_class, **options)


class Config(AdminConfig):
    default_site = "dicomviewer.adminsite.Site"
