"""The one way files are written: whole or not at all.

Every file sepclean writes for others to read (artifacts, scores, manifests, checkpoints, caches,
rendered audio) goes through :func:`atomic_file`: the content is written to a temporary file beside
the target and moved over it, so a reader sees the old file or the whole new one, and a killed
writer leaves the old one. The temporary name carries the process id and a random part, so two
processes, or two threads, finishing the same file at once (shards of one job on SLURM) never write
into each other's temporary file: the last to finish wins, whole. A folder that several processes
may build at once (an artifact, an attribution's shared parts) is built under :func:`locked`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Callable

from sepclean.errors import writing

LOCK = ".lock"

logger = logging.getLogger(__name__)


@contextmanager
def atomic_file(path):
    """Yields a temporary path beside ``path`` (with its suffix, for writers that go by it) to write
    the whole file to; on leaving the block it replaces ``path``. A failure to write is an
    ``OutputError`` naming ``path``, and leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    with writing(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            tmp.replace(path)
        finally:
            with suppress(OSError):  # on a read-only file system even this fails
                tmp.unlink(missing_ok=True)


def atomic_write(path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, text)


def atomic_write_stream(path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` with a binary file open on the temporary file of :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)


def copy(source, dest) -> None:
    """``source``, a file or a folder and every file under it, copied to ``dest``, each file whole or
    not at all (:func:`atomic_file`)."""
    source, dest = Path(source), Path(dest)
    pairs = ([(path, dest / path.relative_to(source)) for path in sorted(source.rglob("*")) if path.is_file()]
             if source.is_dir() else [(source, dest)])
    for path, target in pairs:
        with atomic_file(target) as tmp:
            shutil.copyfile(path, tmp)


def read_json(path, error: Callable[[str], Exception], missing: str = "missing", hint: str = ""):
    """The JSON value in ``path``. A file that is missing, unreadable or not JSON raises ``error`` with
    one line naming it: ``missing`` says what is missing, ``hint`` (e.g. how to recover) ends the others."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not JSON ({e}){hint}") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e}){hint}") from None


def write_json(path, value, indent: int | None = 2) -> None:
    """``value`` as JSON (keys sorted), atomically."""
    atomic_write_text(path, json.dumps(value, indent=indent, sort_keys=True, default=str) + "\n")


@contextmanager
def locked(folder: Path):
    """Hold ``folder``'s lock (``flock`` on ``folder/.lock``, released by the kernel when a process
    dies, so a killed one never leaves a stale lock); say so when another process holds it."""
    with open(Path(folder) / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process building %s", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
