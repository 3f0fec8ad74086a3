"""Summed stems written out once, for toolkits that read one file per stem.

MoisesDB keeps one file per instrument, and a manifest records a stem made of several files as
their sum (``sepclean.scan``). Open-Unmix's and demucs' datasets read one file per stem, so
``render`` writes the stems of every such track as ``<folder>/<track id>/<stem>.wav`` (32-bit float:
exactly the sum ``Track.read`` returns) and gives the manifest with those tracks read from there.
Content hashes are of the decoded samples, so each rendered stem keeps its hash, checked after
writing, and the manifest keeps its hash: scores and clean manifests made from one apply to the
other. A rendered file whose samples already have the stem's hash is kept, so a killed render
resumes where it stopped. The dataset itself is never modified.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from sepclean import audio
from sepclean.files import atomic_file
from sepclean.manifest import Manifest, ManifestError, Track
from sepclean.scan import TrackProblem, content_hash


def _content_hash(path: Path) -> str | None:
    try:
        info = audio.info(path)
        return content_hash([path], info.sample_rate, info.channels, info.frames)
    except (TrackProblem, RuntimeError, OSError):
        return None  # unreadable or partial: written again


def render_track(track: Track, folder: Path) -> Track:
    """``track`` with its stems written as one file each under ``folder/<track id>/``."""
    stems = {}
    for stem in track.stems:
        relative = f"{track.id}/{stem}.wav"
        path = folder / relative
        if _content_hash(path) != track.hashes[stem]:
            with atomic_file(path) as partial:
                audio.write(partial, track.read(stem), track.sample_rate)
            if _content_hash(path) != track.hashes[stem]:
                raise ManifestError(f"{path}: the rendered samples do not have the hash of track {track.id!r}'s {stem}")
        stems[stem] = relative
    return replace(track, root=str(folder), mixture=None, stems=stems)


def render(manifest: Manifest, folder, workers: int | None = None, progress: bool = True) -> Manifest:
    """The manifest with every track that has summed stems read from rendered files in ``folder``."""
    folder = Path(folder).expanduser().resolve()
    summed = [t for t in manifest if t.summed_stems]
    if summed:
        folder.mkdir(parents=True, exist_ok=True)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda track: render_track(track, folder), summed)
        results = tqdm(results, total=len(summed), desc="rendering", unit="track", disable=not progress)
        rendered = {t.id: t for t in results}
    tracks = [rendered.get(t.id, t) for t in manifest]
    roots = [str(folder)] * bool(rendered) + [r for r in manifest.roots if any(t.root == r for t in tracks)]
    return Manifest(tracks, list(manifest.stems), roots)
