"""Build a manifest from dataset roots, validating every track.

Three layouts are recognised, per root:

- MUSDB18-HQ style: one folder per track holding ``mixture.wav`` and one file per stem;
- SDXDB23 style: the same folders without ``mixture.wav`` (the mixture is the sum of the stems);
- musdb ``.stem.mp4`` files directly in the root (read through the musdb package).

Each problem names the track and what is wrong. The dataset itself is never modified.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

import sepclean
from sepclean import audio
from sepclean.errors import SepcleanError
from sepclean.manifest import MIXTURE, Manifest, Track, combine_hashes

AUDIO_EXTENSIONS = (".wav", ".flac")
# Stream order inside musdb's .stem.mp4 files.
MUSDB_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}


@dataclass(frozen=True)
class Problem:
    root: str
    track: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.root}/{self.track}" if self.track else self.root
        return f"{where}: {self.message}"


class TrackProblem(Exception):
    """Raised while inspecting one track; becomes a Problem."""


class ScanError(SepcleanError):
    """Raised in strict mode on the first problem."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _find_source(folder: Path, name: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return None


def content_hash(path: Path) -> str:
    """SHA-256 of the decoded samples (and their shape), checking them on the way.

    Hashing samples rather than file bytes keeps the identity of audio whose metadata changes:
    libsndfile, for one, stamps float WAVs with the time of writing. Decoding the whole file also
    catches truncated or corrupt data and non-finite samples.
    """
    h = hashlib.sha256()
    try:
        info = sf.info(str(path))
        h.update(f"{info.samplerate}:{info.channels}:".encode())
        for block in sf.blocks(str(path), blocksize=1 << 18, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise TrackProblem(f"{path.name} has NaN or Inf samples")
            h.update(np.ascontiguousarray(block).tobytes())
    except sf.LibsndfileError as e:
        raise TrackProblem(f"{path.name} is unreadable or corrupt ({e})") from None
    return h.hexdigest()


def inspect_folder(root: Path, folder: Path, stems: list[str]) -> Track:
    files: dict[str, Path] = {}
    for stem in stems:
        path = _find_source(folder, stem)
        if path is None:
            raise TrackProblem(f"missing stem {stem!r} (no {stem}.wav or {stem}.flac)")
        files[stem] = path
    mixture = _find_source(folder, MIXTURE)
    if mixture is not None:
        files = {MIXTURE: mixture, **files}

    infos = {}
    for name, path in files.items():
        try:
            infos[name] = audio.info(path)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise TrackProblem(f"{path.name} is unreadable or corrupt ({e})") from None
    for attribute, what in (("sample_rate", "sample rates"), ("channels", "channel counts"), ("frames", "lengths")):
        values = {name: getattr(i, attribute) for name, i in infos.items()}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{name} {value}" for name, value in values.items())
            raise TrackProblem(f"sources have different {what}: {listing}")
    first = next(iter(infos.values()))
    if first.frames == 0:
        raise TrackProblem("no audio: its files hold 0 frames")
    hashes = {name: content_hash(path) for name, path in files.items()}
    return Track(
        id=folder.name,
        root=str(root),
        mixture=str(mixture.relative_to(root)) if mixture else None,
        stems={stem: str(files[stem].relative_to(root)) for stem in stems},
        sample_rate=first.sample_rate,
        channels=first.channels,
        frames=first.frames,
        hashes=hashes,
        hash=combine_hashes([f"{k}:{v}" for k, v in sorted(hashes.items())]),
    )


def inspect_stem_mp4(root: Path, path: Path, stems: list[str]) -> Track:
    """A musdb ``.stem.mp4`` track, read through the musdb package (and stempeg/ffmpeg under it)."""
    import musdb

    unknown = set(stems) - set(MUSDB_STREAMS)
    if unknown:
        raise TrackProblem(f"musdb stem files hold no stream for {sorted(unknown)}")
    name = path.name[: -len(".stem.mp4")]
    try:
        track = musdb.MultiTrack(path=str(path), name=name, stem_id=MUSDB_STREAMS[MIXTURE], is_wav=False)
        decoded = track.stems  # (streams, frames, channels): decodes everything, catching corrupt files
    except Exception as e:  # stempeg/ffmpeg raise many kinds of errors on bad files
        raise TrackProblem(f"{path.name} is unreadable through musdb ({e})") from None
    if decoded.shape[0] <= max(MUSDB_STREAMS[s] for s in stems):
        raise TrackProblem(f"{path.name} has {decoded.shape[0]} streams, expected {len(MUSDB_STREAMS)}")
    if decoded.shape[1] == 0:
        raise TrackProblem(f"{path.name} has no audio (0 frames)")
    if not np.isfinite(decoded).all():
        raise TrackProblem(f"{path.name} has NaN or Inf samples")
    file_hash = audio.file_hash(path)
    sources = [MIXTURE] + list(stems)
    hashes = {source: f"{file_hash}#{MUSDB_STREAMS[source]}" for source in sources}
    return Track(
        id=name,
        root=str(root),
        mixture=path.name,
        stems={stem: path.name for stem in stems},
        streams={source: MUSDB_STREAMS[source] for source in sources},
        sample_rate=int(track.rate),
        channels=int(decoded.shape[2]),
        frames=int(decoded.shape[1]),
        hashes=hashes,
        hash=combine_hashes([f"{k}:{v}" for k, v in sorted(hashes.items())]),
    )


def _candidates(root: Path):
    """(inspector, path) for everything in a root that should be a track."""
    stem_files = sorted(root.glob("*.stem.mp4"))
    if stem_files:
        return [(inspect_stem_mp4, p) for p in stem_files]
    return [(inspect_folder, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def scan(
    roots: list[str | Path],
    stems: list[str] | None = None,
    strict: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[Manifest, list[Problem]]:
    """Inspect every track under ``roots``. Returns the valid tracks and every problem found.

    In strict mode the first problem raises ScanError. Otherwise problem tracks are skipped and
    reported; the caller decides what skipping means (the CLI exits non-zero).
    """
    stems = list(stems or sepclean.STEMS)
    problems: list[Problem] = []

    def report(problem: Problem) -> None:
        if strict:
            raise ScanError(problem)
        problems.append(problem)

    roots = [Path(r).expanduser().resolve() for r in roots]
    jobs = []
    for root in roots:
        if not root.is_dir():
            report(Problem(str(root), None, "no such directory"))
            continue
        found = _candidates(root)
        if not found:
            report(Problem(str(root), None, "empty root: no track folders and no .stem.mp4 files"))
        jobs += [(root, inspector, path) for inspector, path in found]

    def run(job):
        root, inspector, path = job
        try:
            return inspector(root, path, stems), None
        except TrackProblem as e:
            return None, Problem(str(root), path.name, str(e))

    tracks: list[Track] = []
    seen: dict[str, Track] = {}
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(run, jobs)  # ordered, so the manifest order is stable
        for track, problem in tqdm(results, total=len(jobs), desc="scanning", unit="track", disable=not progress):
            if problem is not None:
                report(problem)
            elif track.id in seen:
                first = seen[track.id]
                report(Problem(track.root, track.id, f"duplicate track id (already found in {first.root})"))
            else:
                seen[track.id] = track
                tracks.append(track)
    return Manifest(tracks, stems, [str(r) for r in roots]), problems
