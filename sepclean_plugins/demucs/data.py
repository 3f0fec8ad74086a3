"""demucs' own dataset, ``demucs.wav.Wavset``, over the tracks of a sepclean manifest; and the
per-stem training set, whose every source comes from the tracks kept for that source."""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from demucs.repitch import RepitchedWrapper
from demucs.wav import MIXTURE, Wavset
from torch.utils.data import ConcatDataset, Dataset, Sampler

from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest, Track
from sepclean.toolkit import ToolkitError

from . import audio_compat

logger = logging.getLogger(__name__)


def track_metadata(track: Track) -> dict:
    """A track's ``Wavset`` metadata, the values ``demucs.wav.build_metadata`` computes.

    Computed from the manifest rather than by demucs, which writes a ``mixture.wav`` into the
    folders of stems-only tracks: sepclean never modifies a dataset.
    """
    mono = track.read(MIXTURE).mean(axis=0)
    return {
        "length": track.frames,
        "samplerate": track.sample_rate,
        "mean": float(mono.mean()),
        "std": float(mono.std(ddof=1)),  # torch's std, as demucs computes it
    }


def build_metadata(manifest: Manifest) -> dict[str, dict]:
    """``Wavset`` metadata of every track, by track id."""
    audio_compat.install()
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(manifest.ids, pool.map(track_metadata, manifest)))


def _check_readable(track: Track, sources: list[str]) -> None:
    """Demucs reads one audio file per source (and the mixture's file, for validation)."""
    if track.streams is not None:
        raise ToolkitError(
            f"track {track.id!r}: demucs reads one audio file per source, and {track.path(MIXTURE)} is "
            "a multi-stream .stem.mp4; use the WAV release (MUSDB18-HQ) or decode the stems"
        )
    if track.summed_stems:
        stem = track.summed_stems[0]
        raise ToolkitError(
            f"track {track.id!r}: stem {stem!r} is the sum of {len(track.files(stem))} file(s) (MoisesDB keeps "
            "one file per instrument), and demucs' Wavset reads one file per source: write the summed "
            "stems once with `sepclean manifest ... --render DIR` and train on that manifest"
        )
    missing = [s for s in sources if s != MIXTURE and s not in track.stems]
    if missing:
        raise ToolkitError(f"track {track.id!r} has no {', '.join(missing)} stem (it has {', '.join(track.stems)})")
    if MIXTURE in sources and track.mixture is None:
        raise ToolkitError(
            f"track {track.id!r} has no mixture file: demucs validates on mixture files, so "
            "validation tracks need a mixture.wav"
        )


class ManifestWavset(Wavset):
    """demucs' ``Wavset`` (its reading, resampling, normalisation by the track's mixture statistics,
    excerpts and padding) reading each source from the file the manifest names, instead of
    ``root/<track>/<source><ext>``: tracks from several roots, and a clean manifest's repaired stems
    (stored in the artifact store, ``CleanManifest.apply``), in one dataset."""

    def __init__(self, tracks: list[Track], metadata: dict[str, dict], sources: list[str], **options):
        for track in tracks:
            _check_readable(track, sources)
        self.files = {t.id: {s: t.path(s) for s in sources} for t in tracks}
        super().__init__(Path(tracks[0].root), {t.id: metadata[t.id] for t in tracks}, list(sources), **options)

    def get_file(self, name, source):
        return self.files[name][source]


def wavset(
    manifest: Manifest,
    sources: list[str],
    *,
    metadata: dict[str, dict] | None = None,
    segment: float | None = None,
    shift: float | None = None,
    samplerate: int = 44100,
    channels: int = 2,
    normalize: bool = True,
) -> Dataset:
    """demucs' dataset over the manifest's tracks, in its order (a :class:`ManifestWavset`).
    Examples are ``(len(sources), channels, frames)`` tensors."""
    audio_compat.install()
    if not len(manifest):
        raise ToolkitError("no track to build a dataset from")
    if metadata is None:
        metadata = build_metadata(manifest)
    return ManifestWavset(manifest.tracks, metadata, list(sources), segment=segment, shift=shift,
                          normalize=normalize, samplerate=samplerate, channels=channels)


def wavsets(dataset) -> list[Wavset]:
    """The ``Wavset`` objects a dataset is made of, in index order."""
    if isinstance(dataset, Wavset):
        return [dataset]
    if isinstance(dataset, ConcatDataset):
        return [w for part in dataset.datasets for w in wavsets(part)]
    if isinstance(dataset, RepitchedWrapper):
        return wavsets(dataset.dataset)
    raise ToolkitError(f"not a demucs Wavset dataset: {type(dataset).__name__}")


def track_ids(dataset) -> list[str]:
    """Track ids, read off the Wavsets' metadata."""
    return [name for w in wavsets(dataset) for name in w.metadata]


def example_indices(dataset, track_id: str) -> list[int]:
    """Indices of the dataset's examples cut from one track."""
    start = 0
    for w in wavsets(dataset):
        for name, count in zip(w.metadata, w.num_examples):
            if name == track_id:
                return list(range(start, start + count))
            start += count
    raise ToolkitError(f"track {track_id!r} is not in this dataset")


def keep(manifest: Manifest, clean: CleanManifest, targets: list[str], allow_other_dataset: bool = False) -> Manifest:
    """The tracks of ``manifest`` a clean manifest keeps, for one joint model of ``targets``, with
    their repaired stems (``CleanManifest.apply``).

    A per-target clean manifest is reduced to the tracks kept for every target; what that drops
    is logged, target by target.
    """
    kept = clean.apply(manifest, None, allow_other_dataset)
    for target, dropped in clean.joint_reduction(targets).items():
        if dropped:
            logger.warning(
                "clean manifest: %d track(s) kept for %s are dropped, as one joint model trains on "
                "the tracks kept for every target: %s", len(dropped), target, ", ".join(dropped),
            )
    logger.info("clean manifest keeps %d of %d tracks (%d dropped)", len(kept), len(manifest), len(manifest) - len(kept))
    if clean.replace:
        logger.info("clean manifest: stems of %d kept track(s) repaired", sum(t in clean.replace for t in kept.ids))
    return kept


def example_origin(dataset, index: int) -> tuple[str, int]:
    """(track id, excerpt number within the track) of a Wavset dataset's example ``index``."""
    if index < 0:
        raise IndexError(index)
    for w in wavsets(dataset):
        for name, count in zip(w.metadata, w.num_examples):
            if index < count:
                return name, index
            index -= count
    raise IndexError(f"example {index} is past the dataset's end")


@functools.lru_cache(maxsize=256)
def _order(seed: int, epoch: int, source: int, lap: int, size: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, source, lap]).permutation(size)


class PerStemSet(Dataset):
    """Demucs training examples ``(sources, channels, frames)`` whose source ``s`` is always an
    excerpt of a track kept for ``s``: per-stem cleaning of a joint model, with no solver change.

    One ``Wavset`` per source over that source's kept tracks gives its excerpts (demucs' own
    loading, resampling, normalisation by the track's mixture statistics, padding). An example
    stacks one excerpt per source, from different songs in general, as demucs' ``Remix``
    augmentation mixes them; the solver trains on their sum, as it does for every batch.

    How excerpts are drawn: an epoch has ``len(self)`` examples, the most excerpts any source has.
    Within epoch ``e``, source ``s`` walks through its ``M_s`` excerpts in laps, each lap a random
    order seeded by ``(seed, e, s, lap)``: every kept excerpt of ``s`` is used ⌊len/M_s⌋ or
    ⌈len/M_s⌉ times an epoch, and evenly across epochs (each track in proportion to its length, as
    in a ``Wavset``). The draw is a function of ``(epoch, index)`` and the seed only, so a resumed
    run draws what an uninterrupted one does. ``dataset[i]`` is epoch 0's example ``i``;
    ``dataset[(e, i)]`` is epoch ``e``'s, the indices ``EpochSampler`` yields.
    """

    def __init__(self, sets: dict[str, Dataset], seed: int = 0):
        empty = [s for s, w in sets.items() if not len(w)]
        if not sets or empty:
            raise ToolkitError(f"per-stem training set: no excerpt for {', '.join(empty) or 'any source'}")
        self.sets = dict(sets)
        self.seed = seed

    def __len__(self) -> int:
        return max(len(w) for w in self.sets.values())

    @property
    def sources(self) -> list[str]:
        return list(self.sets)

    def draw(self, index: int, epoch: int = 0) -> dict[str, int]:
        """Source -> the index, in that source's Wavset, of its excerpt in example ``index`` of ``epoch``."""
        if not 0 <= index < len(self):
            raise IndexError(f"example {index} of a per-stem set of {len(self)}")
        drawn = {}
        for k, (source, excerpts) in enumerate(self.sets.items()):
            size = len(excerpts)
            drawn[source] = int(_order(self.seed, epoch, k, index // size, size)[index % size])
        return drawn

    def origin(self, index: int, epoch: int = 0) -> dict[str, tuple[str, int]]:
        """Source -> (track id, excerpt number within the track) of example ``index`` of ``epoch``."""
        return {s: example_origin(self.sets[s], j) for s, j in self.draw(index, epoch).items()}

    def kept(self) -> dict[str, list[str]]:
        """Source -> the tracks its excerpts come from."""
        return {s: track_ids(w) for s, w in self.sets.items()}

    def __getitem__(self, index) -> torch.Tensor:
        epoch, index = index if isinstance(index, tuple) else (0, index)
        return torch.cat([self.sets[s][j] for s, j in self.draw(index, epoch).items()])


class EpochSampler(Sampler):
    """``(epoch, index)`` for each index of ``sampler``: a ``PerStemSet`` draws every epoch anew.

    demucs' solver iterates its train loader once an epoch, so each pass is the next epoch,
    counted from ``first_epoch`` (the epochs a resumed XP has already trained).
    """

    def __init__(self, sampler, first_epoch: int = 0):
        self.sampler = sampler
        self.epoch = first_epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        return ((epoch, index) for index in self.sampler)


def per_stem_set(
    manifest: Manifest,
    sources: list[str],
    clean: CleanManifest | None = None,
    *,
    seed: int = 0,
    allow_other_dataset: bool = False,
    metadata: dict[str, dict] | None = None,
    **options,
) -> PerStemSet:
    """The per-stem training set: each source over the tracks ``clean`` keeps for it (its own list
    in a per-target clean manifest, the one list of a unified one; every track without one).
    ``options`` are ``wavset``'s (segment, shift, samplerate, channels, normalize)."""
    if metadata is None:
        metadata = build_metadata(manifest)
    sets = {}
    for source in sources:
        kept = manifest if clean is None else clean.apply(manifest, source, allow_other_dataset)
        sets[source] = wavset(kept, [source], metadata=metadata, **options)
        logger.info("per-stem: %s from %d of %d tracks", source, len(kept), len(manifest))
    return PerStemSet(sets, seed)


class WeightedSet(Dataset):
    """A training set whose examples come with their loss weights: ``(example, weights)``, weights
    ``(sources,)`` in the order of the example's sources, each the weight of the (track, source) pair
    the source was cut from (a clean manifest's ``weight`` action). Indices are the inner set's
    (``(epoch, index)`` for a per-stem set)."""

    def __init__(self, dataset: Dataset, sources: list[str], weights: dict[str, dict[str, float]]):
        missing = [s for s in sources if s not in weights]
        if missing:
            raise ToolkitError(f"the clean manifest has no loss weights for {', '.join(missing)}")
        self.dataset, self.sources, self.weights = dataset, list(sources), weights

    def __len__(self) -> int:
        return len(self.dataset)

    def origins(self, index) -> list[str]:
        """The track each source of example ``index`` comes from."""
        inner = self.dataset.dataset if isinstance(self.dataset, RepitchedWrapper) else self.dataset
        if isinstance(inner, PerStemSet):
            epoch, i = index if isinstance(index, tuple) else (0, index)
            origin = inner.origin(i, epoch)
            return [origin[s][0] for s in self.sources]
        return [example_origin(inner, index)[0]] * len(self.sources)

    def __getitem__(self, index):
        weights = [self.weights[s][t] for s, t in zip(self.sources, self.origins(index))]
        return self.dataset[index], torch.tensor(weights, dtype=torch.float32)


def trained_tracks(dataset) -> list[str] | dict[str, list[str]]:
    """What a training set holds: its track ids, or per source for a per-stem set."""
    dataset = dataset.dataset if isinstance(dataset, WeightedSet) else dataset
    inner = dataset.dataset if isinstance(dataset, RepitchedWrapper) else dataset
    return inner.kept() if isinstance(inner, PerStemSet) else track_ids(dataset)
