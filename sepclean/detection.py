"""How well a scores table finds the contaminated songs of a synthetic dataset.

Ground truth comes from the generator's ``contamination.json``. A scores table ranks tracks by how
useful they are to keep, so detection quality is the AUROC of *low* scores for contaminated tracks:
the probability that a clean track outscores a contaminated one (ties count half). 0.5 is chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from scipy.stats import rankdata

from sepclean.errors import SepcleanError
from sepclean.files import read_json
from sepclean.scores import UNIFIED, ScoreTable


def load_contamination(path) -> dict:
    """``contamination.json`` of a generated dataset (the file, or the dataset root holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "contamination.json"
    truth = read_json(path, SepcleanError, missing="no such file (a synthetic dataset's contamination.json)")
    if not isinstance(truth, dict) or not isinstance(truth.get("tracks"), dict):
        raise SepcleanError(f"{path}: not a contamination.json (no 'tracks')")
    return truth


def auroc(scores: Mapping[str, float], contaminated: Mapping[str, bool]) -> float:
    """P(score of a clean track > score of a contaminated track), over the tracks in both maps."""
    return rank_auroc(*_arrays(scores, contaminated))


def rank_auroc(values: np.ndarray, bad: np.ndarray) -> float:
    """``auroc`` of arrays (a bootstrap's resamples): track i scored ``values[i]``, contaminated when
    ``bad[i]``; NaN when either class is empty."""
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        return float("nan")
    ranks = rankdata(values)  # ascending, ties averaged
    return float((ranks[~bad].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def _arrays(scores: Mapping[str, float], contaminated: Mapping[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, contaminated) of the tracks in both maps, as arrays."""
    tracks = [t for t in scores if t in contaminated]
    return (np.array([scores[t] for t in tracks], dtype=np.float64),
            np.array([bool(contaminated[t]) for t in tracks], dtype=bool))


def roc_curve(scores: Mapping[str, float], contaminated: Mapping[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of flagging the lowest-scored tracks as contaminated, over the tracks in both
    maps: (false positive rates, true positive rates), from (0, 0) to (1, 1), one point per distinct
    score (tied tracks are flagged together). Its area (trapezoids) is ``auroc``."""
    values, bad = _arrays(scores, contaminated)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        return np.array([0.0, 1.0]), np.array([np.nan, np.nan])
    thresholds = np.unique(values)  # ascending: flag every track scored <= threshold
    flagged_bad = np.array([(values[bad] <= t).sum() for t in thresholds])
    flagged_good = np.array([(values[~bad] <= t).sum() for t in thresholds])
    return np.concatenate([[0.0], flagged_good / n_good]), np.concatenate([[0.0], flagged_bad / n_bad])


def labels(contamination: dict, kind: str | None = None, target: str | None = None) -> dict[str, bool]:
    """track -> contaminated. ``kind``: only that kind counts, other contaminated tracks are left
    out; ``target``: contaminated means that target's stem was affected."""
    out = {}
    for track, record in contamination["tracks"].items():
        hit = record["contaminated"] and (target is None or target in record["stems"])
        if kind is not None and record["contaminated"] and record["kind"] != kind:
            continue
        out[track] = hit
    return out


def stem_kind(record: dict, target: str) -> str | None:
    """What was done to ``target``'s stem of one track's contamination record, or None where nothing
    was. Label noise is told apart by what the stem's label became: ``swap`` (another stem's whole
    label), ``lost a part`` (still its own source, a part missing), ``got a part`` (its own source
    and another's part), ``lost+got``; other kinds are their own name (``bleeding``, ``effects``)."""
    if not record.get("contaminated") or target not in record.get("stems", ()):
        return None
    if record["kind"] != "label_noise":
        return record["kind"]
    params = record.get("params") or {}
    if any(target in pair for pair in params.get("swaps", ())):
        return "swap"
    lost = any(move["from"] == target for move in params.get("moves", ()))
    got = any(move["to"] == target for move in params.get("moves", ()))
    return "lost+got" if lost and got else "lost a part" if lost else "got a part"


def report(table: ScoreTable, contamination: dict) -> dict:
    """AUROC overall (unified score), per contamination kind, and per target (target scores)."""
    unified = table.column(UNIFIED)
    kinds = sorted({r["kind"] for r in contamination["tracks"].values() if r["contaminated"]})
    return {
        "overall": auroc(unified, labels(contamination)),
        "kind": {k: auroc(unified, labels(contamination, kind=k)) for k in kinds},
        "target": {t: auroc(table.column(t), labels(contamination, target=t)) for t in table.targets},
    }
