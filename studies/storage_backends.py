"""The two storage backends (settings.STORAGES["default"]), with the few operations the app needs
beyond Django's Storage API, implemented by each: whole-object writes that readers never see half
done, copies to and from local files, streaming reads, deleting a prefix, listing, a health check
and (S3) presigned URLs.

- ``MediaFileSystemStorage``: a folder (MEDIA_ROOT). Files are written to a temporary name and
  renamed, with MEDIA_FILE_MODE: owner-only, or readable by nginx's workers (another user) when
  nginx sends them.
- ``MediaS3Storage``: an S3-compatible bucket through django-storages and boto3. Objects are
  private; browsers get them through presigned URLs. Failures to reach the endpoint, a missing
  bucket and refused credentials raise ``StorageUnavailable`` with a message that says which.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage


def file_mode() -> int:
    return settings.MEDIA_FILE_MODE


def dir_mode() -> int:
    """MEDIA_FILE_MODE, with x for the owner and wherever it gives r (0600 -> 0700, 0644 -> 0755)."""
    mode = settings.MEDIA_FILE_MODE
    return mode | 0o700 | ((mode & 0o044) >> 2)


_TEMPORARY_NUMBERS = itertools.count()


class StorageUnavailable(Exception):
    """The storage cannot be used right now (unreachable, no such bucket, credentials refused)."""


class MediaFileSystemStorage(FileSystemStorage):
    """Media under MEDIA_ROOT (Django's FileSystemStorage, with atomic whole-file writes)."""

    kind = "local"

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_overwrite", True)
        super().__init__(**kwargs)

    def _save(self, name, content):
        content.seek(0)
        with tempfile.NamedTemporaryFile(dir=self._scratch_dir_for(name), delete=False) as out:
            shutil.copyfileobj(content, out, 1024 * 1024)
        self._publish(Path(out.name), self.path(name))
        return name.replace("\\", "/")

    def _scratch_dir_for(self, name: str) -> Path:
        folder = Path(self.path(name)).parent
        if not folder.is_dir():
            missing = [folder, *(parent for parent in folder.parents if not parent.exists())]
            for created in reversed(missing):
                try:
                    created.mkdir()
                except FileExistsError:
                    continue
                os.chmod(created, dir_mode())  # whatever the process's umask
        return folder

    @staticmethod
    def _publish(temporary: Path, final) -> None:
        try:
            os.chmod(temporary, file_mode())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    # --- what the app needs beyond Django's API ---------------------------------------------

    def local_path(self, name: str) -> Path:
        """The file's own path: readers may use it in place (memory maps, sendfile)."""
        return Path(self.path(name))

    def local_filename(self, name: str) -> str:
        """``local_path`` as a string, without Django's traversal check: for names made by
        studies.storage only (the image server's hot path)."""
        return os.path.join(self.location, name)

    def save_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` so that readers see the old file or the whole new one, never a part.

        The render chunks' hot path (every plane image): one name check, a temporary name without
        tempfile's random tries (pid, thread and a counter make it unique), the mode set on the open
        file, then the rename. `bench/files.py` (3000 files of 3 KB, median of 5 rounds, quiet
        2-core machine): 0.040 ms a file against 0.092 through tempfile.mkstemp, Path objects and a
        chmod by name."""
        final = self.path(name)
        folder = os.path.dirname(final)
        if not os.path.isdir(folder):
            self._scratch_dir_for(name)
        temporary = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_TEMPORARY_NUMBERS)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                os.fchmod(out.fileno(), file_mode())  # whatever the process's umask
            os.replace(temporary, final)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def save_file(self, name: str, source: Path, *, move: bool = False) -> None:
        """Store a local file under ``name`` (moved when ``move`` and on the same file system)."""
        folder = self._scratch_dir_for(name)
        if move:
            try:
                os.chmod(source, file_mode())
                os.replace(source, self.path(name))
                return
            except OSError:
                pass  # another file system: copy below
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        os.close(fd)
        shutil.copyfile(source, temporary)
        self._publish(Path(temporary), self.path(name))
        if move:
            Path(source).unlink(missing_ok=True)

    def fetch(self, name: str, target: Path) -> None:
        shutil.copyfile(self.path(name), target)

    def open_stream(self, name: str):
        return open(self.path(name), "rb")

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix.rstrip("/")), ignore_errors=True)

    def delete_many(self, names: list[str]) -> None:
        for name in names:
            Path(self.path(name)).unlink(missing_ok=True)

    def iter_names(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(name, modified time) of every file under ``prefix`` (a folder name ending in /)."""
        root = Path(self.location)
        base = Path(self.path(prefix.rstrip("/"))) if prefix else root
        if not base.is_dir():
            return
        for folder, _dirs, files in os.walk(base):
            for file in files:
                path = Path(folder) / file
                try:
                    yield path.relative_to(root).as_posix(), path.stat().st_mtime
                except FileNotFoundError:
                    continue

    def subfolders(self, prefix: str) -> list[str]:
        """Names of the folders directly under ``prefix`` (which ends in /)."""
        base = Path(self.path(prefix.rstrip("/")))
        return sorted(child.name for child in base.iterdir() if child.is_dir()) if base.is_dir() else []

    def check(self) -> None:
        root = Path(self.location)
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.R_OK | os.X_OK):
            raise StorageUnavailable(f"MEDIA_ROOT ({root}) cannot be read.")


def _s3_base():
    from storages.backends.s3 import S3Storage

    return S3Storage


class MediaS3Storage(_s3_base()):
    """An S3-compatible bucket (django-storages' S3Storage, configured by its AWS_* settings)."""

    kind = "s3"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._clients: dict = {}
        self._clients_lock = threading.Lock()

    # One boto3 client per process and purpose, shared by its threads (clients are thread-safe;
    # django-storages' resources are per thread, and making one costs tens of milliseconds).
    def _client(self, purpose: str = "io"):
        key = (os.getpid(), purpose)
        client = self._clients.get(key)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(key)
                if client is None:
                    import boto3

                    endpoint = self.endpoint_url
                    if purpose == "presign":
                        endpoint = settings.IMAGE_URL_S3_ENDPOINT or self.endpoint_url
                    session = boto3.session.Session(
                        aws_access_key_id=self.access_key,
                        aws_secret_access_key=self.secret_key,
                        aws_session_token=self.security_token,
                    )
                    client = session.client(
                        "s3",
                        region_name=self.region_name,
                        endpoint_url=endpoint,
                        use_ssl=self.use_ssl,
                        verify=self.verify,
                        config=self.client_config,
                    )
                    self._clients[key] = client
        return client

    def _key(self, name: str) -> str:
        return self._normalize_name(name.replace("\\", "/"))

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            raise translate_s3_error(exc, what, self.bucket_name) from exc

    def local_path(self, name: str) -> None:
        return None  # objects have no local path: readers fetch a copy (studies.scratch)

    def local_filename(self, name: str) -> None:
        return None

    def save_bytes(self, name: str, data: bytes) -> None:
        params = self._get_write_parameters(name)
        self._call(
            f"storing {name}",
            self._client().put_object,
            Bucket=self.bucket_name,
            Key=self._key(name),
            Body=data,
            **params,
        )

    def save_file(self, name: str, source: Path, *, move: bool = False) -> None:
        params = self._get_write_parameters(name)
        self._call(
            f"storing {name}",
            self._client().upload_file,
            str(source),
            self.bucket_name,
            self._key(name),
            ExtraArgs=params,
            Config=self.transfer_config,
        )
        if move:
            Path(source).unlink(missing_ok=True)

    def fetch(self, name: str, target: Path) -> None:
        self._call(
            f"reading {name}",
            self._client().download_file,
            self.bucket_name,
            self._key(name),
            str(target),
            Config=self.transfer_config,
        )

    def open_stream(self, name: str):
        reply = self._call(f"reading {name}", self._client().get_object, Bucket=self.bucket_name, Key=self._key(name))
        return reply["Body"]

    def exists(self, name: str) -> bool:
        try:
            self._client().head_object(Bucket=self.bucket_name, Key=self._key(name))
            return True
        except Exception as exc:
            error = translate_s3_error(exc, f"looking for {name}", self.bucket_name)
            if isinstance(error, FileNotFoundError):
                return False
            raise error from exc

    def delete(self, name: str) -> None:
        self._call(f"deleting {name}", self._client().delete_object, Bucket=self.bucket_name, Key=self._key(name))

    def delete_prefix(self, prefix: str) -> None:
        self.delete_many([name for name, _ in self.iter_names(prefix)])

    def delete_many(self, names: list[str]) -> None:
        keys = [self._key(name) for name in names]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._call(
                "deleting files",
                self._client().delete_objects,
                Bucket=self.bucket_name,
                Delete={"Objects": batch, "Quiet": True},
            )

    def iter_names(self, prefix: str) -> Iterator[tuple[str, float]]:
        paginator = self._client().get_paginator("list_objects_v2")
        location = self._key(prefix) if prefix else (self.location.rstrip("/") + "/" if self.location else "")
        if prefix.endswith("/") and not location.endswith("/"):
            location += "/"
        strip = len(self.location.rstrip("/") + "/") if self.location else 0
        pages = paginator.paginate(Bucket=self.bucket_name, Prefix=location)
        try:
            for page in pages:
                for entry in page.get("Contents", ()):
                    yield entry["Key"][strip:], entry["LastModified"].timestamp()
        except Exception as exc:
            raise translate_s3_error(exc, f"listing {prefix}", self.bucket_name) from exc

    def subfolders(self, prefix: str) -> list[str]:
        paginator = self._client().get_paginator("list_objects_v2")
        location = self._key(prefix).rstrip("/") + "/"
        found = []
        try:
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=location, Delimiter="/"):
                found += [entry["Prefix"][len(location) :].rstrip("/") for entry in page.get("CommonPrefixes", ())]
        except Exception as exc:
            raise translate_s3_error(exc, f"listing {prefix}", self.bucket_name) from exc
        return sorted(found)

    def presigned_url(self, name: str, expires_in: int) -> str:
        return self._client("presign").generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket_name, "Key": self._key(name)}, ExpiresIn=max(1, expires_in)
        )

    def check(self) -> None:
        self._call("checking the bucket", self._client().head_bucket, Bucket=self.bucket_name)


def translate_s3_error(exc: Exception, what: str, bucket: str) -> Exception:
    """FileNotFoundError for a missing object; StorageUnavailable, saying why, for the rest."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound") and code != "NoSuchBucket" and "bucket" not in what:
            return FileNotFoundError(what)
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and "bucket" in what):
            return StorageUnavailable(f"the bucket '{bucket}' does not exist (AWS_STORAGE_BUCKET_NAME)")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"):
            return StorageUnavailable(
                f"the storage refused the credentials for bucket '{bucket}' ({code}; check AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY)"
            )
        return StorageUnavailable(f"the storage answered {status or code} while {what}")
    if isinstance(exc, NoCredentialsError):
        return StorageUnavailable("no credentials for the storage (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, EndpointConnectionError):
        return StorageUnavailable(f"the storage endpoint could not be reached while {what}")
    if isinstance(exc, FileNotFoundError):
        return exc
    if isinstance(exc, BotoCoreError | Boto3Error | OSError):
        return StorageUnavailable(f"the storage could not be used while {what} ({type(exc).__name__})")
    return exc
