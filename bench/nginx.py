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


def server_block(number: int, listen: int, upstream: int, media_root: Path) -> str:
    """The shipped configuration (nginx.conf with nginx-locations.conf in place of its include),
    with this machine's addresses in place of the compose names, its names numbered."""
    text = _without_comments((REPO / "deploy" / "nginx.conf").read_text())
    locations = _without_comments((REPO / "deploy" / "nginx-locations.conf").read_text())
    text = text.replace("include /etc/nginx/dicomviewer-locations.conf;", locations)
    text = re.sub(r"server web:8000;", f"server 127.0.0.1:{upstream};", text)
    text = re.sub(r"\bdicomviewer\b", f"dicomviewer_{number}", text)
    text = re.sub(r"\bforwarded_proto\b", f"forwarded_proto_{number}", text)
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{listen};", text)
    return text.replace("alias /data/media/;", f"alias {media_root.resolve()}/;")


class Nginx:
    """nginx with one server block per (listen port, upstream port), in the foreground."""

    def __init__(self, scratch: Path, servers: list[tuple[int, int]], media_root: Path):
        folder = scratch / "nginx"
        folder.mkdir(parents=True, exist_ok=True)
        blocks = "\n".join(server_block(n, listen, up, media_root) for n, (listen, up) in enumerate(servers))
        conf = folder / "nginx.conf"
        conf.write_text(
            f"""daemon off;
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {folder}/access.log;
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
