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

Paths an artifact records (a trained model's checkpoint in ``done.json``, a model in another
artifact's inputs) are relative to the store's root (``record``) and resolved against the root the
store has now (``resolve``): a store moved or copied with its dora folder (``mv outputs elsewhere``,
``SEPCLEAN_DORA_DIR=elsewhere``) finds every done stage, and a copy never reads the original tree.
Stores written before recorded absolute paths: ``resolve`` maps a path inside the artifact's own
folder at its old location to the same place now, and a recorded path that does not exist is an
error naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from sepclean.errors import PipelineError
from sepclean import files
from sepclean.files import atomic_file, atomic_write_text, locked, write_json  # noqa: F401  (the store's writers)

SPEC, DONE = "spec.json", "done.json"

logger = logging.getLogger(__name__)


def digest(value) -> str:
    """Stable hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_json(path: Path):
    return files.read_json(path, PipelineError, hint="; remove the artifact folder to rebuild it")


class ArtifactStore:
    def __init__(self, root):
        self.root = Path(root)

    def key(self, stage: str, config: dict, inputs: Iterable[str] = ()) -> str:
        return digest({"stage": stage, "config": config, "inputs": list(inputs)})[:16]

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def record(self, path) -> str:
        """``path`` as an artifact records it: relative to the store's root (``..`` for a path beside
        the store, such as a Demucs XP in the same dora folder)."""
        return Path(os.path.relpath(Path(path).absolute(), self.root.absolute())).as_posix()

    def resolve(self, recorded: str, folder: Path) -> Path:
        """The path an artifact in ``folder`` recorded, where it is now (see the module's notes)."""
        path = Path(recorded)
        if not path.is_absolute():
            return Path(os.path.normpath(self.root / path))
        # Recorded before paths were relative: the artifact's own files moved with it.
        own = f"/{folder.parent.name}/{folder.name}"
        text = path.as_posix()
        if not path.exists() and (own + "/" in text or text.endswith(own)):
            path = folder / text.split(own, 1)[1].lstrip("/")
        if not path.exists():
            raise PipelineError(f"{folder / DONE}: records {recorded}, which does not exist (moved or deleted?); "
                                "remove the artifact folder to rebuild it")
        return path

    def is_done(self, stage: str, key: str) -> bool:
        return (self.folder(stage, key) / DONE).is_file()

    def produce(self, stage: str, config: dict, inputs: Iterable[str], make: Callable[[Path], object],
                legacy_inputs: Iterable[str] | None = None) -> Path:
        """The done folder of (stage, config, inputs), made by ``make`` unless it already is.
        ``legacy_inputs``: the inputs as a store written before recorded paths were relative named
        them; a done artifact under that key is used rather than made again."""
        inputs = list(inputs)
        key = self.key(stage, config, inputs)
        folder = self.folder(stage, key)
        spec = {"stage": stage, "key": key, "config": config, "inputs": inputs}
        if (folder / DONE).is_file():
            self._check_spec(folder, spec)
            return folder
        if legacy_inputs is not None and list(legacy_inputs) != inputs:
            legacy = list(legacy_inputs)
            old_key = self.key(stage, config, legacy)
            old = self.folder(stage, old_key)
            if (old / DONE).is_file():
                self._check_spec(old, {"stage": stage, "key": old_key, "config": config, "inputs": legacy})
                return old
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder):
            if (folder / DONE).is_file():  # another process made it while we waited
                self._check_spec(folder, spec)
                return folder
            if (folder / SPEC).is_file():
                self._check_spec(folder, spec)
                logger.info("%s %s: resuming an interrupted attempt in %s", stage, key, folder)
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
