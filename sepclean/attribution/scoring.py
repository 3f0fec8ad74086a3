"""From the ΔL array to scores: normalisation, then aggregation over references and over targets.

Pure functions on the arrays of ``delta_loss.npz`` (``delta`` N × M × T, ``baseline`` N × T) and,
for the gradient-based normalisations, the self-influences of the tracks and references. Higher
is always more useful to keep.

Normalisation of ΔL_ijt (``scoring``):

- ``absolute``: ΔL as it is (the paper). A louder or harder song has a larger loss and moves more
  under any parameter change, so its ΔL is larger whatever it holds.
- ``relative``: ΔL_ijt / L_it, the rise relative to the song's own loss.
- ``gradnorm``: ΔL_ijt / sqrt(s_it), with s_it = g_itᵀ(F + λ)⁻¹g_it the song's self-influence in the
  unlearning metric (RelatIF's θ-relative influence, Barshan et al. 2020): a song whose gradient is
  large in every direction no longer outscores one aligned with the reference.
- ``cosine``: ΔL_ijt / sqrt(s_it · s_jt): in linear mode ΔL_ijt = (α/N) g_itᵀ(F + λ)⁻¹g_j, so this is
  the cosine of the two gradients in that metric (times α/N), the same scale for every reference.

Over references (``references``): ``mean`` (the paper), or ``rank``: each reference ranks the
training songs, and a song's score is its mean normalised rank (references whose unlearning moves
every loss a lot no longer dominate).

Per song (the unified ``all`` score, ``unified``): ``mean`` of the per-target scores (the paper),
``rank``: the mean over targets of the song's normalised rank in each target, or ``worst``: its
lowest normalised rank over targets (one corrupted stem is enough to drop a song).

Normalised ranks are (rank − 1) / (N − 1) in [0, 1], ties sharing their mean rank (0.5 when N = 1).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

SCORINGS = ("absolute", "relative", "gradnorm", "cosine")
REFERENCES = ("mean", "rank")
UNIFIED = ("mean", "rank", "worst")
NEEDS_NORMS = ("gradnorm", "cosine")
EPSILON = 1e-12


def normalised_ranks(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Ranks along ``axis`` scaled to [0, 1] (lowest 0, highest 1), ties averaged."""
    values = np.asarray(values, dtype=np.float64)
    count = values.shape[axis]
    if count == 1:
        return np.full_like(values, 0.5)
    return (rankdata(values, axis=axis) - 1.0) / (count - 1)


def normalise(delta: np.ndarray, baseline: np.ndarray, scoring: str = "absolute",
              train_norm: np.ndarray | None = None, reference_norm: np.ndarray | None = None) -> np.ndarray:
    """ΔL (N × M × T) normalised as ``scoring`` says. ``train_norm`` (N × T) and ``reference_norm``
    (M × T) are the self-influences s, needed by ``gradnorm`` and ``cosine``."""
    _check(scoring, SCORINGS, "scoring")
    delta = np.asarray(delta, dtype=np.float64)
    if scoring == "absolute":
        return delta
    if scoring == "relative":
        return delta / np.maximum(np.asarray(baseline, dtype=np.float64)[:, None, :], EPSILON)
    if train_norm is None or (scoring == "cosine" and reference_norm is None):
        raise ValueError(f"scoring {scoring!r} needs the self-influences of the tracks"
                         + (" and references" if scoring == "cosine" else ""))
    out = delta / np.sqrt(np.maximum(np.asarray(train_norm, dtype=np.float64), EPSILON))[:, None, :]
    if scoring == "cosine":
        out = out / np.sqrt(np.maximum(np.asarray(reference_norm, dtype=np.float64), EPSILON))[None, :, :]
    return out


def over_references(values: np.ndarray, how: str = "mean") -> np.ndarray:
    """N × M × T → N × T: the mean over references, or the mean normalised rank of each song
    among the training songs, reference by reference."""
    _check(how, REFERENCES, "references")
    values = np.asarray(values, dtype=np.float64)
    return (values if how == "mean" else normalised_ranks(values, axis=0)).mean(axis=1)


def unified(per_target: np.ndarray, how: str = "mean") -> np.ndarray:
    """N × T → N: one score per song from its per-target scores."""
    _check(how, UNIFIED, "unified")
    per_target = np.asarray(per_target, dtype=np.float64)
    if how == "mean":
        return per_target.mean(axis=1)
    ranks = normalised_ranks(per_target, axis=0)
    return ranks.mean(axis=1) if how == "rank" else ranks.min(axis=1)


def scores(delta: np.ndarray, baseline: np.ndarray, scoring: str = "absolute", references: str = "mean",
           how_unified: str = "mean", train_norm: np.ndarray | None = None,
           reference_norm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(per_target N × T, unified N)`` from ΔL; the defaults are the paper's mean ΔL."""
    per_target = over_references(normalise(delta, baseline, scoring, train_norm, reference_norm), references)
    return per_target, unified(per_target, how_unified)


def _check(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, not {value!r}")
