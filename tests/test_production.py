"""What docker-compose runs, run natively (no container engine here) and used as through an outer
TLS proxy: Debian's nginx with deploy/nginx.conf (service names resolved to 127.0.0.1), migrate,
web, worker and beat started with the compose commands as an unprivileged user on a read-only copy
of the code, PostgreSQL + Redis + a bucket (moto), configured only by a .env made from .env.example
and the compose file's own values. The test plays the outer proxy (TLS ends there: it sends
X-Forwarded-Proto: https and X-Forwarded-For) and its clients.

Not tested this way: the images themselves (no engine builds them here), MinIO (moto stands in
for it), nginx's TLS server (docker-compose.tls.yml; its configuration is validated by
test_deployment.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent
from bench.moto_s3 import free_port
from tests import dicomgen
from tests.conftest import REPO, bucket_names, make_zip, needs_servers, stop_group
from tests.conftest import test_database_url as database_url
from tests.test_deployment import documented_settings

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_servers("the production shape"),
    pytest.mark.skipif(shutil.which("nginx") is None, reason="Debian's nginx is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as another user needs root"),
]
PUBLIC = "dicom.example.test"  # the site's name; TLS ends at the outer proxy (this test)
NOBODY = 65534
PATIENT_NAME, PATIENT_ID = "Leakcheck^Marguerite", "PHI-7731-XZ"


def read_only_copy(root: Path) -> Path:
    """The code as the image has it: static files collected, then nothing writable."""
    app = root / "app"
    skip = shutil.ignore_patterns(
        ".venv", ".git", "var", "media", "staticfiles", "bench", "tests", "test-artifacts", "__pycache__", ".*cache*"
    )
    shutil.copytree(REPO, app, ignore=skip)
    env = {**os.environ, "STATIC_ROOT": str(app / "staticfiles"), "VAR_DIR": str(root / "build-var")}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=app, env=env, check=True)
    for folder, _dirs, files in os.walk(app):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return app


def dotenv(values: dict) -> dict:
    """.env.example's settings with the site's values, and what docker-compose.yml itself sets."""
    env = documented_settings()
    env.update(values)
    return env


class Service:
    """One compose service's command, run as the unprivileged user."""

    def __init__(self, name: str, command: list[str], env: dict, app: Path, logs: Path):
        self.name, self.log_path = name, logs / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command,
            cwd=app,
            env=env,
            user=NOBODY,
            group=NOBODY,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop_group(self.process)
        self._log.close()


def wait_for(condition, timeout: float, what: str, services=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout}s\n" + "\n".join(f"== {s.name}\n{s.log()[-3000:]}" for s in services))


class OuterProxy:
    """The TLS terminator in front of nginx: what a browser at ``client`` sends to https://PUBLIC
    arrives at nginx over HTTP with X-Forwarded-Proto and X-Forwarded-For."""

    def __init__(self, nginx_port: int):
        self.base = f"http://127.0.0.1:{nginx_port}"
        self.session = requests.Session()

    def request(self, method: str, url: str, client: str, **kwargs):
        url = url.replace(f"https://{PUBLIC}", self.base) if url.startswith("https://") else self.base + url
        headers = {"Host": PUBLIC, "X-Forwarded-Proto": "https", "X-Forwarded-For": client, **kwargs.pop("headers", {})}
        return self.session.request(method, url, headers=headers, allow_redirects=False, timeout=30, **kwargs)


def direct_client(nginx_port: int) -> requests.Session:
    """A client on another address (127.0.0.2) that talks to nginx itself, bypassing the proxy."""
    from requests.adapters import HTTPAdapter

    class FromAddress(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = ("127.0.0.2", 0)
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("http://", FromAddress())
    return session


def study_zip(folder: Path) -> Path:
    voxels = (np.arange(8 * 32 * 24, dtype=np.int16).reshape(8, 32, 24) % 900) - 400
    paths = dicomgen.write_volume(
        folder / "ct",
        voxels,
        Modality="CT",
        PatientName=PATIENT_NAME,
        PatientID=PATIENT_ID,
        WindowCenter=40,
        WindowWidth=400,
    )
    return make_zip(folder / "ct.zip", {p.name: p for p in paths})


def runs_unprivileged() -> bool:
    """Can the unprivileged user run the project's Python (.ci/run makes sure it can)?"""
    return subprocess.run([sys.executable, "-c", "import django"], user=NOBODY, group=NOBODY).returncode == 0


def test_the_compose_stack_run_natively_behind_an_outer_tls_proxy(moto, django_user_model):
    if not runs_unprivileged():
        pytest.skip(f"{sys.executable} cannot be run by an unprivileged user here (.ci/run lets it)")
    from django.core.cache import cache

    cache.clear()  # the shared cache (Redis) may hold rate-limit budgets of an earlier run this hour
    root = Path(tempfile.mkdtemp(prefix="dicomviewer-prod-", dir="/tmp"))
    os.chmod(root, 0o755)
    data = root / "data"
    (data / "var").mkdir(parents=True)
    os.chown(data, NOBODY, NOBODY)
    os.chown(data / "var", NOBODY, NOBODY)
    app = read_only_copy(root)
    files_before = sorted(str(p) for p in app.rglob("*"))
    moto_bucket = "dicomviewer"  # the bucket nginx's /dicomviewer/ location passes to "minio"
    if moto_bucket not in [b["Name"] for b in moto.client().list_buckets()["Buckets"]]:
        moto.client().create_bucket(Bucket=moto_bucket)
    web_port, nginx_port = free_port(), free_port()
    env = dotenv(
        {
            # compose's x-app environment, service names resolved to this machine
            "PRODUCTION": "1",
            "SECRET_KEY": "production-shape-test-secret-0123456789abcdef",
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            **moto.env(moto_bucket),
            "IMAGE_URL_S3_ENDPOINT": f"https://{PUBLIC}",
            "TRUSTED_PROXIES": "127.0.0.1/32",  # nginx, and the outer proxy, both here
            "VAR_DIR": str(data / "var"),
            "SCRATCH_DIR": str(data / "var" / "scratch"),
            "MEDIA_ROOT": str(data / "media"),
            "STATIC_ROOT": str(app / "staticfiles"),
            "HOST": "127.0.0.1",
            "PORT": str(web_port),
            # the operator's .env
            "ALLOWED_HOSTS": PUBLIC,
            "CSRF_TRUSTED_ORIGINS": f"https://{PUBLIC}",
            "PUBLIC_URL": f"https://{PUBLIC}",
            "LOG_FORMAT": "json",
            "RATE_LIMIT_TOKEN": "3/hour",  # a fixed window: an hour is not crossed during the test
            "CLEANUP_INTERVAL": "2",
            "CELERY_QUEUE": f"prod-{uuid.uuid4().hex[:8]}",
            "CELERY_VISIBILITY_TIMEOUT": "30",
            "WORKER_CONCURRENCY": "1",
        }
    )
    env.update(PATH=os.environ["PATH"], HOME=str(data), PYTHONDONTWRITEBYTECODE="1", LANG="C.UTF-8")
    python = sys.executable
    logs = root / "logs"
    logs.mkdir()
    services = []
    from bench import nginx as deploy_nginx

    proxy_server = None
    try:
        migrate = Service(
            "migrate",
            ["sh", "-c", f"{python} manage.py migrate --noinput && {python} manage.py ensure_admin"],
            env,
            app,
            logs,
        )
        assert migrate.process.wait(timeout=120) == 0, migrate.log()
        for name in ("web", "worker", "beat"):
            services.append(Service(name, [python, "manage.py", "serve", name], env, app, logs))
        proxy_server = deploy_nginx.Nginx(root, [(nginx_port, web_port)], data / "media", moto.url, user="www-data")
        outer = OuterProxy(nginx_port)
        wait_for(lambda: outer.request("GET", "/healthz", "192.0.2.1").status_code == 200, 60, "web up", services)
        wait_for(lambda: " ready." in services[1].log(), 60, "worker up", services)
        run_as_users_would(outer, nginx_port, moto, moto_bucket, django_user_model, services)
    finally:
        for service in services:
            service.stop()
        if proxy_server:
            proxy_server.stop()
    assert sorted(str(p) for p in app.rglob("*")) == files_before, "nothing was written into the code"
    assert not (data / "media").exists() or not any((data / "media").rglob("*")), "no media on local disk"
    for service in services + [migrate]:
        text = service.log()
        assert PATIENT_NAME.split("^")[0] not in text and PATIENT_ID not in text, (
            f"patient data in {service.name}'s log"
        )
    nginx_log = (root / "nginx" / "access.log").read_text()
    assert "PatientName" not in nginx_log and PATIENT_ID not in nginx_log and "search=" not in nginx_log
    access = [json.loads(line) for line in services[0].log().splitlines() if '"gunicorn.access"' in line]
    assert access and all(re.search(r"[0-9a-f]{32}$", entry["message"]) for entry in access), "request ids"
    shutil.rmtree(root, ignore_errors=True)


def run_as_users_would(outer: OuterProxy, nginx_port: int, moto, bucket: str, users, services):
    from studies.models import Instance, Series, Upload

    # any Host may ask for /healthz (a load balancer asks by address)
    assert requests.get(f"http://127.0.0.1:{nginx_port}/healthz", headers={"Host": "10.1.2.3"}).status_code == 200
    alice = users.objects.create_user("alice", password="a-long-production-password-42")

    # sign in on the page (secure cookies, CSRF checked against the https origin)
    page = outer.request("GET", "/accounts/login/", "198.51.100.20")
    csrf = page.cookies["csrftoken"]
    signed_in = outer.request(
        "POST",
        "/accounts/login/",
        "198.51.100.20",
        data={"username": "alice", "password": "a-long-production-password-42", "csrfmiddlewaretoken": csrf},
        headers={
            "Cookie": f"csrftoken={csrf}",
            "Referer": f"https://{PUBLIC}/accounts/login/",
            "Origin": f"https://{PUBLIC}",
        },
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    assert "secure" in signed_in.headers["Set-Cookie"].lower()
    session = signed_in.cookies["sessionid"]
    assert outer.request("GET", "/", "198.51.100.20", headers={"Cookie": f"sessionid={session}"}).status_code == 200

    # an API token, an upload, and its progress
    token = outer.request(
        "POST",
        "/api/auth/token/",
        "198.51.100.21",
        data={"username": "alice", "password": "a-long-production-password-42"},
    )
    auth = {"Authorization": f"Token {token.json()['token']}"}
    with open(study_zip(Path(tempfile.mkdtemp(dir="/tmp"))), "rb") as fp:
        sent = outer.request("POST", "/api/uploads/", "198.51.100.21", files={"file": ("ct.zip", fp)}, headers=auth)
    assert sent.status_code == 202, sent.text
    assert sent.json()["url"].startswith(f"https://{PUBLIC}/api/uploads/")
    done = wait_for(
        lambda: (
            (body := outer.request("GET", sent.json()["url"], "198.51.100.21", headers=auth).json())["status"]
            in ("done", "failed")
            and body
        ),
        120,
        "upload done",
        services,
    )
    assert done["status"] == "done", done["error"]

    # every plane image, from the bucket through nginx
    series = Series.objects.get(study__owner=alice)
    detail = outer.request("GET", f"/api/series/{series.pk}/", "198.51.100.21", headers=auth).json()
    for plane, info in detail["planes"].items():
        for index in range(info["count"]):
            signed = outer.request("GET", info["url"].replace("{index}", str(index)), "198.51.100.21")
            assert signed.status_code == 302 and signed.headers["Location"].startswith(f"https://{PUBLIC}/{bucket}/")
            image = outer.request("GET", signed.headers["Location"], "198.51.100.21")
            assert image.status_code == 200 and image.content[:4] == b"\x89PNG", (plane, index)

    # an original, byte for byte
    instance = Instance.objects.filter(series=series).first()
    original = outer.request("GET", f"/api/instances/{instance.pk}/file", "198.51.100.21", headers=auth)
    assert original.content == moto.client().get_object(Bucket=bucket, Key=instance.file)["Body"].read()
    assert instance.file in bucket_names(moto, bucket)

    # DICOMweb answers https URIs (the outer proxy's scheme), and searches by patient name
    qido = outer.request(
        "GET",
        "/dicomweb/studies?PatientName=Leakcheck*",
        "198.51.100.21",
        headers={**auth, "Accept": "application/dicom+json"},
    )
    assert qido.status_code == 200 and qido.json()[0]["00081190"]["Value"][0].startswith(f"https://{PUBLIC}/dicomweb/")
    outer.request("GET", f"/api/studies/?search={PATIENT_ID}", "198.51.100.21", headers=auth)

    # a rate limit per real client: five clients behind the proxies, three token requests each
    credentials = {"username": "alice", "password": "a-long-production-password-42"}
    for client in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"):
        answers = [outer.request("POST", "/api/auth/token/", client, data=credentials).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429], client
    # a client that talks to nginx itself cannot buy budgets by forging X-Forwarded-For
    direct = direct_client(nginx_port)
    answers = [
        direct.post(
            f"http://127.0.0.1:{nginx_port}/api/auth/token/",
            data=credentials,
            headers={"Host": PUBLIC, "X-Forwarded-For": f"198.18.0.{n}"},
        ).status_code
        for n in range(5)
    ]
    assert answers == [200, 200, 200, 429, 429]
    addresses = set(AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_CREATE).values_list("ip", flat=True))
    assert addresses == {
        "198.51.100.21",
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.5",
        "127.0.0.2",
    }

    # the scheduler's clean-up ran on a worker
    cleaned = re.compile(r"Task studies\.cleanup\[[0-9a-f-]+\] succeeded")
    wait_for(lambda: cleaned.search(services[1].log()), 30, "scheduled clean-up", services)
    assert Upload.objects.get(pk=sent.json()["id"]).status == Upload.Status.DONE
