"""Clean manifests: which tracks of a dataset manifest to train on.

JSON, written by ``sepclean filter`` (or by hand) and read by every toolkit's ``--clean-manifest``::

    {"format": "sepclean.clean", "version": 1,
     "dataset": {"hash": "<Manifest.hash>", "tracks": 200},
     "mode": "unified" | "per-target", "ratio": 0.75, "methods": ["attribute"],
     "keep": ["song_0001", ...]                      # unified: one list for every target
     "keep": {"vocals": [...], "bass": [...], ...}}  # per-target: one list per target

``dataset.hash`` ties it to the manifest it filters: applying it to another dataset is an error
unless the user says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sepclean.errors import SepcleanError
from sepclean.manifest import Manifest
from sepclean.scores import _atomic_write

FORMAT = "sepclean.clean"
VERSION = 1


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

    @property
    def per_target(self) -> bool:
        return isinstance(self.keep, dict)

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

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "dataset": {"hash": self.dataset_hash, "tracks": self.dataset_tracks},
            "mode": self.mode,
            "ratio": self.ratio,
            "methods": self.methods,
            **self.extra,
            "keep": self.keep,
        }

    def write(self, path) -> None:
        path = Path(path)
        _atomic_write(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "CleanManifest":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise CleanManifestError(f"{path}: no such clean manifest") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CleanManifestError(f"{path}: not JSON ({e})") from None
        except OSError as e:
            raise CleanManifestError(f"{path}: cannot be read ({e.strerror or e})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION:
            raise CleanManifestError(f"{path}: not a version-{VERSION} sepclean clean manifest")
        keep = d.get("keep")
        if not isinstance(keep, (list, dict)):
            raise CleanManifestError(f"{path}: 'keep' must be a list of track ids or a dict target -> list")
        known = {"format", "version", "dataset", "mode", "ratio", "methods", "keep"}
        return cls(
            keep=keep,
            dataset_hash=(d.get("dataset") or {}).get("hash"),
            dataset_tracks=(d.get("dataset") or {}).get("tracks"),
            mode=d.get("mode", "per-target" if isinstance(keep, dict) else "unified"),
            ratio=d.get("ratio"),
            methods=d.get("methods", []),
            extra={k: v for k, v in d.items() if k not in known},
        )
