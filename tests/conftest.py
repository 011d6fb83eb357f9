"""Fixtures shared by the database, API and end-to-end tests."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DICOM = Path(os.environ.get("SHARED_DICOM", REPO.parent / "shared" / "dicom"))
PASSWORD = "a-long-test-password-42"


def shared_path(*parts: str) -> Path:
    """A file or folder under ../shared/dicom, or skip the test when that data is absent."""
    path = SHARED_DICOM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real DICOM data not available: {path}")
    return path


@pytest.fixture
def shared_dicom() -> Path:
    return shared_path()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test gets its own empty media folder (the local storage) and scratch folder."""
    from studies.services import image_source

    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    settings.SCRATCH_DIR = tmp_path / "scratch"
    (settings.SCRATCH_DIR / "tmp").mkdir(parents=True)
    settings.FILE_UPLOAD_TEMP_DIR = str(settings.SCRATCH_DIR / "tmp")
    image_source.clear()
    return media


@pytest.fixture
def eager_celery():
    """Run tasks in-process (for service tests; the end-to-end tests use a real worker)."""
    from dicomviewer.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password=PASSWORD)


def api_client_for(user):
    """An API client that sends a new API token of ``user`` (the project's own, hashed tokens)."""
    from rest_framework.test import APIClient

    from tokens.services import token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='tests')[1]}")
    return client


@pytest.fixture
def api(user):
    return api_client_for(user)


def make_zip(target: Path, files: dict[str, bytes | Path]) -> Path:
    """A ZIP at ``target`` holding ``{member name: bytes or file path}``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if isinstance(content, Path):
                zf.write(content, name)
            else:
                zf.writestr(name, content)
    return target


def zip_folder(folder: Path, target: Path) -> Path:
    return make_zip(target, {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()})


def ingest_zip(user, zip_path: Path):
    """Upload a ZIP and run its whole ingest in this process; returns the refreshed Upload."""
    from studies.services.uploads import upload_from_path

    upload = upload_from_path(owner=user, path=zip_path)
    upload.refresh_from_db()
    return upload


class WorkerProcess:
    """A real Celery worker in its own process, sharing the test database, broker and media."""

    def __init__(
        self,
        media_root: Path,
        log_path: Path,
        concurrency: int = 2,
        extra_env: dict | None = None,
        queue: str | None = None,
    ):
        import subprocess
        import sys
        import uuid

        from django.conf import settings
        from django.db import connection

        from dicomviewer.celery import app

        self.queue = queue or f"test-{uuid.uuid4().hex[:8]}"
        self._previous_queue = app.conf.task_default_queue
        app.conf.task_default_queue = self.queue
        env = dict(os.environ)
        env.update(
            DATABASE_URL=test_database_url(connection.settings_dict),
            MEDIA_ROOT=str(media_root),
            SCRATCH_DIR=str(settings.SCRATCH_DIR),
            CELERY_QUEUE=self.queue,
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            INGEST_TIME_LIMIT=str(settings.INGEST_TIME_LIMIT),
            WORKER_CONCURRENCY=str(concurrency),
        )
        env.update(extra_env or {})
        self.log_path = log_path
        self._log = open(log_path, "wb")
        command = [sys.executable, "manage.py", "serve", "worker"]  # what docker-compose runs
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")[-20000:]

    def mapped_files(self) -> set[str]:
        """The files mapped into the memory of this worker's processes (its children's too)."""
        from bench.procs import descendants

        files = set()
        for pid in {self.process.pid, *descendants(self.process.pid)}:
            try:
                lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
            except OSError:
                continue  # ended meanwhile
            files.update(fields[5] for fields in (line.split(maxsplit=5) for line in lines) if len(fields) > 5)
        return files

    def kill(self, sig=None):
        import signal

        try:
            os.killpg(self.process.pid, sig or signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self):
        from dicomviewer.celery import app

        app.conf.task_default_queue = self._previous_queue
        # a warm shutdown waits for the tasks under way (a render queued by the test's last upload
        # can hold it for the whole timeout): nothing after a test needs them
        stop_group(self.process, timeout=2)
        self._log.close()


def test_database_url(settings_dict: dict) -> str:
    """DATABASE_URL of the database the tests are using (the test database, not the real one)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"


@pytest.fixture
def worker(transactional_db, media_root, tmp_path):
    process = WorkerProcess(media_root, tmp_path / "worker.log")
    yield process
    process.stop()


def stored_bytes(name: str) -> bytes:
    """The bytes of a stored file, through the storage (a local folder or a bucket)."""
    from studies import storage

    with storage.open_stream(name) as stream:
        return stream.read()


def stored_names(prefix: str) -> list[str]:
    """Names of the stored files under a prefix (``originals/12/``, ``derived/``...)."""
    from studies import storage

    return sorted(name for name, _modified in storage.iter_names(prefix))


def get_image(client, url: str, **extra):
    """GET an image the way a client does: the API's image paths redirect to a signed URL."""
    response = client.get(url, **extra)
    if response.status_code == 302:
        response = client.get(response["Location"], **extra)
    return response


# --- S3-compatible storage: moto's standalone server ----------------------------------------------


def free_port() -> int:
    from bench.moto_s3 import free_port as pick

    return pick()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    from bench.moto_s3 import MotoS3

    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3(settings, moto):
    """Storage in a fresh bucket of the moto server (S3 mode, as AWS_STORAGE_BUCKET_NAME turns on)."""
    import uuid

    from botocore.config import Config

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=bucket)
    for name, value in moto.env(bucket).items():
        setattr(settings, name, value)
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.AWS_S3_CLIENT_CONFIG = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        connect_timeout=2,
        read_timeout=10,
        retries={"max_attempts": 2},
    )
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "studies.storage_backends.MediaS3Storage"}}
    from studies import storage

    assert storage.default().kind == "s3"
    yield bucket


def bucket_names(moto, bucket: str, prefix: str = "") -> list[str]:
    paginator = moto.client().get_paginator("list_objects_v2")
    return sorted(
        entry["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for entry in page.get("Contents", ())
    )


class WebProcess:
    """``manage.py serve web`` (gunicorn) in its own process, as docker-compose runs it."""

    def __init__(self, env: dict, log_path: Path):
        import subprocess
        import sys
        import time

        import requests

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        command = [sys.executable, "manage.py", "serve", "web", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"web did not start:\n{log_path.read_text(errors='replace')[-5000:]}")

    def stop(self):
        stop_group(self.process)
        self._log.close()


def stop_group(process, timeout: float = 30) -> None:
    """SIGTERM a process started in its own session, and its children; SIGKILL if it lingers."""
    import signal
    import subprocess

    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def require_tool(name: str) -> str:
    """The path of command-line tool ``name``; a test without it is skipped, except in CI, which
    installs it (.ci/run): there a missing tool must fail, not pass quietly."""
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def needs_servers(what: str):
    """Skip unless the tests run on PostgreSQL and Redis (as CI's second pass does)."""
    from django.conf import settings
    from django.db import connection

    return pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"),
        reason=f"{what} needs PostgreSQL and Redis",
    )


# --- browser tests (tests/browsing.py has the helpers) ----------------------------------------


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (each test opens its own context)."""
    from tests.browsing import launch_browser

    yield from launch_browser()


@pytest.fixture
def page(browser):
    """A fresh browser context and tab; the test fails on any JavaScript error or CSP report."""
    from tests.browsing import open_page

    context, tab = open_page(browser)
    yield tab
    context.close()
    assert tab.errors == [], "no JavaScript errors or blocked content on any page"


@pytest.fixture
def small_ct(user, tmp_path, eager_celery):
    """Eight neighbouring slices of the shared CT, ingested in this process."""
    from tests.browsing import ingest_small_ct

    return ingest_small_ct(user, tmp_path)


# --- the DICOM service (tests/test_dimse_*.py) -------------------------------------------------


@pytest.fixture
def dicom_service(eager_celery, settings):
    """The DICOM service on a free port of 127.0.0.1, stopped (and its associations finished) after;
    received data sets arrive in the scratch folder, as with `serve dicom`."""
    import tempfile

    from pynetdicom import _config

    from dicomnet import server as dicom_server

    chunked, temporary = _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir
    tempfile.tempdir = str(Path(settings.SCRATCH_DIR) / "tmp")
    port = free_port()
    running = dicom_server.serve("127.0.0.1", port, block=False)
    yield port
    running.ae.shutdown()
    dicom_server.wait_for_finishers(timeout=60)
    _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = chunked, temporary
