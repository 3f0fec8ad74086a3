"""Dataset manifests: what a dataset is, described once, never modified.

A manifest is a JSONL file. The first line is a header::

    {"format": "sepclean.manifest", "version": 2, "stems": ["vocals", "bass", "drums", "other"],
     "roots": ["/data/musdb18hq/train", ...], "tracks": 100, "created": "...", "sepclean": "0.1.0"}

then one line per track::

    {"id": "song_0003", "root": "/data/musdb18hq/train", "mixture": "song_0003/mixture.wav",
     "stems": {"vocals": "song_0003/vocals.wav", ...}, "streams": null,
     "sample_rate": 44100, "channels": 2, "frames": 529200,
     "hashes": {"mixture": "<sha256>", "vocals": "<sha256>", ...}, "hash": "<sha256>"}

Paths are relative to ``root``. ``mixture`` is null when the dataset has stems only (SDXDB23 style):
the mixture is then the sum of the stems. A stem is one file, or a list of files whose sum is the
stem (MoisesDB stores one file per instrument: ``"other": ["<provider>/<id>/guitar/<uuid>.wav",
"<provider>/<id>/piano/<uuid>.wav"]``); an empty list is a stem the song does not have (silence).
``streams`` maps sources to stream indices when all sources live in one multi-stream file (musdb
``.stem.mp4``). ``hashes`` identify each source's audio content (SHA-256 of the decoded samples, of
their sum for a summed stem; for multi-stream files, of the file with ``#stream`` appended); ``hash``
identifies the track. The manifest's own identity, ``Manifest.hash``, depends only on track ids and content hashes,
so moving a dataset to another disk does not change it.

Version 2 added summed stems (lists); version 1 manifests, which have none, read as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import sepclean
from sepclean import audio
from sepclean.errors import SepcleanError
from sepclean.files import atomic_write_text

FORMAT = "sepclean.manifest"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MIXTURE = "mixture"


class ManifestError(SepcleanError, ValueError):
    """A manifest file that cannot be read as one, or a track that cannot be read as asked."""


@dataclass
class Track:
    id: str
    root: str
    mixture: str | None
    stems: dict[str, str | list[str]]  # a file, or the files whose sum is the stem
    sample_rate: int
    channels: int
    frames: int
    hashes: dict[str, str]
    hash: str
    streams: dict[str, int] | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def folder(self) -> Path:
        """The track's folder: the deepest one holding all its files."""
        parents = {path.parent for stem in self.stems for path in self.files(stem)}
        return Path(os.path.commonpath(sorted(parents)))

    @property
    def summed_stems(self) -> list[str]:
        """Stems recorded as a list of files to sum (MoisesDB's), rather than as one file."""
        return [stem for stem, value in self.stems.items() if isinstance(value, list)]

    def files(self, source: str) -> list[Path]:
        """The files of a stem (several for a summed stem) or the mixture's file."""
        if source == MIXTURE:
            return [] if self.mixture is None else [Path(self.root) / self.mixture]
        if source not in self.stems:
            raise KeyError(f"track {self.id!r} has no stem {source!r} (it has {sorted(self.stems)})")
        value = self.stems[source]
        return [Path(self.root) / rel for rel in (value if isinstance(value, list) else [value])]

    def path(self, source: str) -> Path:
        """Path of a stem's (or the mixture's) one file; a stem summed from several files, or from
        none, has no such file."""
        if source == MIXTURE and self.mixture is None:
            raise KeyError(f"track {self.id!r} has no mixture file (mixture = sum of stems)")
        files = self.files(source)
        if len(files) != 1:
            raise ManifestError(
                f"track {self.id!r}: stem {source!r} is the sum of {len(files)} files, not one file; "
                "read it with Track.read, list its files with Track.files"
            )
        return files[0]

    def read(self, source: str, start: int = 0, frames: int = -1) -> np.ndarray:
        """A stem or the mixture as float32 ``(channels, frames)``; a missing mixture, and a summed
        stem, are summed (an empty stem is silence)."""
        if source == MIXTURE and self.mixture is None:
            parts = [self.read(stem, start, frames) for stem in self.stems]
            return np.sum(parts, axis=0, dtype=np.float32)
        if source != MIXTURE and source not in self.stems:
            raise KeyError(f"track {self.id!r} has no stem {source!r} (it has {sorted(self.stems)})")
        if self.streams is not None:
            return _read_stream(self.path(source), self.streams[source], self.sample_rate, start, frames)
        if source in self.summed_stems:
            parts = (audio.read(path, start=start, frames=frames)[0] for path in self.files(source))
            available = max(0, self.frames - start)
            return audio.mix(parts, self.channels, available if frames < 0 else min(frames, available))
        data, _ = audio.read(self.path(source), start=start, frames=frames)
        return data

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Track":
        return cls(**d)


def _read_stream(path: Path, stream: int, sample_rate: int, start: int, frames: int) -> np.ndarray:
    import stempeg

    duration = None if frames < 0 else frames / sample_rate
    data, _ = stempeg.read_stems(
        str(path), stem_id=stream, start=start / sample_rate, duration=duration, dtype=np.float32
    )
    return np.ascontiguousarray(data.T)


def combine_hashes(parts: list[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Manifest:
    tracks: list[Track]
    stems: list[str] = field(default_factory=lambda: list(sepclean.STEMS))
    roots: list[str] = field(default_factory=list)
    header: dict = field(default_factory=dict)

    def __post_init__(self):
        self._by_id = {t.id: t for t in self.tracks}
        if len(self._by_id) != len(self.tracks):
            raise ManifestError("manifest has duplicate track ids")

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self):
        return iter(self.tracks)

    def __getitem__(self, track_id: str) -> Track:
        return self._by_id[track_id]

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._by_id

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tracks]

    @property
    def hash(self) -> str:
        """Content identity: track ids and audio hashes, independent of where the files live."""
        return combine_hashes(sorted(f"{t.id}\t{t.hash}" for t in self.tracks))

    def subset(self, ids) -> "Manifest":
        ids = set(ids)
        missing = ids - set(self._by_id)
        if missing:
            raise KeyError(f"tracks not in manifest: {sorted(missing)}")
        return Manifest([t for t in self.tracks if t.id in ids], list(self.stems), list(self.roots))

    def write(self, path) -> None:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "stems": list(self.stems),
            "roots": list(self.roots),
            "tracks": len(self.tracks),
            "hash": self.hash,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sepclean": sepclean.__version__,
        }
        path = Path(path)
        records = [header] + [t.to_json() for t in self.tracks]
        atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in records))

    @classmethod
    def load(cls, path) -> "Manifest":
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"{path}: no such manifest file")
        try:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            records = [json.loads(line) for line in lines]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestError(f"{path}: not JSONL ({e})") from None
        if not records or not all(isinstance(r, dict) for r in records) or records[0].get("format") != FORMAT:
            raise ManifestError(f"{path}: not a sepclean manifest (first line must be its header)")
        header = records[0]
        if header.get("version") not in READABLE_VERSIONS:
            raise ManifestError(
                f"{path}: manifest version {header.get('version')}, this sepclean reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            tracks = [Track.from_json(r) for r in records[1:]]
        except TypeError as e:
            raise ManifestError(f"{path}: malformed track record ({e})") from None
        return cls(tracks, header["stems"], header.get("roots", []), header)
