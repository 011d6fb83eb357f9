"""The speed benchmark: the running app (web + real worker) against the floor, as JSON.

    make bench                       # SQLite + filesystem broker (embedded defaults)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dicomviewer CELERY_BROKER_URL=redis://127.0.0.1:6379/0 make bench

With DATABASE_URL set the benchmark uses its own database (<name>_bench, created afresh).
It starts `manage.py serve all` on a free port with scratch media, then measures:

- floor: bench/floor.py on the same 500-slice CT (read, stack, LUT window, OpenCV PNG x2 threads)
- ct500 / ct1000: upload over HTTP -> first (middle axial) image fetchable -> every plane image
  and the thumbnail rendered; stage timeline; peak worker memory; on-demand renders requested
  while the series is still rendering
- serving: the signed image URLs the viewer gets, 16 concurrent clients, next to the floor (a trivial
  WSGI app under gunicorn with the same settings that returns the same files); again through
  deploy/nginx.conf (X-Accel-Redirect) when nginx is installed
- s3: the 500-slice ingest with storage in a bucket (moto's S3 server), and the image redirects
- study_list: /api/studies/ with 10,000 studies, and its query count per page size
- values: the probe (value under a point) on every plane and ROI statistics on 512x512 axial
  slices of the 500-slice CT, over HTTP, warm (targets: probe p95 < 30 ms, ROI p95 < 80 ms);
  `bench/run.py values` runs only this (with its ingest); beside them the floor, the image path's
  redirect (an API answer that checks access and does nothing else)
- small: 3000 instances of 64x64 in 30 series in one ZIP, instances per second, in turns with
  Orthanc's ingest of the same ZIP: ``--pairs N`` pairs (or BENCH_SMALL_PAIRS; 3 by default), each
  run on a fresh store after os.sync() and a pause, the ratio from the medians
- lidc: the shared 275-slice LIDC CT as it is
- orthanc / versus: Debian's Orthanc (bench/orthanc.py) on the small, 500-slice and LIDC ZIPs and
  its previews at 16 clients, then the side-by-side table with ratios and targets (bench/versus.py);
  `bench/run.py orthanc [--pairs N]` runs only this part with the app's figures it needs
- slabs: bench/slabs.py, MIP/MinIP/average slabs of 10 and 30 mm against a plain on-demand image
  of the same plane of the shared 275-slice CT (target: within 3x)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(REPO))

from bench import data, floor, procs, slabs, versus  # noqa: E402
from bench import nginx as bench_nginx  # noqa: E402
from bench import orthanc as bench_orthanc  # noqa: E402
from bench.moto_s3 import MotoS3, free_port  # noqa: E402

PASSWORD = "bench-password-123"
PAIRS = 3  # the small-image ingest, ours then Orthanc's, this many times (--pairs, BENCH_SMALL_PAIRS)
SETTLE_S = 3.0  # the pause before each of those runs, after os.sync()


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "n": len(values),
        "p50_ms": pick(0.5),
        "p90_ms": pick(0.9),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def prepare_environment(scratch: Path) -> dict:
    env = dict(os.environ)
    env.update(
        VAR_DIR=str(scratch / "var"),
        MEDIA_ROOT=str(scratch / "media"),
        SECURE_COOKIES="0",
        SECRET_KEY="bench-" + "k" * 50,
        CELERY_QUEUE=f"bench-{os.getpid()}",
        DEBUG="0",
        MEDIA_FILE_MODE="0644",  # nginx's workers (another user) send the files in the nginx rounds
    )
    if os.environ.get("DATABASE_URL"):
        import dj_database_url
        import psycopg2

        config = dj_database_url.parse(os.environ["DATABASE_URL"])
        name = f"{config['NAME']}_bench"
        admin = psycopg2.connect(
            dbname="postgres",
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            host=config["HOST"] or None,
            port=config["PORT"] or None,
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    os.environ.update(env)
    return env


def start(command: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start; see its log in bench/out/scratch/")


class App:
    """`manage.py serve all` in a subprocess, plus a sampler of its worker processes' memory."""

    def __init__(self, env: dict, scratch: Path, name: str = "app"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
        command = [sys.executable, "manage.py", "serve", "all", "--port", str(self.port)]
        # `serve all` starts the DICOM service too: on a free port, so a bench never meets a running app's
        extra = {"WEB_WORKERS": "2", "WORKER_CONCURRENCY": "2", "DICOM_PORT": str(free_port())}
        self.process = start(command, {**extra, **env}, scratch / f"{name}.log")
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok and self.worker_pids(), name)
        time.sleep(1.0)  # the worker finishes connecting to its broker
        self.peak_rss = 0
        self._sampling = True
        self._measuring = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def worker_pids(self) -> list[int]:
        """Celery processes started (directly or not) by our `serve all`."""
        return [pid for pid, command in procs.descendants(self.process.pid).items() if b"celery" in command]

    @staticmethod
    def rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        """Peak memory of the worker processes while an ingest runs (paused otherwise, so as not to
        take CPU from the serving measurements); the process list is refreshed once a second."""
        pids, listed = [], 0.0
        while self._sampling:
            if self._measuring.is_set():
                if time.monotonic() - listed > 1.0:
                    pids, listed = self.worker_pids(), time.monotonic()
                self.peak_rss = max([self.peak_rss] + [self.rss(pid) for pid in pids])
            time.sleep(0.05)

    def reset_peak(self):
        self.peak_rss = 0
        self._measuring.set()

    def pause_sampling(self):
        self._measuring.clear()

    def stop(self):
        self._sampling = False
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def session_for(app: App, username: str) -> requests.Session:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if not User.objects.filter(username=username).exists():
        User.objects.create_user(username, password=PASSWORD)
    token = requests.post(f"{app.url}/api/auth/token/", data={"username": username, "password": PASSWORD}).json()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token['token']}"
    return session


POLL_FIRST_S, POLL_REST_S = 0.05, 0.1


def ingest_run(app: App, session: requests.Session, zip_path: Path, probe_on_demand: bool = True) -> dict:
    """Upload over HTTP and time what a user waits for."""
    app.reset_peak()
    posted = time.perf_counter()
    with open(zip_path, "rb") as fp:
        response = session.post(f"{app.url}/api/uploads/", files={"file": (zip_path.name, fp, "application/zip")})
    t0 = time.perf_counter()
    response.raise_for_status()
    status_url = response.json()["url"]
    timeline, first_image_s, series, on_demand = [], None, None, []
    stop = threading.Event()

    def probe(series_info):
        """Ask for images the workers have probably not reached yet, as a viewer scrolling would."""
        rng = random.Random(1)
        planes = [p for p in ("coronal", "sagittal") if p in series_info["planes"]]
        while not stop.is_set() and planes:
            plane = rng.choice(planes)
            index = rng.randrange(series_info["planes"][plane]["count"])
            started = time.perf_counter()
            reply = session.get(f"{app.url}/api/series/{series_info['id']}/planes/{plane}/{index}.png")
            on_demand.append((reply.status_code, time.perf_counter() - started))
            time.sleep(0.1)

    prober = None
    while True:
        body = session.get(status_url).json()
        now = time.perf_counter() - t0
        if not timeline or timeline[-1][1] != body["stage"]:
            timeline.append((round(now, 3), body["stage"], body["progress"]))
        if series is None and body["studies"]:
            study = session.get(f"{app.url}/api/studies/{body['studies'][0]}/").json()
            biggest = max(study["series"], key=lambda s: s["num_instances"])
            series = session.get(f"{app.url}/api/series/{biggest['id']}/").json()
        if series is not None and first_image_s is None and series["planes"]:
            plane = "axial" if "axial" in series["planes"] else "stack"
            index = series["planes"][plane]["count"] // 2 if plane == "axial" else 0
            reply = session.get(f"{app.url}/api/series/{series['id']}/planes/{plane}/{index}.png")
            if reply.status_code == 200:
                first_image_s = time.perf_counter() - t0
                if probe_on_demand:
                    prober = threading.Thread(target=probe, args=(series,), daemon=True)
                    prober.start()
        if body["status"] in ("done", "failed"):
            break
        # 20 polls a second until the first image, 10 after (the upload page polls once a second): at
        # 100 a second, as before, the status requests took a good part of a core from the ingest
        time.sleep(POLL_FIRST_S if first_image_s is None else POLL_REST_S)
    done_s = time.perf_counter() - t0
    app.pause_sampling()
    stop.set()
    if prober:
        prober.join()
    series = session.get(f"{app.url}/api/series/{series['id']}/").json()
    ok = [seconds for code, seconds in on_demand if code == 200]
    return {
        "status": body["status"],
        "error": body["error"],
        "instances": body["files_dicom"],
        "images": series["images_total"],
        "first_image_s": round(first_image_s, 3) if first_image_s else None,
        "all_images_s": round(done_s, 3),
        "upload_s": round(t0 - posted, 3),  # the POST itself; the times above start when it returns
        "first_image_from_post_s": round(first_image_s + t0 - posted, 3) if first_image_s else None,
        "all_images_from_post_s": round(done_s + t0 - posted, 3),
        "images_per_s": round(series["images_total"] / done_s, 1),
        "instances_per_s": round(body["files_dicom"] / done_s, 1),
        "timeline": timeline,
        "peak_worker_rss_mb": round(app.peak_rss / 2**20, 1),
        "on_demand_while_rendering": {**percentiles(ok), "not_ready_503": sum(c == 503 for c, _ in on_demand)},
        "series_id": series["id"],
        "planes": {name: info["count"] for name, info in series["planes"].items()},
    }


class Web:
    """A gunicorn of the app (``serve web``) or of the floor (bench/floor_server.py), with the app's
    worker settings, on a free port."""

    def __init__(self, env: dict, scratch: Path, name: str, floor_app: bool = False):
        from studies.management.commands.serve import web_command

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = "bench.floor_server:application" if floor_app else "dicomviewer.wsgi"
        command = web_command("127.0.0.1", str(self.port), app)
        self.process = start(command, {"WEB_WORKERS": "2", "WEB_THREADS": "4", **env}, scratch / f"{name}.log")
        wait_for(lambda: requests.get(self.url + "/healthz", timeout=1) is not None, name)

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def image_paths(session: requests.Session, url: str, series_id: int) -> list[str]:
    """The signed URLs of every image of a series, as the viewer gets them (series JSON)."""
    info = session.get(f"{url}/api/series/{series_id}/").json()
    return [p["url"].replace("{index}", str(i)) for p in info["planes"].values() for i in range(p["count"])]


def compare(app_url: str, floor_url: str, paths: list[str], rounds: int = 2, seconds: float = 8) -> dict:
    """The app and the floor in turns (the best round of each): req/s, p50/p99 and their ratios."""
    app_runs, floor_runs = [], []
    for _ in range(rounds):
        app_runs.append(load(app_url, paths, seconds=seconds))
        floor_runs.append(load(floor_url, paths, seconds=seconds))
    app = max(app_runs, key=lambda r: r["requests_per_s"])
    floor = max(floor_runs, key=lambda r: r["requests_per_s"])
    return {
        "app": app,
        "floor": floor,
        "rps_ratio": round(app["requests_per_s"] / floor["requests_per_s"], 2),
        "p99_ratio": round(app["p99_ms"] / floor["p99_ms"], 2) if floor.get("p99_ms") else None,
        "targets": "rps_ratio >= 0.8, p99_ratio <= 1.5",
    }


def serving_run(app: App, session: requests.Session, series_id: int, env: dict, scratch: Path) -> dict:
    """16 clients fetching random images of a 500-image series through the URLs the viewer is given,
    against the floor with the same files; and the same through deploy/nginx.conf when nginx is here."""
    paths = image_paths(session, app.url, series_id)
    media = Path(env["MEDIA_ROOT"])
    floor_env = {**env, "FLOOR_MEDIA_ROOT": str(media)}
    results = {"images": len(paths)}
    floor_web = Web(floor_env, scratch, "floor-web", floor_app=True)
    try:
        results["direct"] = compare(app.url, floor_web.url, paths)
    finally:
        floor_web.stop()
    if bench_nginx.available():
        app_web = Web({**env, "MEDIA_ACCEL_REDIRECT": "/protected-media/"}, scratch, "app-web-accel")
        floor_web = Web({**floor_env, "FLOOR_ACCEL": "/protected-media/"}, scratch, "floor-web-accel", floor_app=True)
        ports = [free_port(), free_port()]
        proxy = bench_nginx.Nginx(scratch, [(ports[0], app_web.port), (ports[1], floor_web.port)], media)
        try:
            results["nginx"] = compare(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", paths)
        finally:
            proxy.stop()
            app_web.stop()
            floor_web.stop()
    return results


def load(base_url: str, paths: list[str], clients: int = 16, seconds: float = 10) -> dict:
    """``clients`` concurrent clients GETting random ``paths``. With wrk installed (apt-get install
    wrk) the load comes from wrk, in C; else from Python threads, which take much of the CPU themselves."""
    if shutil.which("wrk"):
        return wrk_run(base_url, paths, clients, seconds)
    urls = [base_url + path for path in paths]
    latencies, errors = [], []
    deadline = time.monotonic() + seconds

    def client(seed):
        rng = random.Random(seed)
        local = requests.Session()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = local.get(rng.choice(urls), allow_redirects=False)
            elapsed = time.perf_counter() - started
            if reply.status_code in (200, 302):
                latencies.append(elapsed)
            else:
                errors.append(reply.status_code)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {
        "client": "python",
        "clients": clients,
        "seconds": seconds,
        **percentiles(latencies),
        "errors": len(errors),
        "requests_per_s": round(len(latencies) / seconds, 1),
    }


def wrk_run(base_url: str, paths: list[str], clients: int, seconds: float) -> dict:
    listing = OUT / "scratch" / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    env = {**os.environ, "WRK_PATHS": str(listing)}
    # a slow answer counts in the percentiles (wrk drops requests past its timeout, 2 s by default)
    command = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{int(seconds)}s", "--timeout", "30s"]
    command += ["-s", str(BENCH / "serve.lua"), base_url]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    summary = json.loads(next(line for line in output.splitlines() if line.startswith("JSON "))[5:])
    return {
        "client": "wrk",
        "clients": clients,
        "seconds": seconds,
        **summary,
        "requests_per_s": round(summary["requests"] / seconds, 1),
    }


def s3_run(env: dict, scratch: Path, ct500: Path, floor_s: float) -> dict:
    """The 500-slice ingest with storage in a bucket (moto's S3 server, a Python process on this
    machine: a slow S3, so this is an upper bound), and image URLs answered by redirects to it."""
    bucket = MotoS3(scratch / "moto.log")
    bucket.client().create_bucket(Bucket="bench")
    s3_env = {
        **env,
        **bucket.env("bench"),
        "SCRATCH_DIR": str(scratch / "s3-scratch"),
        "MEDIA_ROOT": str(scratch / "s3-none"),
    }
    app = App(s3_env, scratch, "app-s3")
    try:
        session = session_for(app, "bench-s3")
        result = ingest_run(app, session, ct500, probe_on_demand=False)
        result["floor_ratio"] = round(result["all_images_s"] / floor_s, 2)
        paths = image_paths(session, app.url, result["series_id"])
        result["redirects"] = load(app.url, paths, seconds=8)  # the app's part: 302 to a presigned URL
        rng = random.Random(3)
        times = []
        with requests.Session() as browser:
            for path in rng.sample(paths, 200):  # and a browser's: the redirect, then the object
                started = time.perf_counter()
                assert browser.get(app.url + path).content[:4] == b"\x89PNG"
                times.append(time.perf_counter() - started)
        result["image_with_redirect_one_client"] = percentiles(times)
        return result
    finally:
        app.stop()
        bucket.stop()


def study_list_run(app: App, studies: int = 10_000) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from studies.models import Patient, Study

    User = get_user_model()
    user = User.objects.create_user("bench-list", password=PASSWORD)
    patients = Patient.objects.bulk_create(
        [Patient(owner=user, patient_id=f"P{i:06d}", name=f"Doe^Pat{i}") for i in range(studies // 4)]
    )
    Study.objects.bulk_create(
        [
            Study(
                owner=user,
                patient=patients[i % len(patients)],
                study_instance_uid=f"2.25.{i}",
                modalities="CT",
                description=f"Study {i}",
                accession_number=f"A{i:07d}",
            )
            for i in range(studies)
        ],
        batch_size=2000,
    )
    if connection.vendor == "postgresql":
        # what autovacuum does shortly after a bulk load; without statistics the planner sorts all
        # 10,000 rows for each page instead of walking the (study_date, id) index
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    session = session_for(app, "bench-list")
    timings = []
    for page in range(1, 31):
        started = time.perf_counter()
        reply = session.get(f"{app.url}/api/studies/", params={"page": page})
        timings.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text
    client = Client()
    client.force_login(user)
    queries = {}
    for size in (10, 50, 100):
        with CaptureQueriesContext(connection) as captured:
            client.get("/api/studies/", {"page_size": size}, HTTP_HOST="127.0.0.1")
        queries[size] = len(captured.captured_queries)
    return {"studies": studies, **percentiles(timings), "queries_by_page_size": queries}


def values_run(app: App, session: requests.Session, series_id: int, requests_each: int = 300) -> dict:
    """Probe and ROI answers as the viewer asks for them: one client, warm (each plane image asked
    once before the timing), points and shapes at random on images near each other."""
    info = session.get(f"{app.url}/api/series/{series_id}/").json()
    planes = {name: p for name, p in info["planes"].items() if name in ("axial", "coronal", "sagittal")}
    rng = random.Random(7)
    base = f"{app.url}/api/series/{series_id}/planes"

    def probe_url(name, index):
        plane = planes[name]
        x, y = rng.uniform(0, plane["width"] - 1), rng.uniform(0, plane["height"] - 1)
        return f"{base}/{name}/{index}/probe?x={x:.2f}&y={y:.2f}"

    def roi_url(index):
        size = rng.uniform(10, 200)
        x0, y0 = rng.uniform(0, 511 - size), rng.uniform(0, 511 - size)
        shape = rng.choice(("ellipse", "rectangle"))
        return f"{base}/axial/{index}/roi?shape={shape}&x0={x0:.1f}&y0={y0:.1f}&x1={x0 + size:.1f}&y1={y0 + size:.1f}"

    def timed(urls: list[str], expect: int = 200) -> list[float]:
        for url in urls[:20]:  # warm: each web process opens the volume, the images are cut once
            assert session.get(url, allow_redirects=False).status_code == expect
        times = []
        for url in urls:
            started = time.perf_counter()
            reply = session.get(url, allow_redirects=False)
            times.append(time.perf_counter() - started)
            assert reply.status_code == expect, reply.text
        return times

    middle = {name: plane["count"] // 2 for name, plane in planes.items()}
    probes = [probe_url(name, middle[name] + rng.randrange(-2, 3)) for name in planes for _ in range(requests_each)]
    rois = [roi_url(middle["axial"] + rng.randrange(-2, 3)) for _ in range(requests_each)]
    assert planes["axial"]["width"] == 512 and planes["axial"]["height"] == 512
    # the floor: the same client's cheapest API answer that checks access (an image path's redirect)
    redirects = [f"{base}/axial/{middle['axial'] + rng.randrange(-2, 3)}.png" for _ in range(requests_each)]
    return {
        "api_floor_redirect": percentiles(timed(redirects, 302)),
        "probe": {**percentiles(timed(probes)), "target_p95_ms": 30},
        "roi_512": {**percentiles(timed(rois)), "target_p95_ms": 80},
    }


def setup() -> tuple[Path, dict]:
    """A fresh scratch folder and the environment (database, broker) of the app under test."""
    scratch = OUT / "scratch"
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    scratch.mkdir(parents=True)
    env = prepare_environment(scratch)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
    django.setup()
    return scratch, env


def values_only() -> None:
    """`bench/run.py values`: the 500-slice CT ingested, then only the values measurement."""
    scratch, env = setup()
    ct500 = data.ct_zip(OUT / "ct500.zip", 500)
    app = App(env, scratch)
    try:
        session = session_for(app, "bench")
        ingest = ingest_run(app, session, ct500, probe_on_demand=False)
        results = {"values": values_run(app, session, ingest["series_id"])}
    finally:
        app.stop()
    print(json.dumps(results, indent=2))


def small_zip() -> Path:
    """3000 64x64 images in 30 series (also bench/ingest.py's `small`)."""
    return data.small_images_zip(OUT / "small3000x30.zip", 3000, series=30)


def side_inputs() -> dict[str, Path]:
    """The ZIPs measured beside Orthanc: 3000 small images in 30 series, the 500-slice CT and the
    shared 275-slice LIDC CT."""
    inputs = {"small": small_zip(), "ct500": data.ct_zip(OUT / "ct500.zip", 500)}
    if data.CT_SOURCE.is_file():
        inputs["lidc"] = data.CT_SOURCE
    return inputs


def run_facts(env: dict, scratch: Path, ct500: Path) -> dict:
    """Where the run happens, and the floor on the 500-slice CT."""
    results = {
        "database": env.get("DATABASE_URL", "sqlite").split("@")[-1],
        "broker": (env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or "filesystem").split("@")[-1],
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    results["floor"] = floor.run(ct500, scratch / "floor")
    subprocess.run(["rm", "-rf", str(scratch / "floor")], check=True)
    return results


def settle(pause_s: float) -> None:
    """Before a timed ingest: the disk writes what earlier runs left, then a pause (the disk's speed
    for creating files varies a lot from one minute to the next: one run each would mostly compare that)."""
    os.sync()
    time.sleep(pause_s)


def small_pairs(app: App, zip_path: Path, folder: Path, pairs: int, pause_s: float = SETTLE_S) -> tuple[list, object]:
    """The small-image ingest ``pairs`` times in turns: the app's (a new user each time, so that
    nothing of the ZIP is stored yet), then Orthanc's (emptied first, and every instance must be
    stored anew). Returns (the app's runs, Orthanc's runs or {"skipped": why})."""
    with zipfile.ZipFile(zip_path) as zf:
        expected = sum(not name.endswith("/") for name in zf.namelist())
    ours, theirs = [], []
    missing = bench_orthanc.skip_reason()  # bench_orthanc.run says so too
    server, reason = None, missing
    if reason is None:
        try:
            server = bench_orthanc.Orthanc(folder)
        except (RuntimeError, OSError) as error:
            reason = str(error)
    try:
        for pair in range(1, pairs + 1):
            session = session_for(app, f"bench-small-{pair}")
            settle(pause_s)
            run = ingest_run(app, session, zip_path, probe_on_demand=False)
            if run["status"] != "done" or run["instances"] != expected:
                raise SystemExit(f"the small ingest stored {run['instances']} of {expected} instances: {run['error']}")
            ours.append(run)
            if server is not None:
                try:
                    server.clear()
                    settle(pause_s)
                    theirs.append(bench_orthanc.ingest(server, zip_path, fresh=True))
                    if theirs[-1]["instances"] != expected:
                        raise RuntimeError(f"Orthanc stored {theirs[-1]['instances']} of {expected} instances")
                except (RuntimeError, OSError, requests.RequestException) as error:
                    reason = str(error)
                    server.stop()
                    server = None
            print(f"small ingest, pair {pair} of {pairs} done", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder / "storage", ignore_errors=True)
    if reason is not None:
        if reason != missing:
            print(f"Orthanc skipped for the small images: {reason}", flush=True)
        return ours, {"skipped": reason}
    return ours, theirs


def beside_orthanc(results: dict, ours: dict, scratch: Path, inputs: dict[str, Path], small_theirs) -> None:
    """Orthanc on the same CT ZIPs (the small one ran in turns with the app's: ``small_theirs``),
    then the side-by-side table (printed at the end of the run)."""
    results["orthanc"] = bench_orthanc.run(scratch / "orthanc", inputs, load)
    if "skipped" not in results["orthanc"] and isinstance(small_theirs, list):
        results["orthanc"]["small"] = small_theirs
    results["versus"] = versus.compare(ours, results["orthanc"], results["floor"])
    results["load_average_end"] = os.getloadavg()[0]


def orthanc_only(pairs: int = PAIRS) -> None:
    """`bench/run.py orthanc`: only the side-by-side part (the floor, the small ZIP's ingest by the
    app and Orthanc in turns, the app's ingests of the CT ZIPs and its image URLs at 16 clients,
    then Orthanc on the same)."""
    OUT.mkdir(parents=True, exist_ok=True)
    inputs = side_inputs()
    scratch, env = setup()
    results = run_facts(env, scratch, inputs["ct500"])
    app = App(env, scratch)
    try:
        ours = {}
        ours["small"], small_theirs = small_pairs(app, inputs["small"], scratch / "orthanc-small", pairs)
        session = session_for(app, "bench")
        for name in ("ct500", "lidc"):
            if name in inputs:
                ours[name] = ingest_run(app, session, inputs[name], probe_on_demand=False)
        paths = image_paths(session, app.url, ours["ct500"]["series_id"])
        ours["serving"] = max((load(app.url, paths, seconds=8) for _ in range(2)), key=lambda r: r["requests_per_s"])
    finally:
        app.stop()
    results["ours"] = ours
    beside_orthanc(results, ours, scratch, inputs, small_theirs)
    (OUT / "orthanc.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(versus.table(results["versus"]))


def main(pairs: int = PAIRS) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    inputs = side_inputs()
    ct500, small = inputs["ct500"], inputs["small"]
    ct1000 = data.ct_zip(OUT / "ct1000.zip", 1000)
    scratch, env = setup()
    results = run_facts(env, scratch, ct500)
    results["slabs"] = slabs.run()

    app = App(env, scratch)
    try:
        session = session_for(app, "bench")
        results["ct500"] = ingest_run(app, session, ct500)
        results["ct500"]["floor_ratio"] = round(results["ct500"]["all_images_s"] / results["floor"]["total_s"], 2)
        int16_mb = 500 * 512 * 512 * 2 / 2**20
        results["ct500"]["memory_target_mb"] = round(2 * int16_mb + 200, 1)
        results["serving"] = serving_run(app, session, results["ct500"]["series_id"], env, scratch)
        results["ct1000"] = ingest_run(app, session, ct1000, probe_on_demand=False)
        results["ct1000"]["time_ratio_to_500"] = round(
            results["ct1000"]["all_images_s"] / results["ct500"]["all_images_s"], 2
        )
        results["small"], small_theirs = small_pairs(app, small, scratch / "orthanc-small", pairs)
        if "lidc" in inputs:
            results["lidc"] = ingest_run(app, session, inputs["lidc"], probe_on_demand=False)
        results["study_list"] = study_list_run(app)
        results["values"] = values_run(app, session, results["ct500"]["series_id"])
    finally:
        app.stop()
    ours = {name: results[name] for name in inputs} | {"serving": results["serving"]["direct"]["app"]}
    beside_orthanc(results, ours, scratch, inputs, small_theirs)
    results["s3"] = s3_run(env, scratch, ct500, results["floor"]["total_s"])
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(versus.table(results["versus"]))


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The speed benchmark (see this file's docstring).")
    parser.add_argument("part", nargs="?", choices=("values", "orthanc"), help="only this part")
    default = int(os.environ.get("BENCH_SMALL_PAIRS") or PAIRS)
    parser.add_argument(
        "--pairs", type=int, default=default, help=f"small-image ingests, ours then Orthanc's (default {default})"
    )
    options = parser.parse_args(argv)
    if options.pairs < 1:
        parser.error("--pairs must be 1 or more")
    return options


if __name__ == "__main__":
    options = arguments(sys.argv[1:])
    if options.part == "values":
        values_only()
    else:
        (orthanc_only if options.part == "orthanc" else main)(options.pairs)
