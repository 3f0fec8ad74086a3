"""The scores table every scoring method writes, and the filter reads.

A scores directory holds two files:

``scores.csv``
    One row per (track, target): ``track,target,score``. ``target`` is a stem name for per-target
    scores and ``all`` for the unified per-track score. Higher always means *more useful to keep*
    (a method whose natural quantity is a distance or a loss stores its negative).
``meta.json``
    ``{"format": "sepclean.scores", "version": 1, "method": ..., "higher_is_better": true,
    "targets": [...], "tracks": N, "manifests": {"train": <hash>, "reference": <hash>}, ...}``
    plus whatever the method records about its run (checkpoint hash, hyperparameters).

Plain CSV so that a researcher can open it in pandas or a spreadsheet and plot it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "sepclean.scores"
VERSION = 1
UNIFIED = "all"
CSV_NAME = "scores.csv"
META_NAME = "meta.json"


class ScoresError(ValueError):
    pass


@dataclass
class ScoreTable:
    method: str
    scores: dict[str, dict[str, float]]
    """track id -> {target or "all": score}."""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        for track, per_target in self.scores.items():
            for target, value in per_target.items():
                if not math.isfinite(value):
                    raise ScoresError(f"{self.method}: non-finite score {value} for track {track!r}, {target}")

    @classmethod
    def from_columns(cls, method: str, tracks, columns: dict[str, dict[str, float]], metadata: dict,
                     unified: dict[str, float] | None = None) -> "ScoreTable":
        """A table from per-target columns (target -> track -> score); the unified ``all`` score is
        the mean of a track's targets unless given."""
        scores = {}
        for track in tracks:
            row = {target: float(column[track]) for target, column in columns.items()}
            row[UNIFIED] = float(unified[track]) if unified is not None else float(np.mean(list(row.values())))
            scores[track] = row
        return cls(method, scores, metadata)

    @property
    def tracks(self) -> list[str]:
        return list(self.scores)

    @property
    def targets(self) -> list[str]:
        """Per-target columns present for every track (the unified column excluded)."""
        common = None
        for per_target in self.scores.values():
            keys = [k for k in per_target if k != UNIFIED]
            common = keys if common is None else [k for k in common if k in per_target]
        return common or []

    def column(self, target: str = UNIFIED) -> dict[str, float]:
        missing = [t for t, s in self.scores.items() if target not in s]
        if missing:
            raise ScoresError(f"{self.method}: no {target!r} score for {len(missing)} track(s), e.g. {missing[0]!r}")
        return {track: s[target] for track, s in self.scores.items()}

    def write(self, directory) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "higher_is_better": True,
            "targets": self.targets,
            "tracks": len(self.scores),
            **self.metadata,
        }
        _atomic_write(directory / META_NAME, json.dumps(meta, indent=2, default=_json_default) + "\n")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["track", "target", "score"])
        for track, per_target in self.scores.items():
            writer.writerows([track, target, repr(float(value))] for target, value in per_target.items())
        _atomic_write(directory / CSV_NAME, buffer.getvalue())
        return directory

    @classmethod
    def read(cls, directory) -> "ScoreTable":
        directory = Path(directory)
        if directory.name == CSV_NAME:
            directory = directory.parent
        meta_path, csv_path = directory / META_NAME, directory / CSV_NAME
        if not meta_path.is_file() or not csv_path.is_file():
            raise ScoresError(f"{directory}: not a scores directory (needs {CSV_NAME} and {META_NAME})")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ScoresError(f"{meta_path}: not a version-{VERSION} sepclean scores file")
        scores: dict[str, dict[str, float]] = {}
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                scores.setdefault(row["track"], {})[row["target"]] = float(row["score"])
        method = meta.pop("method")
        for key in ("format", "version", "higher_is_better", "targets", "tracks"):
            meta.pop(key, None)
        return cls(method, scores, meta)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
