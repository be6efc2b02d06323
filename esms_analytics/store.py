"""Where a lake lives: a local directory or an object store, behind one object.

::

    LakeStore                 list, read, write atomically, delete, lock
    ├── DiskStore             a local directory (a path or ``file://``)
    └── CloudStore            ``s3://``, ``gs://``, ``az://``/``abfs://`` through obstore

Everything above this module (the lake layout, the manifest, sync, the
readers) speaks in *keys*: ``/``-separated names relative to the lake's root,
such as ``sms/sms_type=2/date=2026-11-20/part-0.parquet``. Build a store once
with :func:`open_store` and hand it around.

What "atomic" means on each:

- Disk: a write goes to a hidden temporary file beside its target, is fsynced
  and renamed over it; the lock is an ``flock`` on the lake directory itself
  (deleting or replacing a file cannot undo it), which the kernel drops when
  its holder dies; ``_sync.lock`` only names the holder for the refused.
- Object store: a write is one PUT (or, above :data:`MULTIPART_THRESHOLD`, a
  multipart upload, which the store shows only once it is completed); the
  lock is an object created only if absent (S3 ``If-None-Match: *``, a GCS
  generation match, an Azure ``If-None-Match``), holding its owner and a lease
  that a background thread renews. A lock whose lease ran out is taken over
  by a write conditional on the e-tag the taker read, so of two takers one wins.

Credentials and endpoints come from each cloud's standard environment
(``AWS_*`` including ``AWS_ENDPOINT_URL`` and ``AWS_ALLOW_HTTP``,
``GOOGLE_*``, ``AZURE_*``), from the AWS shared config files when boto3 is
installed, and from an explicit ``storage_options`` mapping. No repr, error
or log line of this module ever shows an option's value.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import io
import json
import logging
import os
import random
import re
import shutil
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from esms_analytics.errors import ConfigError, LakeError, LakeLockedError
from esms_analytics.files import make_folders, open_file

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig

logger = logging.getLogger("esms_analytics")

LOCK_NAME: Final = "_sync.lock"
#: URL schemes served by :class:`CloudStore` (what obstore and Polars both read).
CLOUD_SCHEMES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss"})
#: Objects up to this size go up in one PUT; larger ones as a multipart upload.
MULTIPART_THRESHOLD: Final = 64 * 1024 * 1024
MULTIPART_CHUNK: Final = 16 * 1024 * 1024
#: How long a lock stays valid without renewal, and how often its holder renews it.
DEFAULT_LEASE: Final = timedelta(seconds=60)
#: obstore's own retries: 5xx answers, dropped connections, timeouts of reads.
DEFAULT_RETRY: Final[RetryConfig] = {
    "max_retries": 3,
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=5),
        "base": 2,
    },
    "retry_timeout": timedelta(seconds=30),
}
#: Our own attempts around each call, for what obstore does not retry (a PUT that
#: timed out, an answer cut off mid-body). Every call we make is idempotent.
CALL_ATTEMPTS: Final = 3
CALL_BACKOFF: Final = 0.2
#: storage_options that configure obstore's HTTP client rather than the store.
_CLIENT_KEYS: Final = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "timeout",
        "read_timeout",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_excludes",
        "user_agent",
        "http1_only",
        "http2_only",
    }
)
_BOOLEAN_CLIENT_KEYS: Final = frozenset(
    {"allow_http", "allow_invalid_certificates", "http1_only", "http2_only"}
)
#: What _summary reports for a failure worth another attempt.
_TRANSIENT: Final = re.compile(
    r"\b5\d\d\b|SlowDown|ServiceUnavailable|InternalError|RequestTimeout|timed out|timeout|"
    r"connection|error sending request|incomplete message|end of file|broken pipe",
    re.IGNORECASE,
)
#: Kinds of failure that carry no HTTP status, as obstore (reqwest, hyper) words them.
_FAILURE_KINDS: Final = re.compile(
    r"(timed out|timeout|connection refused|connection reset|connection closed[a-z ]*|"
    r"error sending request|incomplete ?message|end of file[a-z ]*|broken pipe|dns error|"
    r"builder error|unknown configuration key)",
    re.IGNORECASE,
)
_T = TypeVar("_T")


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key under the lake's root and its size in bytes."""

    key: str
    size: int


class LakeStore(abc.ABC):
    """Where a lake's objects live; see the module docstring for the guarantees.

    Attributes
    ----------
    location : str
        The lake as the user named it, for messages (never holds a secret).
    """

    location: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    @property
    def is_local(self) -> bool:
        """True for a directory on this machine."""
        return isinstance(self, DiskStore)

    @abc.abstractmethod
    def prepare(self, *, create: bool) -> None:
        """Check that the lake can be used (and, for a new local lake, create it).

        Raises :class:`LakeError` with what to check: a path that is a file, a
        directory that cannot be written, a missing bucket, refused credentials.
        """

    @abc.abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """List the names one level below ``prefix`` (a key ending in ``/``), sorted."""

    @abc.abstractmethod
    def list_files(self, prefix: str, *, start_after: str | None = None) -> list[ObjectInfo]:
        """Every object under ``prefix``, sorted by key, from after ``start_after`` on."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object at ``key``, or return None when there is none."""

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """Return the bytes at ``key``, or None when there is no such object."""

    @abc.abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (exclusive) of the object at ``key``."""

    @abc.abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """Open a seekable binary file over the object (for Parquet footers)."""

    @abc.abstractmethod
    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Open a file whose bytes replace the object at ``key`` when the block ends well.

        If the block raises, the old object (if any) stays as it was and nothing
        half-written is visible.
        """

    def write(self, key: str, data: bytes) -> None:
        """Replace the object at ``key`` with ``data``, atomically."""
        with self.writer(key) as file:
            file.write(data)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at ``key``; no error when it is already gone."""

    def delete_many(self, keys: list[str]) -> None:
        """Remove every object of ``keys``; no error for those already gone."""
        for key in keys:
            self.delete(key)

    @abc.abstractmethod
    def move(self, key: str, destination: str) -> None:
        """Move what is at ``key`` (on disk a file or a whole directory) to ``destination``."""

    @abc.abstractmethod
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lake's single-writer lock, or raise :class:`LakeLockedError` at once."""

    @abc.abstractmethod
    def clear_litter(self) -> int:
        """Remove what an interrupted writer left behind (call it holding the lock)."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Return the path or URL of ``key`` as Polars, pyarrow and DuckDB take it."""

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The options to hand Polars with :meth:`uri` (None: its defaults)."""
        return None


#: What every function that takes a lake accepts.
LakeLocation = str | os.PathLike[str] | LakeStore


def open_store(
    location: LakeLocation,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> LakeStore:
    """Open the store of a lake given as a path, a ``file://`` URL or an object-store URL.

    Examples
    --------
    >>> open_store("/tmp/lake")
    DiskStore('/tmp/lake')
    >>> open_store("file:///tmp/lake").is_local
    True
    """
    if isinstance(location, LakeStore):
        if storage_options:
            raise ConfigError("give storage_options when building the store, not with it")
        return location
    text = os.fspath(location)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("", "file"):
        if storage_options:
            raise ConfigError(
                f"storage options apply to object-store lakes, not to the local lake {text}"
            )
        return DiskStore(Path(urlsplit(text).path if scheme else text).expanduser())
    if scheme in CLOUD_SCHEMES:
        return CloudStore(text, storage_options=storage_options)
    raise ConfigError(
        f"the lake {text!r} has the scheme {scheme}://, which is not supported; give a local "
        "path or an s3://, gs://, az:// or abfs:// URL"
    )


# -- local disk -----------------------------------------------------------------


class DiskStore(LakeStore):
    """A lake in a local directory: temp file, fsync and rename; ``flock``.

    Its files are 0640 and the folders it creates 0750, whatever the umask
    (:mod:`esms_analytics.files`); a lake folder the user made keeps its mode.
    """

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/")) if key else self.root

    def prepare(self, *, create: bool) -> None:
        """Check the directory; create it (and its parents) when asked."""
        path = self.root
        if path.exists() and not path.is_dir():
            raise LakeError(
                f"the lake path {path} is a file, not a directory; give a directory",
                lake=self.location,
            )
        if not path.exists():
            if not create:
                raise LakeError(
                    f"there is no lake at {path}; run `esms-analytics sync --lake {path} ...` first",
                    lake=self.location,
                )
            try:
                make_folders(path)
            except OSError as exc:
                raise LakeError(
                    f"cannot create the lake directory {path}: {exc.strerror}", lake=self.location
                ) from exc
        if create and not os.access(path, os.W_OK | os.X_OK):
            raise LakeError(
                f"the lake directory {path} is not writable; fix its permissions",
                lake=self.location,
            )

    def list_dirs(self, prefix: str) -> list[str]:
        """List the subdirectories of ``prefix``, sorted."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            return sorted(entry.name for entry in os.scandir(self._path(prefix)) if entry.is_dir())
        return []

    def list_files(self, prefix: str, *, start_after: str | None = None) -> list[ObjectInfo]:
        """List every file under ``prefix``, sorted by key."""
        found = []
        base = self._path(prefix)
        for directory, _, names in os.walk(base):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in names:
                key = name if relative == "." else f"{relative}/{name}"
                if start_after is None or key > start_after:
                    with contextlib.suppress(FileNotFoundError):
                        found.append(
                            ObjectInfo(key, os.stat(os.path.join(directory, name)).st_size)
                        )
        return sorted(found, key=lambda info: info.key)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the file at ``key``, or return None (a directory is no object)."""
        try:
            status = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(status.st_mode) else ObjectInfo(key, status.st_size)

    def read(self, key: str) -> bytes | None:
        """Return the file's bytes, or None."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes ``start``..``end`` of the file."""
        with self._path(key).open("rb") as file:
            file.seek(start)
            return file.read(end - start)

    def open_read(self, key: str) -> IO[bytes]:
        """Open the file for reading."""
        return self._path(key).open("rb")

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """Write a hidden temporary file, fsync it and rename it over ``key``."""
        target = self._path(key)
        make_folders(target.parent)
        if target.is_dir() and not target.is_symlink():
            _remove_empty_tree(target, self.location)
        # Hidden (leading dot), so Spark, Hive, Trino and pyarrow skip it while it exists.
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open_file(temporary) as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
            _fsync_directory(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def delete(self, key: str) -> None:
        """Remove the file (or an empty directory standing in its place), if it is there."""
        path = self._path(key)
        if path.is_dir() and not path.is_symlink():
            _remove_empty_tree(path, self.location)
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()

    def move(self, key: str, destination: str) -> None:
        """Rename the file or directory at ``key`` to ``destination`` (same file system)."""
        source, target = self._path(key), self._path(destination)
        make_folders(target.parent)  # 0750: what is moved keeps its mode, behind our folder
        os.replace(source, target)
        _fsync_directory(source.parent)
        _fsync_directory(target.parent)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an ``flock`` on the lake directory: the kernel drops it however its holder dies.

        The lock is on the directory itself, not on ``_sync.lock``: a file can be
        deleted and created anew by anyone, and a second sync would then lock the
        new file while the first still runs. ``_sync.lock`` only names the holder.
        """
        descriptor = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        note = self._path(LOCK_NAME)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise LakeLockedError(lake=self.location, holder=_read_note(note)) from exc
            try:
                with open_file(note) as file:
                    file.write(_owner().describe().encode("utf-8"))
                yield
            finally:
                # Removed while the lock is still held, so it never names a past holder.
                with contextlib.suppress(OSError):
                    note.unlink()
        finally:
            os.close(descriptor)

    def clear_litter(self) -> int:
        """Remove hidden ``.*.tmp`` files left by a writer that died."""
        # Only a writer holding the lock makes temporary files, so under the lock
        # every one found is litter of a process that died mid-write.
        removed = 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, name))
                        removed += 1
        return removed

    def uri(self, key: str) -> str:
        """Return the file's path."""
        return str(self._path(key))


def _read_note(note: Path) -> str:
    try:
        return note.read_text("utf-8", "replace")[:200].strip()
    except OSError:
        return ""


def _remove_empty_tree(path: Path, lake: str) -> None:
    """Remove a directory that stands where a file must go, if no file is inside it."""
    if any(names for _, _, names in os.walk(path)):
        raise LakeError(
            f"{path} is a directory holding files where the lake keeps a file; move it away "
            "and run again",
            lake=lake,
            partition=str(path),
        )
    shutil.rmtree(path)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- the lock's owner -------------------------------------------------------------


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: written into the lock so a refused sync can name it."""

    host: str
    pid: int
    started: datetime
    token: str

    def describe(self) -> str:
        """Describe the owner: ``pid 123 on host h since 2026-11-20 08:30:00 UTC``."""
        return f"pid {self.pid} on host {self.host} since {self.started:%Y-%m-%d %H:%M:%S %Z}"


def _owner() -> LockOwner:
    return LockOwner(socket.gethostname(), os.getpid(), datetime.now(UTC), uuid.uuid4().hex)


# -- object stores ----------------------------------------------------------------


class CloudStore(LakeStore):
    """A lake under a prefix of an object store, through obstore.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix``...
    storage_options : mapping, optional
        obstore/Polars configuration keys (``aws_endpoint_url``, ``aws_region``,
        ``aws_access_key_id``, ``allow_http``...); the environment fills the rest.
    lease : timedelta
        How long the lock stays valid without renewal.
    retry : obstore RetryConfig
        obstore's retries of 5xx answers, dropped connections and read timeouts.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        retry: RetryConfig = DEFAULT_RETRY,
    ):
        parts = urlsplit(url)
        self.location = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.lease = lease
        self.retries = 0
        self._options = {str(key): str(value) for key, value in (storage_options or {}).items()}
        self._store = _build_obstore(self.location, self._options, retry)
        self._lock_state: _HeldLock | None = None

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Return the options given, for Polars (never shown anywhere)."""
        return dict(self._options) or None

    def uri(self, key: str) -> str:
        """Return ``<url>/<key>``."""
        return f"{self.location}/{key}"

    # The store's calls, each translated into LakeError and retried when transient.

    def _call(self, what: str, operation: Callable[[], _T]) -> _T:
        import obstore.exceptions as errors

        for attempt in range(1, CALL_ATTEMPTS + 1):
            try:
                return operation()
            except (FileNotFoundError, errors.AlreadyExistsError, errors.PreconditionError):
                raise
            except errors.BaseError as exc:
                if attempt == CALL_ATTEMPTS or not _TRANSIENT.search(_summary(exc)):
                    raise _translate(self.location, what, exc, attempt) from exc
                self.retries += 1
                delay = CALL_BACKOFF * 2 ** (attempt - 1) * (0.5 + random.random())
                logger.warning(
                    "lake %s: %s failed (%s); retrying in %.1fs",
                    self.location,
                    what,
                    _summary(exc),
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def prepare(self, *, create: bool) -> None:
        """List the lake's root once: proves bucket, credentials and endpoint."""
        import obstore

        # One small listing proves the bucket, the credentials and the endpoint
        # before anything is fetched or written.
        listing = self._call(
            "list the lake",
            lambda: obstore.list_with_delimiter(self._store, None),
        )
        if not create and not listing["objects"] and not listing["common_prefixes"]:
            raise LakeError(
                f"there is no lake at {self.location}; run "
                f"`esms-analytics sync --lake {self.location} ...` first",
                lake=self.location,
            )

    def list_dirs(self, prefix: str) -> list[str]:
        """List the common prefixes one level below ``prefix``."""
        import obstore

        listing = self._call(
            f"list {prefix}", lambda: obstore.list_with_delimiter(self._store, prefix)
        )
        names = (name.rstrip("/").rsplit("/", 1)[-1] for name in listing["common_prefixes"])
        return sorted(names)

    def list_files(self, prefix: str, *, start_after: str | None = None) -> list[ObjectInfo]:
        """List every object under ``prefix`` from after ``start_after`` on."""
        import obstore

        def listing() -> list[ObjectInfo]:
            stream = obstore.list(self._store, prefix, offset=start_after, chunk_size=1000)
            return [ObjectInfo(meta["path"], meta["size"]) for chunk in stream for meta in chunk]

        return sorted(self._call(f"list {prefix}", listing), key=lambda info: info.key)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object at ``key``, or return None."""
        import obstore

        try:
            meta = self._call(f"look up {key}", lambda: obstore.head(self._store, key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, meta["size"])

    def read(self, key: str) -> bytes | None:
        """Return the object's bytes, or None."""
        import obstore

        try:
            return self._call(
                f"read {key}", lambda: obstore.get(self._store, key).bytes().to_bytes()
            )
        except FileNotFoundError:
            return None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes ``start``..``end`` of the object (one ranged GET)."""
        import obstore

        return self._call(
            f"read {key}",
            lambda: obstore.get_range(self._store, key, start=start, end=end).to_bytes(),
        )

    def open_read(self, key: str) -> IO[bytes]:
        """Open the object as a seekable file read by ranges."""
        info = self.head(key)
        if info is None:
            raise FileNotFoundError(f"{self.location}/{key}")
        # Ranged reads: a Parquet footer costs a request or two, not the whole file.
        return io.BufferedReader(_RangeFile(self, key, info.size), buffer_size=64 * 1024)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """Collect the bytes, then PUT them in one request when the block ends well."""
        buffer = io.BytesIO()
        yield buffer
        self._put(key, buffer.getbuffer())

    def _put(self, key: str, data: memoryview | bytes) -> None:
        import obstore

        self._check_lock_held()
        multipart = len(data) > MULTIPART_THRESHOLD
        self._call(
            f"write {key}",
            lambda: obstore.put(
                self._store, key, data, use_multipart=multipart, chunk_size=MULTIPART_CHUNK
            ),
        )

    def delete(self, key: str) -> None:
        """Delete the object, if it is there."""
        import obstore

        self._check_lock_held()
        with contextlib.suppress(FileNotFoundError):
            self._call(f"delete {key}", lambda: obstore.delete(self._store, key))

    def delete_many(self, keys: list[str]) -> None:
        """Delete the objects in batches of a thousand (one S3 DeleteObjects request each)."""
        import obstore

        self._check_lock_held()
        for first in range(0, len(keys), 1000):
            batch = keys[first : first + 1000]
            self._call(
                f"delete {len(batch)} objects",
                lambda batch=batch: obstore.delete(self._store, batch),  # type: ignore[misc]
            )

    def move(self, key: str, destination: str) -> None:
        """Copy the object to ``destination``, then delete it (object stores cannot rename)."""
        import obstore

        self._check_lock_held()
        self._call(f"move {key}", lambda: obstore.rename(self._store, key, destination))

    def clear_litter(self) -> int:
        """Abort the incomplete multipart uploads a killed writer left under the lake.

        A single PUT leaves nothing behind when it is cut off. A multipart upload
        (objects above :data:`MULTIPART_THRESHOLD`) that fails in-process is aborted
        by obstore; one cut off by a killed process stays, invisible but billed.
        obstore cannot list those, boto3 can: with it installed (the ``s3`` extra),
        S3 lakes are cleared here. Only the lock holder uploads, so under the lock
        every upload in progress under the prefix is a dead writer's.
        """
        if urlsplit(self.location).scheme not in ("s3", "s3a"):
            return 0
        try:
            import boto3
            import botocore.exceptions
        except ImportError:
            return 0
        parts = urlsplit(self.location)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        removed = 0
        try:
            client = boto3.client("s3", **_boto3_arguments(self._options))
            pages = client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
                for upload in page.get("Uploads", []):
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        except (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            ValueError,
        ) as exc:
            # Not worth failing a sync over: the lifecycle rule in the README is the backstop.
            logger.warning(
                "lake %s: cannot clear incomplete multipart uploads (%s)",
                self.location,
                type(exc).__name__,
            )
        return removed

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold a lock object made by a conditional create, its lease renewed while held."""
        held = _HeldLock(self)
        held.acquire()
        self._lock_state = held
        try:
            yield
        finally:
            self._lock_state = None
            held.release()

    def _check_lock_held(self) -> None:
        held = self._lock_state
        if held is not None and held.lost is not None:
            raise LakeLockedError(lake=self.location, holder=held.lost)


class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over one object, read by ranges as it is asked."""

    def __init__(self, store: CloudStore, key: str, size: int):
        self._store, self._key, self._size, self._position = store, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._size, self._position + len(buffer))
        if end <= self._position:
            return 0
        data = self._store.read_range(self._key, self._position, end)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


class _HeldLock:
    """The lake's lock object while this process holds it, and its renewing thread."""

    def __init__(self, store: CloudStore):
        self.store = store
        self.owner = _owner()
        self.e_tag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="esms-lake-lease", daemon=True)

    def _body(self) -> bytes:
        expires = datetime.now(UTC) + self.store.lease
        return json.dumps(
            {
                "host": self.owner.host,
                "pid": self.owner.pid,
                "started": self.owner.started.isoformat(),
                "expires": expires.isoformat(),
                "token": self.owner.token,
            }
        ).encode()

    def acquire(self) -> None:
        import obstore
        import obstore.exceptions as errors

        store = self.store
        try:
            result = store._call(
                "create the lock",
                lambda: obstore.put(store._store, LOCK_NAME, self._body(), mode="create"),
            )
        except errors.AlreadyExistsError:
            result = self._take_over()
        self.e_tag = result["e_tag"]
        self._thread.start()

    def _take_over(self) -> Any:
        import obstore
        import obstore.exceptions as errors

        store = self.store
        try:
            current = store._call("read the lock", lambda: obstore.get(store._store, LOCK_NAME))
            body = json.loads(current.bytes().to_bytes())
            expires = datetime.fromisoformat(body["expires"])
            holder = f"pid {body['pid']} on host {body['host']} since {body['started'][:19]}"
        except FileNotFoundError:
            # Released between our create and our read: try once more from the top.
            return store._call(
                "create the lock",
                lambda: obstore.put(store._store, LOCK_NAME, self._body(), mode="create"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LakeError(
                f"the lock object {store.location}/{LOCK_NAME} is unreadable; if no sync is "
                "running, delete it and run again",
                lake=store.location,
                partition=LOCK_NAME,
            ) from exc
        if body.get("token") == self.owner.token:
            return {"e_tag": current.meta["e_tag"]}  # our own create, answered late
        if expires > datetime.now(UTC):
            raise LakeLockedError(
                lake=store.location, holder=f"{holder}, lease until {expires:%H:%M:%S} UTC"
            )
        try:
            result = store._call(
                "take over the lock",
                lambda: obstore.put(
                    store._store, LOCK_NAME, self._body(), mode={"e_tag": current.meta["e_tag"]}
                ),
            )
        except errors.PreconditionError as exc:
            raise LakeLockedError(
                lake=store.location, holder="another sync took over an expired lock first"
            ) from exc
        logger.warning("lake %s: took over the expired lock of %s", store.location, holder)
        return result

    def _renew(self) -> None:
        import obstore
        import obstore.exceptions as errors

        interval = self.store.lease.total_seconds() / 4
        while not self._stop.wait(interval):
            tag = self.e_tag
            try:
                result = obstore.put(
                    self.store._store, LOCK_NAME, self._body(), mode={"e_tag": tag or ""}
                )
                self.e_tag = result["e_tag"]
            except errors.PreconditionError:
                self.lost = "it took this sync's lock over after the lease ran out"
                logger.error("lake %s: %s", self.store.location, self.lost)
                return
            except (errors.BaseError, OSError) as exc:
                # The lease is still good for three more intervals: try again then.
                logger.warning(
                    "lake %s: renewing the lock failed (%s)", self.store.location, _summary(exc)
                )

    def release(self) -> None:
        import obstore

        self._stop.set()
        self._thread.join()
        if self.lost is not None:
            return
        # Delete only our own lock: if its e-tag changed, someone else holds it now.
        with contextlib.suppress(Exception):
            meta = obstore.head(self.store._store, LOCK_NAME)
            if meta["e_tag"] == self.e_tag:
                obstore.delete(self.store._store, LOCK_NAME)


# -- building obstore stores, and telling what went wrong ------------------------------


def _build_obstore(location: str, options: Mapping[str, str], retry: RetryConfig) -> ObjectStore:
    try:
        from obstore.store import from_url
    except ImportError:
        raise ConfigError(
            f"the lake {location} is in an object store, which needs obstore: "
            "pip install 'esms-analytics[cloud]'"
        ) from None
    config: dict[str, str] = {}
    client: dict[str, Any] = {}
    for key, value in options.items():
        name = key.lower()
        bare = re.sub(r"^(aws|google|azure)_", "", name)
        if bare in _CLIENT_KEYS:
            client[bare] = (
                value.lower() in ("1", "true", "yes") if bare in _BOOLEAN_CLIENT_KEYS else value
            )
        else:
            config[name] = value
    if location.startswith("s3") and "AWS_ALLOW_HTTP" in os.environ and "allow_http" not in client:
        client["allow_http"] = os.environ["AWS_ALLOW_HTTP"].lower() in ("1", "true", "yes")
    client_options: ClientConfig = client  # type: ignore[assignment]
    try:
        return from_url(
            location,
            config=config or None,  # type: ignore[arg-type]
            client_options=client_options,
            retry_config=retry,
            credential_provider=_aws_config_files(location, config),
        )
    except BaseException as exc:  # obstore raises a Rust panic for some bad keys
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ConfigError(
            f"cannot open the lake {location}: {_summary(exc)}; check the URL and the names "
            f"of the storage options ({', '.join(sorted(options)) or 'none given'})"
        ) from None


#: storage_options spellings (object_store's) of what boto3 takes as client arguments.
_BOTO3_ARGUMENTS: Final = {
    "aws_endpoint_url": "endpoint_url",
    "aws_endpoint": "endpoint_url",
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "aws_access_key_id": "aws_access_key_id",
    "access_key_id": "aws_access_key_id",
    "aws_secret_access_key": "aws_secret_access_key",
    "secret_access_key": "aws_secret_access_key",
    "aws_session_token": "aws_session_token",
    "aws_token": "aws_session_token",
    "session_token": "aws_session_token",
    "token": "aws_session_token",
    "aws_region": "region_name",
    "aws_default_region": "region_name",
    "region": "region_name",
}


def _boto3_arguments(options: Mapping[str, str]) -> dict[str, str]:
    """Map storage options to ``boto3.client`` arguments; boto3 reads the rest from AWS_*."""
    return {
        _BOTO3_ARGUMENTS[key.lower()]: value
        for key, value in options.items()
        if key.lower() in _BOTO3_ARGUMENTS
    }


def _aws_config_files(location: str, config: Mapping[str, str]) -> Any:
    # object_store reads AWS_* variables but not ~/.aws/credentials or profiles;
    # boto3, when installed, does, and obstore ships the bridge.
    if not location.startswith("s3"):
        return None
    explicit = {"aws_access_key_id", "access_key_id", "aws_skip_signature", "skip_signature"}
    if explicit & set(config) or "AWS_ACCESS_KEY_ID" in os.environ:
        return None
    try:
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        return None
    try:
        return Boto3CredentialProvider()
    except Exception:  # no profile, no credentials: obstore's own chain decides
        return None


def _summary(exc: BaseException) -> str:
    """Describe an obstore error in a few secret-free words: its code, status, or kind.

    obstore's own text holds the request URL and the server's whole answer; only
    these few words of it ever reach a message or a log.
    """
    text = str(exc)
    code = re.search(r"<Code>(\w+)</Code>", text)
    status = re.search(r"status code: (\d{3})", text)
    parts = [found.group(1) for found in (code, status) if found]
    if not parts:
        kind = _FAILURE_KINDS.search(text)
        parts = [kind.group(1).lower() if kind else type(exc).__name__]
    return " ".join(parts)


def _translate(location: str, what: str, exc: BaseException, attempts: int) -> LakeError:
    summary = _summary(exc)
    if re.search(r"NoSuchBucket|404", summary):
        hint = "the bucket does not exist: check its name, the region and the endpoint"
    elif re.search(
        r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|ExpiredToken|40[13]", summary
    ) or type(exc).__name__ in ("PermissionDeniedError", "UnauthenticatedError"):
        hint = (
            "the store refused the credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(or the profile, or --storage-option) and that they may list, get, put and "
            "delete under the lake's prefix"
        )
    elif re.search(r"PermanentRedirect|AuthorizationHeaderMalformed|301", summary):
        hint = "the bucket is in another region: set AWS_REGION (or aws_region)"
    elif _TRANSIENT.search(summary) or re.search(r"dns|refused", summary, re.IGNORECASE):
        hint = (
            f"the store did not answer after {attempts} attempts: check the endpoint "
            "(AWS_ENDPOINT_URL, aws_endpoint_url) and the network, then run again"
        )
    else:
        hint = "check the URL, the endpoint and the credentials"
    return LakeError(f"the lake {location}: cannot {what} ({summary}); {hint}", lake=location)
