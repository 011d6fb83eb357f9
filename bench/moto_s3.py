"""moto's standalone S3 server (``moto[server]``, requirements-dev.txt) in its own process on
127.0.0.1: the S3 endpoint of the benchmark and of the tests, reachable by every process they
start. Any access key is accepted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

KEYS = {"aws_access_key_id": "moto", "aws_secret_access_key": "moto", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoS3:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # path-style addresses whatever the Host (as MinIO behind nginx: the site's name arrives)
            env={**os.environ, "S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.RequestException:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not start: {Path(log_path).read_text(errors='replace')[-2000:]}")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, **KEYS)

    def env(self, bucket: str) -> dict:
        """The environment that puts a process's storage in ``bucket``."""
        return {
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": KEYS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": KEYS["aws_secret_access_key"],
            "AWS_S3_REGION_NAME": KEYS["region_name"],
        }

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log.close()
