"""Patients, studies, series and instances keyed by their DICOM identifiers, and uploads.

Each user's uploads form their own archive: a UID is unique within its owner's data, so one
user's upload can never add to, or reveal, another user's study. Sharing (read-only) is
separate and decided in ``selectors``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connections, models, router
from django.db.models import Q


class Patient(models.Model):
    """A patient as identified by PatientID and its issuer (anonymous_key for files without ID)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="patients")
    patient_id = models.CharField("PatientID", max_length=64, blank=True)
    issuer_of_patient_id = models.CharField("IssuerOfPatientID", max_length=64, blank=True)
    # Files without a PatientID are not merged into one nameless patient: each study gets its own.
    anonymous_key = models.CharField(max_length=64, blank=True)
    name = models.CharField("PatientName", max_length=324, blank=True)
    birth_date = models.DateField("PatientBirthDate", null=True, blank=True)
    sex = models.CharField("PatientSex", max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "patient_id", "issuer_of_patient_id", "anonymous_key"], name="unique_patient_per_owner"
            )
        ]
        indexes = [models.Index(fields=["patient_id"]), models.Index(fields=["name"])]

    def __str__(self):
        return f"{self.patient_id or '(no ID)'}"


class Study(models.Model):
    """A DICOM study (StudyInstanceUID) in its owner's archive."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studies")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="studies")
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64)
    study_date = models.DateField("StudyDate", null=True, blank=True)
    study_time = models.TimeField("StudyTime", null=True, blank=True)
    description = models.CharField("StudyDescription", max_length=256, blank=True)
    accession_number = models.CharField("AccessionNumber", max_length=64, blank=True)
    study_id = models.CharField("StudyID", max_length=64, blank=True)
    referring_physician_name = models.CharField("ReferringPhysicianName", max_length=324, blank=True)
    modalities = models.CharField("ModalitiesInStudy", max_length=128, blank=True)  # "CT\\PT"
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "study_instance_uid"], name="unique_study_per_owner")]
        indexes = [
            models.Index(fields=["study_instance_uid"]),
            models.Index(fields=["-study_date", "-id"]),
            models.Index(fields=["accession_number"]),
            models.Index(fields=["-created_at"]),
        ]
        verbose_name_plural = "studies"

    def __str__(self):
        return f"Study {self.pk} ({self.study_date or 'no date'})"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


class Series(models.Model):
    """A DICOM series and how it is displayed (volume planes or a stack of frames)."""

    class Render(models.TextChoices):
        PENDING = "pending"
        RENDERING = "rendering"
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField("SeriesInstanceUID", max_length=64)
    modality = models.CharField("Modality", max_length=16, blank=True)
    description = models.CharField("SeriesDescription", max_length=256, blank=True)
    series_number = models.IntegerField("SeriesNumber", null=True, blank=True)
    body_part_examined = models.CharField("BodyPartExamined", max_length=64, blank=True)
    series_date = models.DateField("SeriesDate", null=True, blank=True)
    series_time = models.TimeField("SeriesTime", null=True, blank=True)
    rows = models.PositiveIntegerField("Rows", default=0)
    columns = models.PositiveIntegerField("Columns", default=0)
    pixel_spacing_row_mm = models.FloatField("PixelSpacing[0]", null=True, blank=True)
    pixel_spacing_col_mm = models.FloatField("PixelSpacing[1]", null=True, blank=True)
    slice_thickness_mm = models.FloatField("SliceThickness", null=True, blank=True)
    slice_spacing_mm = models.FloatField(null=True, blank=True)
    image_orientation = models.JSONField("ImageOrientationPatient", null=True, blank=True)
    photometric_interpretation = models.CharField("PhotometricInterpretation", max_length=32, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    num_frames = models.PositiveIntegerField(default=0)
    window_center = models.FloatField("WindowCenter", null=True, blank=True)
    window_width = models.FloatField("WindowWidth", null=True, blank=True)
    is_volume = models.BooleanField(default=False)
    # series of one Frame of Reference share patient coordinates: the viewer links their scrolling
    frame_of_reference_uid = models.CharField("FrameOfReferenceUID", max_length=64, blank=True)
    # {"axial": {"count", "width", "height", "pixel_mm", ...}, ...} as soon as geometry is known
    planes = models.JSONField(default=dict, blank=True)
    # Volume geometry, frame order and notes needed to rebuild images without the database
    layout = models.JSONField(default=dict, blank=True)
    render_status = models.CharField(max_length=16, choices=Render.choices, default=Render.PENDING)
    render_version = models.PositiveIntegerField(default=0)  # bumped whenever the instances change
    images_total = models.PositiveIntegerField(default=0)
    images_done = models.PositiveIntegerField(default=0)
    render_error = models.TextField(blank=True)
    # rebuilds under way or cut short by the death of their worker (TASK_MAX_WORKER_DEATHS)
    rebuild_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "series_instance_uid"], name="unique_series_per_study")]
        indexes = [models.Index(fields=["series_instance_uid"])]
        ordering = ["series_number", "id"]
        verbose_name_plural = "series"

    def __str__(self):
        return f"Series {self.pk} ({self.modality} #{self.series_number})"

    @property
    def window(self):
        if self.window_center is None or self.window_width is None:
            return None
        return {"center": self.window_center, "width": self.window_width}


class RenderedChunk(models.Model):
    """A chunk of a series version's plane images, from its first delivery to a worker: ``done``
    once stored. A chunk's task can be delivered twice (its worker killed before it acknowledged):
    it is counted once. ``attempts`` counts deliveries under way or cut short by the death of their
    worker; a chunk that kept killing its worker is given up (TASK_MAX_WORKER_DEATHS)."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    plane = models.CharField(max_length=16)
    start = models.PositiveIntegerField()
    done = models.BooleanField(default=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "version", "plane", "start"], name="unique_rendered_chunk")
        ]

    def __str__(self):
        return f"Series {self.series_id} v{self.version} {self.plane} from {self.start}"


# fields whose Python values (int, float, str, bool, None) go to the database as they are
_PLAIN_FIELDS = (
    models.CharField,
    models.IntegerField,
    models.FloatField,
    models.BooleanField,
    models.ForeignKey,
)


class InstanceManager(models.Manager):
    def insert_new(self, instances: list[Instance]) -> None:
        """INSERT new rows (like ``bulk_create``) and set each one's pk; the ingest's hot path.

        Django's bulk_create spends its time preparing each value of each row through its field
        (`bench/rows.py`, 30 series of 100 rows, median of 5 rounds, quiet 2-core machine: 138 us a
        row on SQLite, 147 on PostgreSQL; this: 57 and 108). Here only the fields that need it
        (JSON, dates, defaults made on save) go through their field; the rest are passed as they
        are. The pks come back by RETURNING, matched by SOP Instance UID (unique per owner), not by
        the order of the rows returned."""
        if not instances:
            return
        connection = connections[router.db_for_write(self.model)]
        if not connection.features.can_return_rows_from_bulk_insert:
            self.bulk_create(instances)
            return
        fields = [f for f in self.model._meta.concrete_fields if not f.primary_key]
        plain = [isinstance(f, _PLAIN_FIELDS) for f in fields]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        table = quote(self.model._meta.db_table)
        size = max(1, connection.ops.bulk_batch_size(fields, instances))
        by_uid = {}
        for start in range(0, len(instances), size):
            batch = instances[start : start + size]
            values = []
            for instance in batch:
                row = instance.__dict__
                for field, as_is in zip(fields, plain, strict=True):
                    if as_is:
                        values.append(row[field.attname])
                    else:
                        values.append(field.get_db_prep_save(field.pre_save(instance, True), connection))
            rows = ", ".join([one_row] * len(batch))
            sql = f"INSERT INTO {table} ({columns}) VALUES {rows} RETURNING id, sop_instance_uid"
            with connection.cursor() as cursor:
                cursor.execute(sql, values)
                by_uid.update((uid, pk) for pk, uid in cursor.fetchall())
        for instance in instances:
            instance.pk = by_uid[instance.sop_instance_uid]
            instance._state.adding = False
            instance._state.db = connection.alias


class Instance(models.Model):
    """One stored DICOM file (SOP instance), kept byte for byte in media storage."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64)
    sop_class_uid = models.CharField("SOPClassUID", max_length=64, blank=True)
    instance_number = models.IntegerField("InstanceNumber", null=True, blank=True)
    transfer_syntax_uid = models.CharField("TransferSyntaxUID", max_length=64, blank=True)
    rows = models.PositiveIntegerField("Rows", default=0)
    columns = models.PositiveIntegerField("Columns", default=0)
    number_of_frames = models.PositiveIntegerField("NumberOfFrames", default=1)
    samples_per_pixel = models.PositiveSmallIntegerField("SamplesPerPixel", default=1)
    photometric_interpretation = models.CharField("PhotometricInterpretation", max_length=32, blank=True)
    bits_allocated = models.PositiveSmallIntegerField("BitsAllocated", default=0)
    bits_stored = models.PositiveSmallIntegerField("BitsStored", default=0)
    pixel_representation = models.PositiveSmallIntegerField("PixelRepresentation", default=0)
    image_position = models.JSONField("ImagePositionPatient", null=True, blank=True)
    image_orientation = models.JSONField("ImageOrientationPatient", null=True, blank=True)
    pixel_spacing = models.JSONField("PixelSpacing", null=True, blank=True)
    window_center = models.FloatField("WindowCenter", null=True, blank=True)
    window_width = models.FloatField("WindowWidth", null=True, blank=True)
    rescale_slope = models.FloatField("RescaleSlope", default=1.0)
    rescale_intercept = models.FloatField("RescaleIntercept", default=0.0)
    file = models.CharField(max_length=255)  # path relative to MEDIA_ROOT
    file_size = models.BigIntegerField(default=0)
    in_volume = models.BooleanField(default=True)
    note = models.CharField(max_length=255, blank=True)  # why it is not part of the volume, etc.
    upload = models.ForeignKey("Upload", null=True, blank=True, on_delete=models.SET_NULL, related_name="instances")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InstanceManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "sop_instance_uid"], name="unique_instance_per_owner")]
        indexes = [models.Index(fields=["sop_instance_uid"])]
        ordering = ["instance_number", "id"]

    def __str__(self):
        return f"Instance {self.pk} (#{self.instance_number})"


class Upload(models.Model):
    """One uploaded ZIP and the progress of its ingest."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    original_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    file = models.CharField(max_length=255, blank=True)  # the ZIP, relative to MEDIA_ROOT, until ingested
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # of the ingest stages (0-100)
    stage = models.CharField(max_length=64, default="queued")
    error = models.TextField(blank=True)
    files_total = models.PositiveIntegerField(default=0)
    files_dicom = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True)  # [{"name": ..., "reason": ...}]
    studies = models.ManyToManyField(Study, blank=True, related_name="uploads")
    series = models.ManyToManyField(Series, blank=True, related_name="uploads")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("rerun_upload", "Can re-run the ingest of anyone's upload")]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["status"])]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="upload_progress_at_most_100"),
        ]

    def __str__(self):
        return f"Upload {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class StudyShare(models.Model):
    """Read-only access to a study for another user or a group, granted by its owner."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="study_shares"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="study_shares"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True))
                | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="share_with_user_or_group",
            ),
            models.UniqueConstraint(
                fields=["study", "user"], condition=Q(user__isnull=False), name="unique_user_share"
            ),
            models.UniqueConstraint(
                fields=["study", "group"], condition=Q(group__isnull=False), name="unique_group_share"
            ),
        ]

    def __str__(self):
        target = f"user {self.user_id}" if self.user_id else f"group {self.group_id}"
        return f"Share of study {self.study_id} with {target}"


class ShareLink(models.Model):
    """An expiring, revocable link that opens one study read-only without an account. Only a hash
    of its secret is kept (the URL is shown once, when the link is made)."""

    class State(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        REVOKED = "revoked"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)  # SHA-256 of the URL's secret, hex
    label = models.CharField(max_length=100, blank=True)
    deidentified = models.BooleanField(default=False)  # patient and study identifiers not shown
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)  # link pages opened
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Link {self.pk} to study {self.study_id}"

    def state_at(self, now) -> ShareLink.State:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.ACTIVE
