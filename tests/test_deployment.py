"""The deployment's own files: docker-compose.yml passes every documented setting, production mode
refuses what only suits one machine, /metrics answers only whom it should."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_front import call

SECRETS = {
    "SECRET_KEY": "compose-test-secret-key-0123456789-abcdefghij",
    "POSTGRES_PASSWORD": "compose-test-db-password-42",
    "MINIO_ROOT_PASSWORD": "compose-test-minio-password-42",
}


def documented_settings() -> dict[str, str]:
    """NAME=value lines of .env.example: every setting the project documents."""
    found = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def compose_config(tmp_path: Path, *files: str) -> dict:
    """`docker-compose config` of the shipped files, with a .env made from .env.example."""
    import yaml

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian's package) is not installed")
    for name in ("docker-compose.yml", "docker-compose.tls.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    settings = {**documented_settings(), **SECRETS}
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    command = ["docker-compose", *sum((["-f", str(tmp_path / f)] for f in files), []), "config"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_every_documented_setting_reaches_web_worker_beat_and_migrate(tmp_path):
    config = compose_config(tmp_path, "docker-compose.yml")
    documented = set(documented_settings())
    for service in ("web", "worker", "beat", "migrate"):
        environment = config["services"][service]["environment"]
        missing = documented - set(environment)
        assert not missing, (service, sorted(missing))
        assert environment["PRODUCTION"] == "1" and environment["SECRET_KEY"] == SECRETS["SECRET_KEY"]
        assert environment["VAR_DIR"] == "/data/var", "the container's own folders win over .env's"
    ports = config["services"]["nginx"]["ports"]
    assert [str(p.get("published", p)) if isinstance(p, dict) else p.split(":")[0] for p in ports] == ["8080"], (
        "nginx is published on HTTP_PORT, not on the app's PORT"
    )
    for service in ("web", "worker", "beat"):
        assert config["services"][service]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "migrate" not in " ".join(config["services"]["web"]["command"]), "only the migrate service migrates"


def test_the_tls_override_adds_https_to_nginx(tmp_path):
    config = compose_config(tmp_path, "docker-compose.yml", "docker-compose.tls.yml")
    volumes = " ".join(str(v) for v in config["services"]["nginx"]["volumes"])
    assert "nginx-tls.conf" in volumes and "/etc/nginx/certs" in volumes


def test_missing_secrets_stop_compose_with_the_reason(tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian's package) is not installed")
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("")
    result = subprocess.run(["docker-compose", "config", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert re.search(r"set (SECRET_KEY|POSTGRES_PASSWORD|MINIO_ROOT_PASSWORD) in \.env", result.stderr)


def test_secrets_stay_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and "!.env.example" in ignored


def start_settings(**env) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with exactly this environment."""
    code = "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='dicomviewer.settings'; django.setup()"
    base = {"PATH": "/usr/bin:/bin", "VAR_DIR": env.pop("VAR_DIR")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True, text=True)


@pytest.mark.parametrize(
    "env, reason, one_host_may",
    [
        ({}, "DATABASE_URL is not set, or is SQLite", True),
        ({"CELERY_BROKER_URL": ""}, "CELERY_BROKER_URL is not set", True),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set", True),
        (
            {"DATABASE_URL": "postgres://u:dicomviewer@db/x"},
            "the database password in DATABASE_URL is a placeholder",
            False,
        ),
        ({"SECRET_KEY": "short-key-but-not-empty"}, "SECRET_KEY is shorter than 32 characters", False),
        ({"DEBUG": "1"}, "DEBUG is on", False),
    ],
)
def test_production_mode_refuses_one_machine_defaults_with_a_one_line_reason(tmp_path, env, reason, one_host_may):
    good = {
        "PRODUCTION": "1",
        "SECRET_KEY": "production-test-secret-key-0123456789abcdef",
        "DATABASE_URL": "postgres://app:Zq8-not-a-placeholder@db.internal/dicomviewer",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    }
    bad = {**good, **env}
    if env == {}:
        bad.pop("DATABASE_URL")
    if env.get("SECRET_KEY") == "":
        (tmp_path / "secret_key").write_text("a-key-make-run-generated-on-this-host-0123456789")
    result = start_settings(VAR_DIR=str(tmp_path), **bad)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("django.core.exceptions.ImproperlyConfigured: PRODUCTION=1 refuses to start") and reason in last
    )
    assert start_settings(VAR_DIR=str(tmp_path), **good).returncode == 0
    one_host = start_settings(VAR_DIR=str(tmp_path), **bad, ALLOW_EMBEDDED="1")
    assert (one_host.returncode == 0) == one_host_may, one_host.stderr[-500:]


@pytest.mark.django_db(transaction=True)
def test_metrics_answer_only_with_the_token_or_from_its_networks(settings, user, tmp_path, eager_celery):
    from tests.conftest import ingest_zip
    from tests.test_storage_s3 import study_zip

    settings.METRICS_TOKEN = "metrics-token-for-the-test"
    settings.METRICS_NETWORKS = ["10.0.0.0/8"]
    ingest_zip(user, study_zip(tmp_path))
    assert call("/metrics", peer="198.51.100.7")[0] == 404
    assert call("/metrics", peer="198.51.100.7", headers={"Authorization": "Bearer wrong"})[0] == 404
    status, _, body, _ = call(
        "/metrics", peer="198.51.100.7", headers={"Authorization": "Bearer metrics-token-for-the-test"}
    )
    text = body.decode()
    assert status == 200 and "dicomviewer_queue_depth" in text and 'dicomviewer_uploads{status="done"} 1.0' in text
    assert re.search(r"dicomviewer_images_rendered_total [1-9]", text)
    assert 'dicomviewer_ingest_stage_duration_seconds_count{stage="total"}' in text
    call("/api/studies/")  # a request: its latency is counted under its route, never its path
    status, _, body, _ = call("/metrics", peer="10.9.8.7")
    assert status == 200
    # DRF's router gives the pattern "api/studies/$"
    assert 'dicomviewer_http_request_duration_seconds_count{method="GET",route="api/studies/$",status="4xx"}' in (
        body.decode()
    )
