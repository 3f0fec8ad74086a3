"""Clean manifests: which tracks of a dataset manifest to train on, and how.

JSON, written by ``sepclean filter`` (or by hand) and read by every toolkit's ``--clean-manifest``::

    {"format": "sepclean.clean", "version": 1,
     "dataset": {"hash": "<Manifest.hash>", "tracks": 200},
     "mode": "unified" | "per-target", "ratio": 0.75, "methods": ["attribute"],
     "keep": ["song_0001", ...]                      # unified: one list for every target
     "keep": {"vocals": [...], "bass": [...], ...}}  # per-target: one list per target

``dataset.hash`` ties it to the manifest it filters: applying it to another dataset is an error
unless the user says otherwise.

Version 2 adds the stem-level actions beyond dropping (``sepclean.actions``), in ``"action"``:

``"drop"``    the kept lists alone (written as version 1, so that older readers still take it);
``"repair"``  ``"replace": {"<track>": {"<stem>": {"path": "audio/<track>/vocals.wav", "hash": "<sha256>"}}}``:
              the stems that replace the dataset's, paths relative to the clean manifest's folder,
              hashes of their decoded samples (``sepclean.scan.content_hash``), checked when applied;
              ``"repair"`` records the settings and every decision;
``"relabel"`` ``"replace"`` as repair's, the replacing stems another stem's audio of the same song;
              ``"relabel"`` records the settings and every decision;
``"relabel+repair"`` ``"replace"`` as repair's, each stem relabelled or repaired; the settings and
              every decision under ``"relabel+repair"``;
``"weight"``  ``"weights": {"<target>": {"<track>": w}}``: every kept (track, target) pair's loss
              weight, finite and >= 0.

A reader that cannot do what a version-2 manifest asks (upstream's own datasets cannot read a
replaced stem, nor weight a loss) refuses it, naming the version and what it holds
(:meth:`CleanManifest.require`). :meth:`CleanManifest.apply` is the one function that turns a
clean manifest into the tracks a toolkit trains on: Open-Unmix and Demucs both build their
datasets from what it returns.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sepclean.errors import SepcleanError
from sepclean.manifest import Manifest, combine_hashes
from sepclean.files import atomic_write_text, read_json

FORMAT = "sepclean.clean"
VERSION = 2
READABLE_VERSIONS = (1, 2)
ACTIONS = ("drop", "repair", "relabel", "relabel+repair", "weight")
"""What is done with a (song, stem) pair a method flags: ``sepclean.actions`` documents each."""
MODEL_ACTIONS = ("repair", "relabel", "relabel+repair")
"""The actions that change labels by a model's separations (the config's ``repair:`` block sets both)."""


class CleanManifestError(SepcleanError, ValueError):
    """A clean manifest that cannot be made, read or applied."""


@dataclass
class CleanManifest:
    keep: list[str] | dict[str, list[str]]
    dataset_hash: str | None = None
    dataset_tracks: int | None = None
    mode: str = "unified"
    ratio: float | None = None
    methods: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    action: str = "drop"
    replace: dict[str, dict[str, dict]] = field(default_factory=dict)
    """track -> stem -> {"path": relative to ``location``, "hash": content hash}: repaired stems."""
    weights: dict[str, dict[str, float]] | None = None
    """target -> track -> loss weight of the pair (action ``weight``)."""
    location: Path | None = None
    """The folder replacement paths are relative to: the clean manifest's own (set by ``load``)."""

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise CleanManifestError(f"clean manifest action {self.action!r}: the actions are {', '.join(ACTIONS)}")
        if self.replace and self.action not in MODEL_ACTIONS:
            raise CleanManifestError(f"clean manifest: replaced stems with action {self.action!r} (they are repair's "
                                     "and relabel's)")
        if (self.weights is not None) != (self.action == "weight"):
            raise CleanManifestError("clean manifest: action 'weight' and its 'weights' go together")
        if self.weights is not None:
            check_weights(self.weights)
            absent = [(t, i) for t in self.targets_of_keep() for i in self.kept(t) if i not in self.weights.get(t, {})]
            if absent:
                target, track = absent[0]
                raise CleanManifestError(f"clean manifest weights: no weight for {target} of {track} "
                                         f"({len(absent)} kept pair(s) without one)")

    @property
    def version(self) -> int:
        """1 for kept lists alone (what older readers take), 2 for repaired stems or weights."""
        return 1 if self.action == "drop" else 2

    @property
    def per_target(self) -> bool:
        return isinstance(self.keep, dict)

    def targets_of_keep(self) -> list[str]:
        """The targets with their own list (per-target), else the targets weights name."""
        if self.per_target:
            return list(self.keep)
        return list(self.weights or {})

    def kept(self, target: str | None = None) -> list[str]:
        """Kept ids for one target; for every target when ``target`` is None (joint training).

        A per-target manifest applied to a joint model keeps the tracks kept for every target
        (their intersection); ``joint_reduction`` says what that drops.
        """
        if not self.per_target:
            return list(self.keep)
        if target is not None:
            if target not in self.keep:
                raise CleanManifestError(f"clean manifest has no list for target {target!r} (has {sorted(self.keep)})")
            return list(self.keep[target])
        lists = list(self.keep.values())
        common = set(lists[0]).intersection(*lists[1:])
        return [t for t in lists[0] if t in common]

    def joint_reduction(self, targets) -> dict[str, list[str]]:
        """For a per-target manifest used by a joint model: target -> ids kept for it but dropped."""
        if not self.per_target:
            return {}
        common = set(self.kept(None))
        return {t: [i for i in self.keep[t] if i not in common] for t in targets if t in self.keep}

    def check(self, manifest: Manifest, target: str | None = None, allow_other_dataset: bool = False) -> list[str]:
        """Validate against the dataset manifest it is applied to; return the kept ids in dataset order."""
        if self.dataset_hash is not None and self.dataset_hash != manifest.hash and not allow_other_dataset:
            raise CleanManifestError(
                f"clean manifest was made for another dataset manifest (hash {self.dataset_hash[:12]}, "
                f"this dataset {manifest.hash[:12]}); pass the override flag to apply it anyway"
            )
        kept = self.kept(target)
        absent = [i for i in kept if i not in manifest]
        if absent:
            shown = ", ".join(absent[:20]) + (f" and {len(absent) - 20} more" if len(absent) > 20 else "")
            raise CleanManifestError(f"clean manifest names {len(absent)} track(s) absent from the dataset: {shown}")
        if not kept:
            what = f"for target {target!r}" if target else "at all"
            raise CleanManifestError(f"clean manifest keeps no track {what}")
        kept_set = set(kept)
        return [t for t in manifest.ids if t in kept_set]

    # --- what a reader must be able to do ----------------------------------------------------------

    def features(self) -> list[str]:
        """What applying it takes beyond keeping tracks (empty for a drop manifest)."""
        return (["repaired stems"] if self.replace else []) + (["loss weights"] if self.weights is not None else [])

    def require(self, reader: str, can: tuple[str, ...] = ()) -> None:
        """Refuse, naming the version, a manifest asking ``reader`` for what it cannot do (``can``:
        the features of :meth:`features` it applies)."""
        missing = [f for f in self.features() if f not in can]
        if missing:
            raise CleanManifestError(
                f"{reader} cannot apply a version-{self.version} clean manifest with {' and '.join(missing)} "
                f"(action {self.action!r}); train on a sepclean dataset manifest with the sepclean plugins "
                "(--manifest, dset.manifest), which apply it")

    def apply(self, manifest: Manifest, target: str | None = None, allow_other_dataset: bool = False) -> Manifest:
        """The tracks to train ``target`` on (every target of a joint model when None): the kept
        tracks of ``manifest``, in its order, their repaired stems read from the clean manifest's
        replacements (whose hashes are checked here), the others from the dataset.

        The one way a toolkit's dataset gets a clean manifest's data: Open-Unmix's and Demucs'
        datasets are built from what it returns. A replaced stem's path is absolute; the mixture
        stays the dataset's (a repair keeps it the sum of the stems)."""
        kept = self.check(manifest, target, allow_other_dataset)
        if not self.replace:
            return manifest.subset(kept)
        if self.location is None:
            raise CleanManifestError("clean manifest with repaired stems was not read from a file: its replacement "
                                     "paths have no folder to be relative to")
        from sepclean.scan import TrackProblem, content_hash

        tracks = []
        for track in manifest.subset(kept).tracks:
            replaced = self.replace.get(track.id) or {}
            if not replaced:
                tracks.append(track)
                continue
            stems, hashes = dict(track.stems), dict(track.hashes)
            for stem, entry in replaced.items():
                if stem not in stems:
                    raise CleanManifestError(f"clean manifest replaces stem {stem!r} of {track.id}, which has none")
                path = (Path(self.location) / entry["path"]).resolve()
                try:
                    found = content_hash([path], track.sample_rate, track.channels, track.frames)
                except (OSError, TrackProblem) as e:
                    raise CleanManifestError(f"repaired {stem} of {track.id}: {path} cannot be read ({e})") from None
                if found != entry["hash"]:
                    raise CleanManifestError(f"repaired {stem} of {track.id}: {path} does not hold the audio the clean "
                                             "manifest names (its hash differs)")
                stems[stem], hashes[stem] = str(path), found
            tracks.append(dataclasses.replace(
                track, stems=stems, hashes=hashes, hash=combine_hashes([f"{k}:{v}" for k, v in sorted(hashes.items())])))
        return Manifest(tracks, list(manifest.stems), list(manifest.roots))

    def weights_of(self, target: str) -> dict[str, float] | None:
        """track -> loss weight of ``target``'s pairs (None: no weights, every pair counts fully)."""
        if self.weights is None:
            return None
        if target not in self.weights:
            raise CleanManifestError(f"clean manifest has no weights for target {target!r} (has {sorted(self.weights)})")
        return dict(self.weights[target])

    # --- file ------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        record = {
            "format": FORMAT,
            "version": self.version,
            "dataset": {"hash": self.dataset_hash, "tracks": self.dataset_tracks},
            "mode": self.mode,
            "ratio": self.ratio,
            "methods": self.methods,
            **self.extra,
        }
        if self.version > 1:
            record["action"] = self.action
            if self.replace:
                record["replace"] = self.replace
            if self.weights is not None:
                record["weights"] = self.weights
        return {**record, "keep": self.keep}

    def write(self, path) -> None:
        path = Path(path)
        if self.replace and (self.location is None or Path(self.location).resolve() != path.parent.resolve()):
            raise CleanManifestError(f"{path}: a clean manifest with repaired stems is written in the folder its "
                                     f"replacement paths are relative to ({self.location})")
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "CleanManifest":
        path = Path(path)
        d = read_json(path, CleanManifestError, missing="no such clean manifest")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CleanManifestError(f"{path}: not a sepclean clean manifest")
        if d.get("version") not in READABLE_VERSIONS:
            raise CleanManifestError(f"{path}: clean manifest version {d.get('version')!r}; this sepclean reads "
                                     f"versions {', '.join(map(str, READABLE_VERSIONS))}")
        keep = d.get("keep")
        if not isinstance(keep, (list, dict)):
            raise CleanManifestError(f"{path}: 'keep' must be a list of track ids or a dict target -> list")
        known = {"format", "version", "dataset", "mode", "ratio", "methods", "keep", "action", "replace", "weights"}
        action = d.get("action", "drop") if d["version"] > 1 else "drop"
        replace = d.get("replace") or {}
        if not isinstance(replace, dict) or not all(
                isinstance(stems, dict) and all(isinstance(e, dict) and isinstance(e.get("path"), str)
                                                and isinstance(e.get("hash"), str) for e in stems.values())
                for stems in replace.values()):
            raise CleanManifestError(f"{path}: 'replace' must map track -> stem -> {{path, hash}}")
        try:
            return cls(
                keep=keep,
                dataset_hash=(d.get("dataset") or {}).get("hash"),
                dataset_tracks=(d.get("dataset") or {}).get("tracks"),
                mode=d.get("mode", "per-target" if isinstance(keep, dict) else "unified"),
                ratio=d.get("ratio"),
                methods=d.get("methods", []),
                extra={k: v for k, v in d.items() if k not in known},
                action=action,
                replace=replace,
                weights=d.get("weights"),
                location=path.parent.resolve(),
            )
        except CleanManifestError as e:
            raise CleanManifestError(f"{path}: {e}") from None


def check_weights(weights) -> None:
    """Loss weights must be finite numbers >= 0, and some pair of each target must count: a one-line
    error naming the first pair that is not, before any training."""
    if not isinstance(weights, dict) or not all(isinstance(w, dict) for w in weights.values()):
        raise CleanManifestError("clean manifest weights must map target -> track -> weight")
    for target, values in weights.items():
        for track, w in values.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise CleanManifestError(f"clean manifest weights: {target} of {track} has weight {w!r}; "
                                         "weights must be finite and >= 0")
        if values and not any(values.values()):
            raise CleanManifestError(f"clean manifest weights: every {target} pair has weight 0 (nothing to train on)")
