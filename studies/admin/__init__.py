"""The archive in the Django admin.

- What was read from DICOM (UIDs, names, dates, geometry, window...) is read-only, and so is
  everything ingest derives from it: patients, studies, series, instances and uploads come from
  uploads and cannot be added here. Owners are read-only too: a study's patient and instances
  belong to the same owner, so moving one study would split them.
- Shares can be added and removed, on the study page or on their own list; each is audited.
- Deleting a study or series, one or many, goes through ``studies.services.deletion`` so that its
  files go with its rows. Patients go with their last study; instances with their series.
- Looking at studies, patients and series here is audited like anywhere else.
"""

from django.contrib import admin

from studies.admin import series, shares, studies, uploads  # noqa: F401  (each registers its models)

admin.site.site_header = "dicomviewer administration"
admin.site.site_title = "dicomviewer admin"
