"""The scores table every scoring method writes, and the filter reads.

A scores directory holds two files:

``scores.csv``
    One row per (track, target): ``track,target,score``. ``target`` is a stem name for per-target
    scores and ``all`` for the unified per-track score. Higher always means *more useful to keep*
    (a method whose natural quantity is a distance or a loss stores its negative).
``meta.json``
    ``{"format": "sepclean.scores", "version": 2, "method": ..., "higher_is_better": true,
    "dataset": {"hash": <train manifest hash>, "tracks": N}, "tracks": [...], "targets": [...],
    "columns": [...], "rows": R, "sha256": <of scores.csv>, "manifests": {"train": <hash>,
    "reference": <hash>}, ...}`` plus whatever the method records about its run (checkpoint hash,
    hyperparameters). ``tracks`` (in row order), ``columns`` (every track's targets, ``all``
    included), ``rows`` and ``sha256`` describe scores.csv exactly: reading a table checks them and
    names what is missing or extra, so a truncated or edited scores.csv is an error, never a smaller
    table. ``dataset`` is the dataset the table scores; the filter refuses a table that does not
    cover it.

Plain CSV so that a researcher can open it in pandas or a spreadsheet and plot it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sepclean.errors import SepcleanError
from sepclean.files import atomic_write_text, read_json

FORMAT = "sepclean.scores"
VERSION = 2
UNIFIED = "all"
CSV_NAME = "scores.csv"
META_NAME = "meta.json"
HEADER = ["track", "target", "score"]
LAYOUT = ("format", "version", "higher_is_better", "tracks", "targets", "columns", "rows", "sha256")
"""meta.json keys that describe scores.csv itself, not the run that made it."""


class ScoresError(SepcleanError, ValueError):
    """A scores table that cannot be made, read or trusted."""


def dataset_record(manifest) -> dict:
    """The ``dataset`` entry of a table that scores every track of ``manifest``."""
    return {"hash": manifest.hash, "tracks": len(manifest)}


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
        columns = list(next(iter(self.scores.values()), {}))
        uneven = [t for t, s in self.scores.items() if list(s) != columns]
        if uneven:
            raise ScoresError(f"{self.method}: track {uneven[0]!r} has scores for {list(self.scores[uneven[0]])}, "
                              f"the first track for {columns}: every track needs the same targets")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HEADER)
        for track, per_target in self.scores.items():
            writer.writerows([track, target, repr(float(value))] for target, value in per_target.items())
        text = buffer.getvalue()
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "higher_is_better": True,
            "tracks": self.tracks,
            "targets": self.targets,
            "columns": columns,
            "rows": len(self.scores) * len(columns),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            **self.metadata,
        }
        # The table first: meta.json, written last, vouches for it.
        atomic_write_text(directory / CSV_NAME, text)
        atomic_write_text(directory / META_NAME, json.dumps(meta, indent=2, default=_json_default) + "\n")
        return directory

    @classmethod
    def read(cls, directory) -> "ScoreTable":
        directory = Path(directory)
        if directory.name == CSV_NAME:
            directory = directory.parent
        meta_path, csv_path = directory / META_NAME, directory / CSV_NAME
        if not meta_path.is_file() or not csv_path.is_file():
            raise ScoresError(f"{directory}: not a scores directory (needs {CSV_NAME} and {META_NAME})")
        meta = _read_meta(meta_path)
        content = csv_path.read_bytes()
        scores = _parse_csv(csv_path, content)
        _check_layout(csv_path, scores, meta, content)
        method = meta.pop("method")
        for key in LAYOUT:
            meta.pop(key, None)
        return cls(method, scores, meta)


def _read_meta(path: Path) -> dict:
    meta = read_json(path, ScoresError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ScoresError(f"{path}: not a sepclean scores file")
    if meta.get("version") != VERSION:
        raise ScoresError(f"{path}: scores format version {meta.get('version')}, this sepclean reads version "
                          f"{VERSION} (which records what scores.csv must hold); score the songs again")
    missing = [key for key in (*LAYOUT, "method") if key not in meta]
    if missing:
        raise ScoresError(f"{path}: corrupt, it lacks {', '.join(missing)}")
    return meta


def _parse_csv(path: Path, content: bytes) -> dict[str, dict[str, float]]:
    try:
        text = content.decode()
    except UnicodeDecodeError as e:
        raise ScoresError(f"{path}: not a text CSV file ({e})") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header != HEADER:
        raise ScoresError(f"{path}: its first line must be the header {','.join(HEADER)}, not {header}")
    scores: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(HEADER):
            raise ScoresError(f"{path}, line {line}: expected {len(HEADER)} fields (track,target,score), got {row}")
        track, target, value = row
        try:
            score = float(value)
        except ValueError:
            raise ScoresError(f"{path}, line {line}: score {value!r} is not a number") from None
        if target in scores.setdefault(track, {}):
            raise ScoresError(f"{path}, line {line}: a second {target!r} score for track {track!r}")
        scores[track][target] = score
    return scores


def _listing(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_layout(path: Path, scores: dict[str, dict[str, float]], meta: dict, content: bytes) -> None:
    """scores.csv holds exactly the rows meta.json describes, unchanged since it was written."""
    tracks, columns = meta["tracks"], meta["columns"]
    expected = set(tracks)
    problems = []
    absent = [t for t in tracks if t not in scores]
    if absent:
        problems.append(f"{len(absent)} of its {len(tracks)} track(s) are missing: {_listing(absent)}")
    partial = [f"{t}/{c}" for t in tracks if t in scores for c in columns if c not in scores[t]]
    if partial:
        problems.append(f"{len(partial)} (track/target) score(s) are missing: {_listing(partial)}")
    extra = [t for t in scores if t not in expected]
    if extra:
        problems.append(f"{len(extra)} track(s) not in meta.json: {_listing(extra)}")
    unknown = [f"{t}/{c}" for t in scores if t in expected for c in scores[t] if c not in columns]
    if unknown:
        problems.append(f"{len(unknown)} score(s) for targets not in meta.json: {_listing(unknown)}")
    if problems:
        held = sum(map(len, scores.values()))
        raise ScoresError(f"{path} does not hold the table {path.parent / META_NAME} describes ({held} rows, not "
                          f"{meta['rows']}): " + "; ".join(problems) + ". It was truncated or edited: score again")
    if hashlib.sha256(content).hexdigest() != meta["sha256"]:
        raise ScoresError(f"{path} changed since it was written (its SHA-256 differs from the one in "
                          f"{META_NAME}): its scores were edited; score again")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
