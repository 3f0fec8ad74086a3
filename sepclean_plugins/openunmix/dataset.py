"""Open-Unmix's fixed-sources track-folder dataset over the tracks of a sepclean manifest."""

from __future__ import annotations

from pathlib import Path

import torch

from openunmix.data import Compose, FixedSourcesTrackFolderDataset, aug_from_str

from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest, Track
from sepclean.toolkit import ToolkitError
from sepclean_plugins.openunmix import audio_compat
from sepclean_plugins.openunmix.clean import applied
from sepclean_plugins.openunmix.config import TrainingConfig


class ManifestTrackFolderDataset(FixedSourcesTrackFolderDataset):
    """``FixedSourcesTrackFolderDataset`` (the ``trackfolder_fix`` dataset) whose ``.tracks`` list
    comes from a manifest instead of a scan of ``root/split``.

    Everything else (excerpts, mixing, augmentation) is upstream's ``__getitem__``. Each entry of
    ``.tracks`` is upstream's ``{"path", "min_duration"}`` plus the track's manifest ``"id"``.
    Tracks not longer than ``seq_duration`` are left out, as upstream does; ``.too_short`` lists them.

    A track whose stems are not all in one folder (a clean manifest's repaired stems live in the
    artifact store: ``CleanManifest.apply``) gets a :class:`StemFiles` as its ``"path"``, so that
    upstream's ``track_path / file_name`` reads each stem from its own file.

    ``weights`` (track id -> loss weight of the target's pair: a clean manifest's ``weight``
    action) makes each example ``(x, y, weight)``; the plugin's training epoch multiplies the
    example's loss by it.
    """

    def __init__(self, tracks: list[Track], target: str, weights: dict[str, float] | None = None, **options):
        self._manifest_tracks = tracks
        self.weights = weights
        self.too_short: list[str] = []
        stems = _stem_files(tracks)
        if target not in stems:
            raise ToolkitError(f"the manifest has no stem {target!r} (it has {', '.join(stems)})")
        super().__init__(
            root=tracks[0].root,
            target_file=stems[target],
            interferer_files=[name for stem, name in stems.items() if stem != target],
            sample_rate=float(tracks[0].sample_rate),
            **options,
        )

    def get_tracks(self):
        for track in self._manifest_tracks:
            if self.seq_duration is not None and track.duration <= self.seq_duration:
                self.too_short.append(track.id)
                continue
            yield {"path": _track_path(track), "min_duration": track.duration, "id": track.id}

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        if self.weights is None:
            return x, y
        return x, y, torch.tensor(float(self.weights[self.tracks[index]["id"]]))


class StemFiles:
    """A track "folder" whose files live in several folders: ``self / name`` is the file of the
    stem stored under that file name (what upstream's ``__getitem__`` computes)."""

    def __init__(self, track_id: str, files: dict[str, Path]):
        self.name = track_id
        self.files = files

    def __truediv__(self, name: str) -> Path:
        return self.files[name]

    def __repr__(self) -> str:
        return f"StemFiles({self.name!r})"


def _track_path(track: Track):
    files = {Path(rel).name: track.path(stem) for stem, rel in track.stems.items()}
    if all(path.parent == track.folder for path in files.values()):
        return track.folder
    return StemFiles(track.id, files)


def _stem_files(tracks: list[Track]) -> dict[str, str]:
    """stem -> file name, the same in every track folder (upstream's dataset reads fixed names)."""
    if not tracks:
        raise ToolkitError("no tracks to build an Open-Unmix dataset from")
    if any(t.streams is not None for t in tracks):
        raise ToolkitError(
            "Open-Unmix's track-folder dataset reads one audio file per stem; this manifest describes "
            "multi-stream .stem.mp4 files: decode them to wav first (e.g. musdb's `musdbconvert`)"
        )
    for track in tracks:
        if track.summed_stems:
            stem = track.summed_stems[0]
            raise ToolkitError(
                f"track {track.id!r}: stem {stem!r} is the sum of {len(track.files(stem))} file(s) (MoisesDB "
                "keeps one file per instrument), and Open-Unmix's track-folder dataset reads one file per "
                "stem: write the summed stems once with `sepclean manifest ... --render DIR` and train on "
                "that manifest"
            )
    rates = sorted({t.sample_rate for t in tracks})
    if len(rates) > 1:
        raise ToolkitError(f"the manifest's tracks have different sample rates ({rates}); resample them first")
    first = tracks[0]
    stems = {stem: Path(rel).name for stem, rel in first.stems.items()}
    for track in tracks:
        names = {stem: Path(rel).name for stem, rel in track.stems.items()}
        if names != stems:
            raise ToolkitError(
                f"track {track.id!r} stores its stems as {names}, track {first.id!r} as {stems}: Open-Unmix's "
                "dataset needs the same file names in every track folder"
            )
    return stems


def build(
    tracks: list[Track],
    target: str,
    *,
    seq_duration: float | None,
    deterministic: bool,
    augmentations: list[str] | None = None,
    random_track_mix: bool = False,
    seed: int = 42,
    weights: dict[str, float] | None = None,
) -> ManifestTrackFolderDataset:
    """The dataset for one target. Deterministic: no random excerpt, mixing or augmentation, so
    index i is always the first ``seq_duration`` seconds (the whole track when None) of track i.
    ``weights``: the target's loss weight per track (examples become ``(x, y, weight)``)."""
    if seq_duration is not None and tracks and all(t.duration <= seq_duration for t in tracks):
        raise ToolkitError(f"no track is longer than the {seq_duration} s excerpt (all {len(tracks)} are too short)")
    audio_compat.install()  # the dataset reads through openunmix.data's loaders
    return ManifestTrackFolderDataset(
        tracks,
        target,
        weights=weights,
        seq_duration=seq_duration,
        random_chunks=not deterministic,
        random_track_mix=random_track_mix and not deterministic,
        # Compose([]) rather than upstream's identity lambda: it pickles, for dataloader workers.
        source_augmentations=Compose([]) if deterministic or not augmentations else aug_from_str(augmentations),
        seed=seed,
    )


def for_target(
    manifest: Manifest,
    target: str,
    *,
    clean: CleanManifest | None = None,
    deterministic: bool = False,
    segment: float | None = None,
    allow_other_dataset: bool = False,
    augmentations: list[str] | None = None,
    random_track_mix: bool = False,
    seed: int = 42,
) -> ManifestTrackFolderDataset:
    """Open-Unmix's ``trackfolder_fix`` dataset over the manifest's (kept) tracks for one target.

    ``segment``: the excerpt in seconds; None means the training's default ``seq_dur``, or whole
    tracks when ``deterministic``. ``augmentations`` (names from ``openunmix.data``, e.g. ``["gain",
    "channelswap"]``) and ``random_track_mix`` are the dataset's training options, off by default
    as in ``--dataset trackfolder_fix``; ``deterministic`` turns them off.
    """
    weights = None
    if clean is not None:  # the kept tracks, repaired stems read from the clean manifest's files
        manifest, weights = applied(clean, manifest, target, allow_other_dataset)
    if segment is None and not deterministic:
        segment = TrainingConfig.seq_dur
    return build(list(manifest.tracks), target, weights=weights, seq_duration=segment, deterministic=deterministic,
                 augmentations=augmentations, random_track_mix=random_track_mix, seed=seed)
