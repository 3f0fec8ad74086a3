"""Which tracks an Open-Unmix dataset object holds, and keeping only those a clean manifest keeps.

Each dataset of ``openunmix.data`` keeps its track list in its own attribute, and a track's id is
what ``sepclean manifest`` calls the same track:

- ``trackfolder_fix``/``trackfolder_var`` (Fixed/VariableSourcesTrackFolderDataset): ``.tracks``,
  entries ``{"path": folder, ...}``; id = the folder name (or the entry's ``"id"``: manifest datasets)
- ``aligned`` (AlignedDataset): ``.tuple_paths``, (input file, output file); id = the folder name
- ``musdb`` (MUSDBDataset): ``.mus.tracks``; id = the musdb track name
- ``sourcefolder`` (SourceFolderDataset): ``.source_tracks``, source folder -> files; id = the file
  name without extension
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from openunmix import data

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.toolkit import ToolkitError


@dataclass(frozen=True)
class _TrackList:
    items: Callable[[Any], list]
    id_of: Callable[[Any], str]
    replace: Callable[[Any, list], None]


def _folder_entry_id(entry: dict) -> str:
    return entry.get("id") or Path(entry["path"]).name


def _set_source_tracks(dataset, items: list) -> None:
    dataset.source_tracks = {source: [p for s, p in items if s == source] for source in dataset.source_tracks}


_TRACK_FOLDERS = _TrackList(
    items=lambda d: d.tracks, id_of=_folder_entry_id, replace=lambda d, items: setattr(d, "tracks", items)
)
_LAYOUTS: dict[type, _TrackList] = {
    data.FixedSourcesTrackFolderDataset: _TRACK_FOLDERS,
    data.VariableSourcesTrackFolderDataset: _TRACK_FOLDERS,
    data.AlignedDataset: _TrackList(
        items=lambda d: d.tuple_paths,
        id_of=lambda pair: Path(pair[0]).parent.name,
        replace=lambda d, items: setattr(d, "tuple_paths", items),
    ),
    data.MUSDBDataset: _TrackList(
        items=lambda d: d.mus.tracks, id_of=lambda t: t.name, replace=lambda d, items: setattr(d.mus, "tracks", items)
    ),
    data.SourceFolderDataset: _TrackList(
        items=lambda d: [(s, p) for s, files in d.source_tracks.items() for p in files],
        id_of=lambda item: Path(item[1]).stem,
        replace=_set_source_tracks,
    ),
}


def _layout(dataset) -> _TrackList:
    for cls, layout in _LAYOUTS.items():
        if isinstance(dataset, cls):
            return layout
    raise ToolkitError(f"not an Open-Unmix dataset: {type(dataset).__name__}")


def track_ids(dataset) -> list[str]:
    """The ids of the tracks a dataset object holds, in its order, read off the object."""
    layout = _layout(dataset)
    return list(dict.fromkeys(layout.id_of(item) for item in layout.items(dataset)))


def keep(dataset, ids) -> None:
    """Drop every track of ``dataset`` (in place) whose id is not in ``ids``."""
    layout = _layout(dataset)
    ids = set(ids)
    layout.replace(dataset, [item for item in layout.items(dataset) if layout.id_of(item) in ids])
    if isinstance(dataset, data.SourceFolderDataset):
        empty = [s for s, files in dataset.source_tracks.items() if not files]
        if empty:
            raise ToolkitError(f"the clean manifest keeps no file of source folder(s) {', '.join(empty)}")


def listing(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def applied(clean: CleanManifest, manifest, target: str, allow_other_dataset: bool = False):
    """The tracks to train ``target`` on (``CleanManifest.apply``: the kept ones, with their repaired
    stems) and the target's loss weights (None without), errors as the toolkit's."""
    try:
        return clean.apply(manifest, target, allow_other_dataset), clean.weights_of(target)
    except CleanManifestError as e:
        raise ToolkitError(str(e)) from None


def kept_ids(clean: CleanManifest, target: str | None, manifest=None, allow_other_dataset: bool = False) -> list[str]:
    """The clean manifest's list for ``target``; checked against the dataset manifest when given."""
    try:
        if manifest is not None:
            return clean.check(manifest, target, allow_other_dataset=allow_other_dataset)
        return clean.kept(target)
    except CleanManifestError as e:
        raise ToolkitError(str(e)) from None


@dataclass(frozen=True)
class Selection:
    """What a clean manifest did to a training dataset."""

    target: str
    kept: list[str]
    removed: list[str]
    unused: list[str]
    """Kept by the clean manifest but in no training example: validation tracks, or too short."""
    note: str = ""
    """What else it does (repaired stems, loss weights)."""

    def describe(self, source) -> str:
        line = (f"clean manifest {source}: training {self.target} on {len(self.kept)} tracks, "
                f"removed {len(self.removed)}{' (' + listing(self.removed) + ')' if self.removed else ''}")
        if self.unused:
            line += f"; kept but in no training example: {listing(self.unused)}"
        if self.note:
            line += f"; {self.note}"
        return line


def apply(clean: CleanManifest, target: str, train, valid=None,
          reader: str = "Open-Unmix's own datasets (--root)") -> Selection:
    """Keep only ``clean``'s tracks for ``target`` in the ``train`` dataset object (in place).

    Tracks are matched by id (no dataset manifest to check the clean manifest's hash against).
    Naming a track that is in neither ``train`` nor ``valid`` is an error, so is keeping none.
    Upstream's datasets read their files from the dataset root and upstream's training loop has
    no loss weights: a clean manifest with repaired stems or weights is refused, naming its version.
    """
    try:
        clean.require(reader)
    except CleanManifestError as e:
        raise ToolkitError(str(e)) from None
    wanted = kept_ids(clean, target)
    have = track_ids(train)
    validation = set(track_ids(valid)) if valid is not None else set()
    absent = [i for i in wanted if i not in have and i not in validation]
    if absent:
        raise ToolkitError(f"clean manifest names {len(absent)} track(s) absent from the dataset: {listing(absent)}")
    wanted_set = set(wanted)
    kept = [i for i in have if i in wanted_set]
    if not kept:
        raise ToolkitError(f"clean manifest keeps none of the dataset's {len(have)} training tracks for {target!r}")
    keep(train, kept)
    removed = [i for i in have if i not in wanted_set]
    return Selection(target, kept, removed=removed, unused=[i for i in wanted if i not in have])
