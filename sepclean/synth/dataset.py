"""Synthetic datasets in MUSDB18-HQ layout, with contamination whose ground truth is known.

Layout (44.1 kHz stereo float32 WAV; every ``mixture.wav`` is exactly, in float32,
``vocals + bass + drums + other`` summed in that order)::

    OUT/train/song_0000/{mixture,vocals,bass,drums,other}.wav   the noisy pool
    OUT/train_clean/song_0000/...     the clean twin of every train song (the same bits when clean)
    OUT/valid/valid_0000/...          clean
    OUT/reference/ref_0000/...        clean: the small trusted set
    OUT/test/test_0000/...            clean
    OUT/contamination.json

``contamination.json``::

    {
      "format": "sepclean.contamination", "format_version": 1,
      "generator": {"name": "sepclean.synth", "version": GENERATOR_VERSION, "sepclean": "0.1.0"},
      "preset": "mixed23", "severity": "paper", "seed": 0, "contaminated_fraction": 0.5,
      "effects_backend": "numpy",
      "profile": {"name": "small", "train": 40, "valid": 4, "reference": 8, "test": 6,
                  "duration": 12.0, "sample_rate": 44100},
      "tracks": {                                   # every train track, by folder name
        "song_0000": {
          "contaminated": true,
          "kind": "label_noise",                    # or bleeding, distortion, reverb, lowpass; null
          "stems": ["vocals", "other"],             # exactly the stems whose audio differs from
                                                    # train_clean's (empty when clean)
          "params": {...},                          # per kind, see sepclean.synth.contamination
          "parts": {"vocals": ["lead_vocal"], ...}  # the instrument parts of each clean stem
        }, ...
      }
    }

Every song is seeded from ``(seed, split, index)`` alone, so the audio does not depend on the
number of workers or on the order they finish in.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import operator
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from .. import STEMS, __version__, audio
from ..detection import load_contamination
from .contamination import DEFAULT_FRACTION, PRESETS, SEVERITIES, as_float32, assign_kinds, contaminate
from .effects import get_backend
from .song import render_song

GENERATOR_VERSION = 1
CONTAMINATION_FILE = "contamination.json"
SPLITS = ("train", "valid", "reference", "test")  # generated; train also writes its clean twin
CLEAN_TWIN = "train_clean"
TRACK_PREFIX = {"train": "song", "valid": "valid", "reference": "ref", "test": "test"}
PLAN_KEY = len(SPLITS)  # the seed stream that picks the contaminated songs; songs use keys (split, ...)


@dataclass(frozen=True)
class Profile:
    """How many songs each split has and how long they are; ``dataclasses.replace`` to adjust."""

    name: str
    train: int
    valid: int
    reference: int
    test: int
    duration: float  # seconds a song
    sample_rate: int = 44100

    def count(self, split: str) -> int:
        return getattr(self, split)


PROFILES = {
    p.name: p
    for p in (
        Profile("tiny", train=8, valid=2, reference=3, test=2, duration=4.0),
        Profile("small", train=40, valid=4, reference=8, test=6, duration=12.0),
        Profile("bench", train=200, valid=10, reference=50, test=50, duration=30.0),
    )
}


@dataclass(frozen=True)
class Job:
    split: str
    index: int
    kind: str | None = None  # contamination of a train song

    @property
    def track(self) -> str:
        return f"{TRACK_PREFIX[self.split]}_{self.index:04d}"


@dataclass(frozen=True)
class Settings:
    root: Path
    profile: Profile
    seed: int
    severity: str
    effects_backend: str


@dataclass(frozen=True)
class Summary:
    root: Path
    tracks: dict[str, int]  # track folders per split folder
    kinds: dict[str, int]  # contaminated train songs per kind
    audio_seconds: float  # of distinct songs (clean twins not counted again)
    wall_seconds: float
    workers: int

    @property
    def realtime_per_worker(self) -> float:
        """Seconds of audio generated per wall-clock second per worker process."""
        return self.audio_seconds / max(self.wall_seconds, 1e-9) / self.workers


def generate_dataset(
    root: str | os.PathLike,
    *,
    preset: str = "mixed23",
    profile: str | Profile = "small",
    seed: int = 0,
    severity: str = "paper",
    contaminated_fraction: float | None = None,
    effects_backend: str = "numpy",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Summary:
    """Generate a dataset into ``root`` (see the module docstring); returns what was generated.

    ``contaminated_fraction`` of the train songs (the preset's default when None) are contaminated,
    shared evenly by the preset's kinds. Raises ``ValueError`` for unknown names or values,
    ``FileExistsError`` when ``root`` is not empty and not ``overwrite``, and
    :class:`~sepclean.synth.effects.EffectsBackendError` when the effects backend is unavailable.
    """
    profile = _profile(profile)
    _check_choice("preset", preset, PRESETS)
    _check_choice("severity", severity, SEVERITIES)
    fraction = DEFAULT_FRACTION[preset] if contaminated_fraction is None else float(contaminated_fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"contaminated fraction must be within [0, 1], got {fraction}")
    if fraction > 0 and not PRESETS[preset]:
        raise ValueError(f"the {preset} preset has no contamination; a contaminated fraction needs another preset")
    get_backend(effects_backend)  # fails before anything is written
    root = Path(root)
    _prepare(root, overwrite)

    plan_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PLAN_KEY,)))
    kinds = assign_kinds(profile.train, preset, fraction, plan_rng)
    jobs = [Job("train", i, kind) for i, kind in enumerate(kinds)]
    jobs += [Job(split, i) for split in SPLITS[1:] for i in range(profile.count(split))]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    settings = Settings(root, profile, seed, severity, effects_backend)

    start = time.perf_counter()
    records = {track: record for track, record in _run(jobs, settings, workers, progress) if record is not None}
    wall = time.perf_counter() - start

    header = {
        "format": "sepclean.contamination",
        "format_version": 1,
        "generator": {"name": "sepclean.synth", "version": GENERATOR_VERSION, "sepclean": __version__},
        "preset": preset,
        "severity": severity,
        "seed": seed,
        "contaminated_fraction": fraction,
        "effects_backend": effects_backend,
        "profile": asdict(profile),
    }
    contamination = {**header, "tracks": dict(sorted(records.items()))}
    (root / CONTAMINATION_FILE).write_text(json.dumps(contamination, indent=2) + "\n")

    tracks = {split: sum(1 for p in (root / split).iterdir() if p.is_dir()) for split in (*SPLITS, CLEAN_TWIN)}
    return Summary(
        root=root,
        tracks=tracks,
        kinds=dict(Counter(k for k in kinds if k is not None)),
        audio_seconds=len(jobs) * profile.duration,
        wall_seconds=wall,
        workers=workers,
    )


def read_contamination(root: str | os.PathLike) -> dict:
    """The ``contamination.json`` of a generated dataset."""
    return load_contamination(Path(root) / CONTAMINATION_FILE)


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """``vocals + bass + drums + other`` in that order: the order the files are checked against."""
    return functools.reduce(operator.add, (stems[stem] for stem in STEMS))


def write_track(folder: Path, stems: dict[str, np.ndarray], sample_rate: int) -> None:
    mixture = mixture_of(stems)
    peak = float(np.abs(mixture).max())
    if peak >= 1.0:
        raise RuntimeError(f"{folder}: mixture peaks at {peak:.3f}, it would clip")
    for name, signal in (("mixture", mixture), *stems.items()):
        audio.write(folder / f"{name}.wav", signal, sample_rate)


def song_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for a song's music and for its contamination: the clean song does
    not depend on whether or how it is contaminated."""
    key = SPLITS.index(split)
    music, contamination = (np.random.SeedSequence(seed, spawn_key=(key, index, stream)) for stream in (0, 1))
    return np.random.default_rng(music), np.random.default_rng(contamination)


def make_track(job: Job, settings: Settings) -> tuple[str, dict | None]:
    """Render, contaminate and write one song; returns its contamination record (train only)."""
    music_rng, contamination_rng = song_rngs(settings.seed, job.split, job.index)
    sample_rate = settings.profile.sample_rate
    song = render_song(music_rng, settings.profile.duration, sample_rate)
    clean64 = song.stems()
    clean = as_float32(clean64)
    if job.split != "train":
        write_track(settings.root / job.split / job.track, clean, sample_rate)
        return job.track, None

    stems, record = clean, {"kind": None, "stems": [], "params": {}}
    if job.kind is not None:
        backend = get_backend(settings.effects_backend)
        severity = SEVERITIES[settings.severity]
        stems, record = contaminate(song, clean64, job.kind, contamination_rng, severity, backend)
    write_track(settings.root / "train" / job.track, stems, sample_rate)
    write_track(settings.root / CLEAN_TWIN / job.track, clean, sample_rate)
    parts = {stem: song.parts_of(stem) for stem in STEMS}
    return job.track, {"contaminated": job.kind is not None, **record, "parts": parts}


def _run(jobs: list[Job], settings: Settings, workers: int, progress: bool) -> Iterator[tuple[str, dict | None]]:
    make = functools.partial(make_track, settings=settings)
    with tqdm(total=len(jobs), unit="song", desc="synth", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                yield make(job)
                bar.update()
            return
        # fork: workers start at once and inherit the imported modules
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(make, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    yield future.result()
                    bar.update()
            finally:  # on an error, do not wait for the songs not started yet
                for future in futures:
                    future.cancel()


def _prepare(root: Path, overwrite: bool) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; overwrite=True (--overwrite) replaces the dataset in it")
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a directory")
        for split in (*SPLITS, CLEAN_TWIN):
            shutil.rmtree(root / split, ignore_errors=True)
        (root / CONTAMINATION_FILE).unlink(missing_ok=True)
    for split in (*SPLITS, CLEAN_TWIN):
        (root / split).mkdir(parents=True, exist_ok=True)


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    _check_choice("profile", profile, PROFILES)
    return PROFILES[profile]


def _check_choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
