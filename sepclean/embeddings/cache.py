"""The embedding cache: one file per (audio content, backend configuration), shared by all runs and
methods (FAD and MLP on the same backend read the same files).

It lives in a user cache directory, never inside a dataset: ``$SEPCLEAN_CACHE``, else
``$XDG_CACHE_HOME/sepclean``, else ``~/.cache/sepclean``::

    embeddings/<backend>-<config digest>/config.json          the backend configuration, to read
    embeddings/<backend>-<config digest>/<ab>/<content>.npz   frames (n, dim) float16, loudness (n,) dBFS

``<content>`` is the manifest's content hash of the source's audio, so a changed file is a new
entry; the config digest covers everything that changes embeddings, weights included. Files are
written atomically, so concurrent runs at worst compute an entry twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import numpy as np

from sepclean.embeddings.base import EmbeddingBackend

FORMAT_VERSION = 1
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class Embedding:
    """The frames of one source of one track and each frame's loudness (RMS, dBFS)."""

    frames: np.ndarray  # (n, dim)
    loudness: np.ndarray  # (n,)

    def active(self, silence_db: float) -> np.ndarray:
        """Frames louder than ``silence_db``."""
        return self.frames[self.loudness > silence_db]


def default_root() -> Path:
    if os.environ.get("SEPCLEAN_CACHE"):
        return Path(os.environ["SEPCLEAN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sepclean"


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self._created: set[Path] = set()

    def folder(self, backend: EmbeddingBackend) -> Path:
        """The backend's folder (created, with its readable config.json, on first use)."""
        config = {"format": FORMAT_VERSION, "backend": backend.name, **backend.config()}
        text = json.dumps(config, sort_keys=True, indent=2)
        folder = self.root / "embeddings" / f"{backend.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        if folder not in self._created:
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "config.json").exists():
                _atomic_write(folder / "config.json", lambda f: f.write(text.encode()))
            self._created.add(folder)
        return folder

    def path(self, backend: EmbeddingBackend, content: str) -> Path:
        name = hashlib.sha256(content.encode()).hexdigest()  # content keys may hold '#' or '/'
        return self.folder(backend) / name[:2] / f"{name}.npz"

    def __contains__(self, key: tuple[EmbeddingBackend, str]) -> bool:
        return self.path(*key).is_file()

    def get(self, backend: EmbeddingBackend, content: str) -> Embedding | None:
        """The cached embedding, or None when absent (or unreadable: it is then recomputed)."""
        try:
            with np.load(self.path(backend, content), allow_pickle=False) as data:
                return Embedding(data["frames"], data["loudness"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None

    def loudness(self, backend: EmbeddingBackend, content: str) -> np.ndarray:
        """Only the loudness of an entry (npz members load lazily): counting active frames is cheap."""
        with np.load(self.path(backend, content), allow_pickle=False) as data:
            return data["loudness"]

    def put(self, backend: EmbeddingBackend, content: str, embedding: Embedding) -> None:
        frames = embedding.frames
        if frames.size == 0 or np.abs(frames).max() < FLOAT16_MAX:
            frames = frames.astype(np.float16)
        path = self.path(backend, content)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: np.savez(f, frames=frames, loudness=embedding.loudness.astype(np.float32)))


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        try:
            write(f)
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    os.replace(f.name, path)
