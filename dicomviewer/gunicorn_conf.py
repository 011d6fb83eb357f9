"""gunicorn's settings beyond the command line of ``manage.py serve web`` (``--config``).

Access lines name the path without its query string (QIDO's PatientName=, a search...: patient data
stays out of logs), the client address as dicomviewer.front resolved it, and the request id; with
LOG_FORMAT=json they are JSON objects, like every other log line.
"""

import os

accesslog = "-"
# no control socket: it would live in $HOME (an unprivileged, read-only container has none, and
# two servers on one host would share it)
control_socket_disable = True
# gunicorn trusts no peer's X-Forwarded-Proto or SCRIPT_NAME headers (its default trusts 127.0.0.1:
# any local user of a `make run` host): dicomviewer.front decides, from TRUSTED_PROXIES
forwarded_allow_ips = ""
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms %({x-request-id}o)s'

if os.environ.get("LOG_FORMAT") == "json":
    _json = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    }
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": _json},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def child_exit(server, worker):
    """A gunicorn worker is gone: its Prometheus samples stop counting as a live process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
