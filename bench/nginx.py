"""deploy/nginx.conf as shipped, in front of the benchmark's local processes (Debian's nginx)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def available() -> bool:
    return shutil.which("nginx") is not None


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def server_block(
    number: int, listen: int, upstream: int, media_root: Path, logs: Path, bucket: str | None = None
) -> str:
    """The shipped configuration (nginx.conf with nginx-locations.conf in place of its include),
    with this machine's addresses in place of the compose names (web, minio), its names numbered
    (several can live in one nginx)."""
    text = _without_comments((REPO / "deploy" / "nginx.conf").read_text())
    locations = _without_comments((REPO / "deploy" / "nginx-locations.conf").read_text())
    text = text.replace("include /etc/nginx/dicomviewer-locations.conf;", locations)
    text = text.replace("server web:8000;", f"server 127.0.0.1:{upstream};")
    text = text.replace("proxy_pass http://dicomviewer;", f"proxy_pass http://dicomviewer_{number};")
    text = text.replace("upstream dicomviewer {", f"upstream dicomviewer_{number} {{")
    for name in ("$forwarded_proto", "log_format dicomviewer", "access.log dicomviewer"):
        text = text.replace(name, f"{name}_{number}")
    text = text.replace("/var/log/nginx/access.log", str(logs / "access.log"))
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{listen};", text)
    text = re.sub(r"\s*resolver [^;]*;.*", "", text)  # service names become addresses: nothing to resolve
    text = text.replace("http://minio:9000", bucket or "http://127.0.0.1:9")
    return text.replace("alias /data/media/;", f"alias {media_root.resolve()}/;")


class Nginx:
    """nginx with one server block per (listen port, upstream port), in the foreground."""

    def __init__(
        self, scratch: Path, servers: list[tuple[int, int]], media_root: Path, bucket: str | None = None, user: str = ""
    ):
        folder = scratch / "nginx"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        blocks = "\n".join(
            server_block(n, listen, up, media_root, folder, bucket) for n, (listen, up) in enumerate(servers)
        )
        conf = folder / "nginx.conf"
        conf.write_text(
            f"""daemon off;
{f"user {user};" if user else ""}
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{blocks}
}}
"""
        )
        self.process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)], stderr=subprocess.STDOUT)
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise SystemExit(f"nginx did not start: {(folder / 'error.log').read_text(errors='replace')}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
