"""Run the web server, the Celery worker, the scheduler, the DICOM network service, or web, worker
and DICOM service together (``make run``, with the scheduler inside the worker); Ctrl-C stops what
it started.

docker-compose.yml, ``make run`` and the end-to-end tests all start processes through this
command, so the deployment runs exactly what the tests exercise.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


def web_command(host: str, port: str, app: str = "dicomviewer.wsgi") -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"{host}:{port}",
        "--workers",
        os.environ.get("WEB_WORKERS", "2"),
        "--threads",
        os.environ.get("WEB_THREADS", "4"),
        "--worker-class",
        "dicomviewer.web_worker.BufferingWorker",  # gthread; requests read whole before a thread takes them
        "--timeout",
        "900",
        "--config",
        "python:dicomviewer.gunicorn_conf",  # access log without query strings, JSON logs
    ]


def worker_command(with_beat: bool = False) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dicomviewer",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        os.environ.get("WORKER_CONCURRENCY", str(os.cpu_count() or 2)),
        "--without-gossip",
        "--without-mingle",
    ]
    return command + ["--beat"] if with_beat else command  # one host: the scheduler inside the worker


def beat_command() -> list[str]:
    """The scheduler alone (one per deployment): it queues housekeeping, any worker does it."""
    return [sys.executable, "-m", "celery", "-A", "dicomviewer", "beat", "--loglevel", "INFO"]


def dicom_command() -> list[str]:
    """The DICOM network service (dicomnet.server) on DICOM_HOST:DICOM_PORT, in its own process."""
    from django.conf import settings

    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve", "dicom"]


def run_dicom() -> None:
    """Serve DIMSE in this process until SIGTERM or SIGINT. pynetdicom writes each received data
    set to a temporary file: here, in the scratch folder (cleanup_uploads sweeps leftovers)."""
    import tempfile

    from django.conf import settings

    from dicomnet.server import serve
    from dicomnet.services import check_dicom_settings
    from studies import scratch

    problem = check_dicom_settings()
    if problem:
        raise CommandError(problem)
    tempfile.tempdir = str(scratch.tmp_dir())
    try:
        serve(settings.DICOM_HOST, settings.DICOM_PORT, block=True)
    except OSError as exc:
        raise CommandError(
            f"The DICOM service cannot listen on {settings.DICOM_HOST}:{settings.DICOM_PORT} ({exc.strerror or exc}); "
            "set DICOM_PORT (or DICOM_HOST) to a free one."
        ) from None


def check_storage() -> None:
    """Refuse to start on a storage that cannot be used (no bucket, wrong credentials, endpoint
    down): better a clear error now than a failed upload later."""
    from studies import storage

    try:
        storage.check()
    except storage.StorageUnavailable as exc:
        raise CommandError(f"The file storage cannot be used: {exc}.") from None


def private_files() -> None:
    """What this command's processes create is their user's alone (umask 077): the SQLite file,
    the local broker, caches, scratch files. Storage files get MEDIA_FILE_MODE explicitly (nginx
    may have to read them); VAR_DIR and a storage folder from before are brought to the same."""
    from django.conf import settings

    from studies.storage_backends import dir_mode

    os.umask(0o077)
    database = settings.DATABASES["default"]
    sqlite = [Path(database["NAME"])] if database["ENGINE"].endswith("sqlite3") else []
    owned = [(settings.VAR_DIR, 0o700), (settings.MEDIA_ROOT, dir_mode()), (settings.SECRET_KEY_FILE, 0o600)]
    for path, mode in owned + [(path, 0o600) for path in sqlite]:
        try:
            if path.stat().st_uid == os.geteuid():
                path.chmod(mode)
        except OSError:
            pass  # not there (yet), or not ours


def metrics_dir(role: str) -> None:
    """Where this invocation's processes keep their Prometheus samples (dicomviewer/metrics.py),
    emptied now: samples of processes that are gone must not be added up with the living ones."""
    import shutil

    from django.conf import settings

    folder = settings.VAR_DIR / "metrics" / role
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


class Command(BaseCommand):
    help = (
        "Run the web server (gunicorn), the Celery worker, the scheduler (beat), the DICOM service, "
        "or web + worker + beat + DICOM service."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", nargs="?", choices=["all", "web", "worker", "beat", "dicom"], default="all")
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args, role, host, port, **options):
        check_storage()
        private_files()
        metrics_dir(role)
        commands = {}
        if role in ("all", "web"):
            commands["web"] = web_command(host, port)
        if role in ("all", "worker"):
            commands["worker"] = worker_command(with_beat=role == "all")
        if role == "beat":
            commands["beat"] = beat_command()
        if role == "all":
            commands["dicom"] = dicom_command()
        if role == "dicom":
            run_dicom()
            return
        if len(commands) == 1:
            os.execv(sys.executable, next(iter(commands.values())))
        self.run_together(commands, f"http://{host}:{port}/")

    def run_together(self, commands: dict, url: str):
        processes = {name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in commands.items()}
        self.stdout.write(
            f"dicomviewer is running on {url} (Ctrl-C stops the web server, the worker and the DICOM service)"
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with code {process.returncode}; stopping.")
                        exit_code, stopping = process.returncode or 1, True
                time.sleep(0.3)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()  # the main process stops its own children gracefully
            deadline = time.monotonic() + 20
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        sys.exit(exit_code)
