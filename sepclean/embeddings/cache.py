"""The embedding cache: one file per (audio content, backend configuration), shared by all runs and
methods (FAD and MLP on the same backend read the same files).

It lives in a user cache directory, never inside a dataset: ``$SEPCLEAN_CACHE``, else
``$XDG_CACHE_HOME/sepclean``, else ``~/.cache/sepclean``::

    embeddings/<backend>-<config digest>/config.json          the backend configuration, to read
    embeddings/<backend>-<config digest>/<ab>/<content>.npz   frames (n, dim) float16, loudness (n,) dBFS
    files/<ab>/<path digest>.json                             verified files (``sepclean.verify``)

``<content>`` is the manifest's content hash of the source's audio, so a changed file is a new
entry; the config digest covers everything that changes embeddings, weights included. Files are
written atomically, so concurrent runs at worst compute an entry twice.

The cache verifies what it serves: before a source is looked up, its files are checked to still
hold the audio the manifest hashed (``sepclean.verify``, whose records live beside the entries:
``<root>/files/``); a file that no longer does is an error naming it: its manifest is stale. An
entry that cannot be read back (truncated, corrupt, of the wrong shape) is reported by path, removed
and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepclean.embeddings.base import EmbeddingBackend
from sepclean.errors import writing
from sepclean.files import atomic_write_stream
from sepclean.manifest import Track
from sepclean.verify import FileRecords, default_root

FORMAT_VERSION = 1
FLOAT16_MAX = float(np.finfo(np.float16).max)
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
"""What numpy raises on an npz file that is truncated, corrupt or not one."""


@dataclass
class Embedding:
    """The frames of one source of one track and each frame's loudness (RMS, dBFS)."""

    frames: np.ndarray  # (n, dim)
    loudness: np.ndarray  # (n,)

    def active(self, silence_db: float) -> np.ndarray:
        """Frames louder than ``silence_db``."""
        return self.frames[self.loudness > silence_db]


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
            with writing(folder):
                folder.mkdir(parents=True, exist_ok=True)
                if not (folder / "config.json").exists():
                    atomic_write_stream(folder / "config.json", lambda f: f.write(text.encode()))
            self._created.add(folder)
        return folder

    def path(self, backend: EmbeddingBackend, content: str) -> Path:
        name = hashlib.sha256(content.encode()).hexdigest()  # content keys may hold '#' or '/'
        return self.folder(backend) / name[:2] / f"{name}.npz"

    def __contains__(self, key: tuple[EmbeddingBackend, str]) -> bool:
        return self.path(*key).is_file()

    def get(self, backend: EmbeddingBackend, content: str) -> Embedding | None:
        """The cached embedding; None when absent, or corrupt (it is then reported and removed)."""
        path = self.path(backend, content)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                embedding = Embedding(data["frames"], data["loudness"])
            if embedding.frames.shape != (len(embedding.loudness), backend.dim) or embedding.loudness.ndim != 1:
                raise ValueError(f"frames {embedding.frames.shape} and loudness {embedding.loudness.shape}, "
                                 f"expected (n, {backend.dim}) and (n,)")
        except UNREADABLE as e:
            return self._discard(path, e)
        return embedding

    def loudness(self, backend: EmbeddingBackend, content: str) -> np.ndarray | None:
        """Only the loudness of an entry (npz members load lazily): counting active frames is cheap.
        None when absent, or corrupt (then reported and removed)."""
        path = self.path(backend, content)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                loudness = data["loudness"]
            if loudness.ndim != 1:
                raise ValueError(f"loudness shaped {loudness.shape}, expected (n,)")
        except UNREADABLE as e:
            return self._discard(path, e)
        return loudness

    def _discard(self, path: Path, error: Exception) -> None:
        warnings.warn(f"corrupt embedding cache entry {path} ({type(error).__name__}: {error}): removed, "
                      "recomputing it", stacklevel=3)
        path.unlink(missing_ok=True)

    def put(self, backend: EmbeddingBackend, content: str, embedding: Embedding) -> None:
        frames = embedding.frames
        if frames.size == 0 or np.abs(frames).max() < FLOAT16_MAX:
            frames = frames.astype(np.float16)
        path = self.path(backend, content)
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_stream(path, lambda f: np.savez(f, frames=frames, loudness=embedding.loudness.astype(np.float32)))

    def verify(self, track: Track, source: str) -> None:
        """Make sure the files of ``track``'s ``source`` still hold the audio the manifest hashed
        (``sepclean.verify.FileRecords.verify``, recorded in this cache's root); a ManifestError names a
        file that does not."""
        FileRecords(self.root).verify(track, source)
