"""Content-addressed artifacts: each stage's output lives in a folder named by what made it.

    store = ArtifactStore("outputs/artifacts")
    folder = store.produce("train", config, inputs=[data_key], make=lambda folder: ...)

An artifact's key is a hash of its stage, its configuration and the keys of its inputs, so two
experiments that need the same dirty baseline share one folder and train it once; changing any
setting or input gives a new key. ``produce``:

* returns at once when the folder is marked done (``done.json``, written atomically last);
* otherwise takes the folder's lock (``flock``: released by the kernel when a process dies, so a
  killed run never leaves a stale lock), re-checks, and calls ``make(folder)``, which must resume
  from whatever an interrupted attempt left in the folder;
* refuses a folder whose ``spec.json`` describes something else: never a silent reuse.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from sepclean.errors import PipelineError

SPEC, DONE, LOCK = "spec.json", "done.json", ".lock"


def digest(value) -> str:
    """Stable hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: not valid JSON ({e}); remove the artifact folder to rebuild it") from None


class ArtifactStore:
    def __init__(self, root):
        self.root = Path(root)

    def key(self, stage: str, config: dict, inputs: Iterable[str] = ()) -> str:
        return digest({"stage": stage, "config": config, "inputs": list(inputs)})[:16]

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def is_done(self, stage: str, key: str) -> bool:
        return (self.folder(stage, key) / DONE).is_file()

    def produce(self, stage: str, config: dict, inputs: Iterable[str], make: Callable[[Path], object],
                log: Callable[[str], None] = print) -> Path:
        """The done folder of (stage, config, inputs), made by ``make`` unless it already is."""
        inputs = list(inputs)
        key = self.key(stage, config, inputs)
        folder = self.folder(stage, key)
        spec = {"stage": stage, "key": key, "config": config, "inputs": inputs}
        if (folder / DONE).is_file():
            self._check_spec(folder, spec)
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        with self._locked(folder, log):
            if (folder / DONE).is_file():  # another process made it while we waited
                self._check_spec(folder, spec)
                return folder
            if (folder / SPEC).is_file():
                self._check_spec(folder, spec)
                log(f"{stage} {key}: resuming an interrupted attempt in {folder}")
            else:
                write_json(folder / SPEC, spec)
            start = time.time()
            summary = make(folder)
            write_json(folder / DONE, {"seconds": round(time.time() - start, 3),
                                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "summary": summary if isinstance(summary, dict) else {}})
        return folder

    def summary(self, folder: Path) -> dict:
        return read_json(Path(folder) / DONE).get("summary", {})

    @staticmethod
    def _check_spec(folder: Path, spec: dict) -> None:
        held = read_json(folder / SPEC)
        if digest(held) != digest(spec):
            raise PipelineError(f"{folder}: holds another artifact than its key says ({SPEC} differs); "
                                "it was changed by hand: remove the folder to rebuild it")

    @staticmethod
    @contextmanager
    def _locked(folder: Path, log):
        with open(folder / LOCK, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another process building {folder}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
