"""Audio file I/O for sepclean, on soundfile.

Arrays are float32, shaped ``(channels, frames)`` like torch audio tensors, so the same array can be
handed to a toolkit with ``torch.from_numpy`` and no transpose.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

PathLike = str | os.PathLike


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def info(path: PathLike) -> AudioInfo:
    i = sf.info(str(path))
    return AudioInfo(sample_rate=int(i.samplerate), channels=int(i.channels), frames=int(i.frames))


def read(path: PathLike, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Read ``frames`` frames (all when -1) from ``start``: ``(audio[channels, frames], sample_rate)``."""
    data, sample_rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sample_rate)


def mix(parts: Iterable[np.ndarray], channels: int, frames: int) -> np.ndarray:
    """The sum of ``(channels, frames)`` parts, added in order in float32 (silence when there are
    none): how a stem made of several files is read, and hashed, the same way everywhere."""
    total = None
    for part in parts:
        if part.shape != (channels, frames):
            raise ValueError(f"cannot sum audio shaped {part.shape} into ({channels}, {frames})")
        if total is None:
            total = np.array(part, dtype=np.float32)
        else:
            total += part
    return np.zeros((channels, frames), np.float32) if total is None else total


def write(path: PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = "FLOAT") -> None:
    """Write ``audio[channels, frames]``. The default float subtype stores samples exactly; None is
    the format's default (by the extension)."""

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"expected audio shaped (channels, frames), got {audio.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(path), audio.T, sample_rate, subtype=subtype)
    except sf.SoundFileError as e:
        raise _os_error(path, e) from None


def _os_error(path: PathLike, error: Exception) -> OSError:
    """libsndfile's failure to write ``path`` as the ``OSError`` writers catch: libsndfile says only
    "System error" for a full disk, so a full file system is named as such."""
    try:
        full = os.statvfs(Path(path).parent).f_bavail == 0
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"libsndfile: {error}", str(path))


def file_hash(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes: the content identity used by manifests and caches."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
