"""Prometheus metrics (prometheus-client): request latency by route, ingest stage durations, images
rendered, failures, and at each scrape the queue depth and the uploads by status.

Several processes serve one host (gunicorn workers, Celery's pool): each writes its samples to
PROMETHEUS_MULTIPROC_DIR (``manage.py serve`` sets it, per host, emptied at start) and a scrape
adds them up. ``GET /metrics`` answers on a web host (the web and worker processes of that host);
a worker host answers on METRICS_PORT when it is set. Only with ``Authorization: Bearer
<METRICS_TOKEN>`` or from METRICS_NETWORKS; anyone else gets 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUEST_SECONDS = Histogram(
    "dicomviewer_http_request_duration_seconds",
    "Time to answer a request, by route (the URL pattern, never the path itself) and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_SECONDS = Histogram(
    "dicomviewer_ingest_stage_duration_seconds",
    "Time an ingest spent in each stage (extracting, storing, decoding), and in all of it (total).",
    ["stage"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)
IMAGES_RENDERED = Counter("dicomviewer_images_rendered_total", "Plane images rendered and stored by the workers.")
FAILURES = Counter(
    "dicomviewer_failures_total",
    "Things that failed: ingest (an upload ended failed), render (a series' images), storage (an outage met).",
    ["kind"],
)


_children: dict[tuple[str, str, int], object] = {}


METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"  # a client's made-up methods add no series
    key = (route, method, status // 100)
    child = _children.get(key)
    if child is None:
        child = _children[key] = REQUEST_SECONDS.labels(route, method, f"{status // 100}xx")
    child.observe(seconds)


class RequestMetricsMiddleware:
    """Django's requests, by the route that answered them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        observe_request(route, request.method, response.status_code, time.perf_counter() - started)
        return response


class LiveFacts:
    """Read at each scrape: the broker's queue depth and the uploads by status."""

    def collect(self):
        depth = GaugeMetricFamily("dicomviewer_queue_depth", "Tasks waiting in the broker's queue.")
        depth.add_metric([], queue_depth())
        yield depth
        from django.db.models import Count

        from studies.models import Upload

        uploads = GaugeMetricFamily("dicomviewer_uploads", "Uploads by status.", labels=["status"])
        counts = dict(Upload.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in Upload.Status.values:
            uploads.add_metric([status], counts.get(status, 0))
        yield uploads


def queue_depth() -> int:
    """Messages waiting in the default queue (Redis: the list's length; filesystem: its files)."""
    from dicomviewer.celery import app

    broker = settings.CELERY_BROKER_URL
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    try:
        if broker.startswith("filesystem://"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
            return sum(1 for name in os.listdir(folder) if name.endswith(f".{queue}.msg") and not name.startswith("."))
        with app.connection_for_read() as conn:
            return int(conn.default_channel.client.llen(queue))
    except Exception:
        return -1


def registry() -> CollectorRegistry:
    """Every process's samples on this host, and the live facts."""
    from prometheus_client import multiprocess

    collected = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(collected)
    else:  # one process (tests, runserver)
        for collector in (REQUEST_SECONDS, STAGE_SECONDS, IMAGES_RENDERED, FAILURES):
            collected.register(collector)
    collected.register(LiveFacts())
    return collected


def allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_NETWORKS)


def metrics_view(request):
    if not allowed(request):
        raise Http404
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
