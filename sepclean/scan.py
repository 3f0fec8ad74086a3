"""Build a manifest from dataset roots, validating every track.

Four layouts are recognised, per root:

- MUSDB18-HQ style: one folder per track holding ``mixture.wav`` and one file per stem;
- SDXDB23 style: the same folders without ``mixture.wav`` (the mixture is the sum of the stems);
- musdb ``.stem.mp4`` files directly in the root (read through the musdb package);
- MoisesDB as distributed: ``<root>/<provider>/<track id>/data.json`` beside one folder per stem
  type (``vocals/``, ``guitar/``, ``bowed_strings/``, ...) holding one file per instrument, named
  ``<file id>.<extension>`` from data.json. A root whose folders hold ``data.json`` (one provider)
  works too. The files are grouped as moisesdb's own ``mix_4_stems`` groups them: each requested
  stem takes the stem type of its name, ``other`` every type no other requested stem takes; a
  stem made of several files is recorded as their sum, one the song lacks as an empty list
  (silence).

Each problem names the track and what is wrong. The dataset itself is never modified.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
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
# MoisesDB's stem types: its taxonomy's top level, as data.json's stemName and the folder names.
MOISESDB_STEMS = (
    "vocals", "bass", "drums", "guitar", "other_plucked", "percussion", "piano", "other_keys",
    "bowed_strings", "wind", "other",
)
MOISESDB_METADATA = "data.json"
BLOCK = 1 << 18  # frames read at a time while hashing


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


def content_hash(paths: list[Path], sample_rate: int, channels: int, frames: int) -> str:
    """SHA-256 of the decoded samples (and their shape) of a file, or of the sum of several files
    added as ``Track.read`` adds them, checking them on the way.

    Hashing samples rather than file bytes keeps the identity of audio whose metadata changes:
    libsndfile, for one, stamps float WAVs with the time of writing. Decoding the whole file also
    catches truncated or corrupt data and non-finite samples.
    """
    h = hashlib.sha256()
    h.update(f"{sample_rate}:{channels}:".encode())
    with ExitStack() as stack:
        files = [stack.enter_context(_decoding(path, sf.SoundFile, str(path))) for path in paths]
        for start in range(0, frames, BLOCK):
            count = min(BLOCK, frames - start)
            blocks = []
            for path, f in zip(paths, files):
                block = _decoding(path, f.read, count, dtype="float32", always_2d=True)
                if len(block) != count:
                    raise TrackProblem(f"{path.name} is truncated: {start + len(block)} of {frames} frames")
                if not np.isfinite(block).all():
                    raise TrackProblem(f"{path.name} has NaN or Inf samples")
                blocks.append(block.T)
            h.update(np.ascontiguousarray(audio.mix(blocks, channels, count).T).tobytes())
    return h.hexdigest()


def _decoding(path: Path, call, *args, **kwargs):
    """``call(*args, **kwargs)``, a libsndfile error becoming a problem that names ``path``."""
    try:
        return call(*args, **kwargs)
    except sf.LibsndfileError as e:
        raise TrackProblem(f"{path.name} is unreadable or corrupt ({e})") from None


def describe(root: Path, folder: Path, sources: dict[str, list[Path]], summed: bool) -> Track:
    """The track in ``folder`` from its sources' files (``mixture`` among them if it has a file):
    every file must decode, with one sample rate, channel count and length. ``summed`` records
    each stem as the list of its files rather than its one file."""
    infos = {}
    for path in (path for paths in sources.values() for path in paths):
        try:
            infos[path] = audio.info(path)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise TrackProblem(f"{path.name} is unreadable or corrupt ({e})") from None
    if not infos:
        raise TrackProblem("no audio file for any stem")
    for attribute, what in (("sample_rate", "sample rates"), ("channels", "channel counts"), ("frames", "lengths")):
        values = {str(path.relative_to(folder)): getattr(i, attribute) for path, i in infos.items()}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{name} {value}" for name, value in values.items())
            raise TrackProblem(f"sources have different {what}: {listing}")
    first = next(iter(infos.values()))
    if first.frames == 0:
        raise TrackProblem("no audio: its files hold 0 frames")
    shape = (first.sample_rate, first.channels, first.frames)
    hashes = {name: content_hash(paths, *shape) for name, paths in sources.items()}

    def relative(paths: list[Path]):
        names = [str(path.relative_to(root)) for path in paths]
        return names if summed else names[0]

    mixture = sources.get(MIXTURE)
    return Track(
        id=folder.name,
        root=str(root),
        mixture=str(mixture[0].relative_to(root)) if mixture else None,
        stems={stem: relative(paths) for stem, paths in sources.items() if stem != MIXTURE},
        sample_rate=first.sample_rate,
        channels=first.channels,
        frames=first.frames,
        hashes=hashes,
        hash=combine_hashes([f"{k}:{v}" for k, v in sorted(hashes.items())]),
    )


def inspect_folder(root: Path, folder: Path, stems: list[str]) -> Track:
    sources: dict[str, list[Path]] = {}
    mixture = _find_source(folder, MIXTURE)
    if mixture is not None:
        sources[MIXTURE] = [mixture]
    for stem in stems:
        path = _find_source(folder, stem)
        if path is None:
            raise TrackProblem(f"missing stem {stem!r} (no {stem}.wav or {stem}.flac)")
        sources[stem] = [path]
    return describe(root, folder, sources, summed=False)


def moisesdb_grouping(stems: list[str]) -> dict[str, str]:
    """MoisesDB stem type -> the requested stem it goes into, as moisesdb's ``mix_4_stems`` (and
    ``mix_5_stems``, ``mix_6_stems``) group them: a stem takes the type of its name, ``other`` the
    types no other requested stem takes. Types no requested stem takes are left out."""
    unknown = [s for s in stems if s not in MOISESDB_STEMS]
    if unknown:
        listing = ", ".join(map(repr, unknown))
        raise TrackProblem(f"MoisesDB has no stem type {listing} (it has {', '.join(MOISESDB_STEMS)})")
    grouping = {kind: kind for kind in stems}
    if "other" in stems:
        grouping.update({kind: "other" for kind in MOISESDB_STEMS if kind not in stems})
    return grouping


def inspect_moisesdb(root: Path, folder: Path, stems: list[str]) -> Track:
    """A MoisesDB track folder, read through its data.json; every file it lists must exist."""
    grouping = moisesdb_grouping(stems)
    try:
        metadata = json.loads((folder / MOISESDB_METADATA).read_text())
    except FileNotFoundError:
        raise TrackProblem(f"no {MOISESDB_METADATA} (a MoisesDB track folder has one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrackProblem(f"{MOISESDB_METADATA} is unreadable ({e})") from None
    sources: dict[str, list[Path]] = {stem: [] for stem in stems}
    listed: set[Path] = set()
    try:
        for entry in metadata["stems"]:
            kind = entry["stemName"]
            if kind not in MOISESDB_STEMS:
                known = ", ".join(MOISESDB_STEMS)
                raise TrackProblem(f"{MOISESDB_METADATA} has an unknown stem type {kind!r} (MoisesDB has {known})")
            for part in entry["tracks"]:
                path = folder / kind / f"{part['id']}.{part['extension']}"
                if not path.is_file() or path in listed:
                    what = "is missing" if not path.is_file() else "is listed twice"
                    raise TrackProblem(f"{path.relative_to(folder)}, listed in {MOISESDB_METADATA}, {what}")
                listed.add(path)
                if kind in grouping:
                    sources[grouping[kind]].append(path)
    except (KeyError, TypeError) as e:
        raise TrackProblem(f"{MOISESDB_METADATA} is not shaped like MoisesDB's ({type(e).__name__}: {e})") from None
    return describe(root, folder, {stem: sorted(paths) for stem, paths in sources.items()}, summed=True)


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


def _folders(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _candidates(root: Path):
    """(inspector, path) for everything in a root that should be a track."""
    stem_files = sorted(root.glob("*.stem.mp4"))
    if stem_files:
        return [(inspect_stem_mp4, p) for p in stem_files]
    if any(root.glob(f"*/*/{MOISESDB_METADATA}")):  # MoisesDB: <root>/<provider>/<track id>/data.json
        return [(inspect_moisesdb, track) for provider in _folders(root) for track in _folders(provider)]
    if any(root.glob(f"*/{MOISESDB_METADATA}")):  # one MoisesDB provider's folder
        return [(inspect_moisesdb, track) for track in _folders(root)]
    return [(inspect_folder, p) for p in _folders(root)]


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
