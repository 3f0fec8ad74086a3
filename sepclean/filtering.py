"""From a scores table to a clean manifest: keep the best-scoring fraction of the training songs.

``unified`` keeps one set for every target (by the ``all`` score); ``per-target`` keeps one set per
target (by that target's score), as the paper does for Open-Unmix's per-target models.

The clean manifest is stamped with the dataset the table says it scores, so the table must score
every track of it: a table that does not is refused, never turned into a smaller clean manifest.

The fraction is a number, or ``auto`` (:func:`auto_keep`): the scores are taken as a mixture of a
kept and a dropped population, as DivideMix does with per-sample losses, and the songs that more
likely belong to the higher one are kept; no retraining sweep is needed to choose it.

:func:`matched_manifest` keeps, by one table's scores, as many songs per list as another clean
manifest keeps: the oracle and random controls at the size a method chose with ``auto``.
"""

from __future__ import annotations

import math

import numpy as np

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.scores import UNIFIED, ScoresError, ScoreTable

MODES = ("unified", "per-target")
AUTO = "auto"
AUTO_RULE = ("two-component Gaussian mixture with one shared variance fitted by EM to the scores (clipped to "
             "Tukey's outer fences Q1 - 3 IQR, Q3 + 3 IQR); keep the "
             "songs whose posterior of the higher-mean component is >= 0.5 (a threshold), or every song "
             "when the BIC does not prefer two components to one or when that would keep less than a quarter "
             "of the songs; a table with a 'cut' keeps scores >= cut")
AUTO_MIN_KEPT = 0.25


def top_fraction(scores: dict[str, float], ratio: float) -> list[str]:
    """The ``round(ratio * N)`` best-scoring tracks (at least one), in the table's track order.

    Ties are broken by track order, so the result is deterministic.
    """
    if not 0.0 < ratio <= 1.0:
        raise CleanManifestError(f"ratio is the fraction of songs kept, in (0, 1]; got {ratio}")
    return top_count(scores, max(1, round(ratio * len(scores))))


def top_count(scores: dict[str, float], count: int) -> list[str]:
    """The ``count`` best-scoring tracks, in the table's track order (ties broken by that order)."""
    order = list(scores)
    if not 0 < count <= len(order):
        raise CleanManifestError(f"cannot keep {count} of {len(order)} tracks")
    ranked = sorted(order, key=lambda t: -scores[t])  # stable: ties stay in table order
    kept = set(ranked[:count])
    return [t for t in order if t in kept]


def auto_keep(scores: dict[str, float], cut: float | None = None) -> list[str]:
    """The songs ``ratio="auto"`` keeps, in the table's track order.

    With ``cut`` (a method that knows where its scores divide, as the oracle's 0/1 with cut 0.5):
    exactly the scores >= cut. Otherwise the rule of :data:`AUTO_RULE`: the scores are clipped to
    Tukey's outer fences (so that a few extreme scores cannot inflate the variance) and
    standardised, and a two-component Gaussian mixture with one shared variance is fitted by EM
    (from three starts, the best likelihood kept). One shared variance makes the posterior monotonic
    in the score, so the kept songs are always a top fraction. Every song is kept when the BIC does
    not prefer two components, or when the higher one would hold less than :data:`AUTO_MIN_KEPT` of
    the songs (a heavy upper tail, not a population). At least one song is kept (with a cut).
    """
    order = list(scores)
    values = np.array([scores[t] for t in order], dtype=np.float64)
    keep = _posterior(values, cut) >= 0.5
    if not keep.any():
        keep[int(np.argmax(values))] = True
    return [t for t, k in zip(order, keep) if k]


def clean_posterior(scores: dict[str, float], cut: float | None = None) -> dict[str, float]:
    """Each song's posterior of the kept ("clean") population under the fit ``ratio="auto"`` makes
    (:func:`auto_keep` keeps those >= 0.5): the higher-mean component's posterior of the two-Gaussian
    mixture; 1 for every song where auto keeps every song (the BIC prefers one component, or the
    higher one would hold less than :data:`AUTO_MIN_KEPT`); with ``cut``, 1 for a score >= cut, else 0.
    Monotonic in the score. The ``weight`` action's loss weight (``sepclean.actions``)."""
    order = list(scores)
    values = np.array([scores[t] for t in order], dtype=np.float64)
    return dict(zip(order, _posterior(values, cut).tolist()))


def _posterior(values: np.ndarray, cut: float | None) -> np.ndarray:
    if cut is not None:
        return (values >= cut).astype(np.float64)
    n = values.size
    q1, q3 = np.percentile(values, [25, 75])
    # Tukey's fences: a few extreme scores (a very loud song's ΔL) would otherwise inflate the shared
    # variance until the two populations blur. Clipping is monotonic, so the kept set stays a top fraction.
    x = np.clip(values, q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1)) if q3 > q1 else values
    spread = x.std()
    if n < 4 or spread == 0:
        return np.ones(n)
    x = (x - x.mean()) / spread
    one_component = -0.5 * n * (math.log(2 * math.pi) + 1)  # the ML fit of one Gaussian to x (variance 1)
    best = None
    for low, high in ((25, 75), (10, 90), (50, 95)):
        fit = _two_gaussians(x, *np.percentile(x, [low, high]))
        if fit is not None and (best is None or fit[0] > best[0]):
            best = fit
    # BIC: one Gaussian has 2 parameters, two with a shared variance 4.
    if best is None or -2 * best[0] + 4 * math.log(n) >= -2 * one_component + 2 * math.log(n):
        return np.ones(n)
    # A handful of high scores is a tail, not the population to train on.
    return best[1] if (best[1] >= 0.5).mean() >= AUTO_MIN_KEPT else np.ones(n)


def _two_gaussians(x: np.ndarray, mean_low: float, mean_high: float, iterations: int = 500):
    """EM for two Gaussians sharing one variance: (log-likelihood, posterior of the higher-mean one)."""
    means = np.array([mean_low, mean_high])
    if means[0] == means[1]:
        return None
    weights, variance = np.array([0.5, 0.5]), max(float(np.var(x)) / 4, 1e-6)
    previous = -np.inf
    for _ in range(iterations):
        log_p = np.log(weights) - 0.5 * (np.log(2 * np.pi * variance) + (x[:, None] - means) ** 2 / variance)
        top = log_p.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_p - top).sum(axis=1))
        likelihood = float(log_total.sum())
        posterior = np.exp(log_p - log_total[:, None])
        counts = posterior.sum(axis=0)
        if (counts < 1e-9).any():
            return None
        weights = counts / x.size
        means = (posterior * x[:, None]).sum(axis=0) / counts
        variance = max(float((posterior * (x[:, None] - means) ** 2).sum() / x.size), 1e-6)
        if likelihood - previous < 1e-10:
            break
        previous = likelihood
    higher = int(np.argmax(means))
    return likelihood, posterior[:, higher]


def clean_manifest(table: ScoreTable, ratio: float | str, mode: str = "unified") -> CleanManifest:
    """Keep ``ratio`` of the songs (a fraction, or ``"auto"``: :func:`auto_keep` on each column)."""
    if mode not in MODES:
        raise CleanManifestError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(ratio, str) and ratio != AUTO:
        raise CleanManifestError(f"ratio is a fraction of songs in (0, 1] or {AUTO!r}; got {ratio!r}")
    dataset = covered_dataset(table)
    cut = table.metadata.get("cut")

    def keep_of(column: dict[str, float]) -> list[str]:
        return auto_keep(column, cut) if ratio == AUTO else top_fraction(column, ratio)

    if mode == "unified":
        keep: list[str] | dict[str, list[str]] = keep_of(table.column(UNIFIED))
    else:
        if not table.targets:
            raise CleanManifestError(f"{table.method} scores have no per-target columns; use mode 'unified'")
        keep = {target: keep_of(table.column(target)) for target in table.targets}
    extra = {}
    if ratio == AUTO:
        lists = keep if isinstance(keep, dict) else {UNIFIED: keep}
        extra["auto"] = {"rule": f"cut {cut}" if cut is not None else AUTO_RULE,
                         "kept_fraction": {t: len(k) / len(table.scores) for t, k in lists.items()}}
    return CleanManifest(
        keep=keep,
        dataset_hash=dataset["hash"],
        dataset_tracks=dataset["tracks"],
        mode=mode,
        ratio=ratio,
        methods=[table.method],
        extra=extra,
    )


def matched_manifest(table: ScoreTable, like: CleanManifest) -> CleanManifest:
    """Keep by ``table`` as many songs as ``like`` keeps: per target for a per-target manifest, one
    set otherwise. ``like`` must filter the dataset ``table`` scores."""
    dataset = covered_dataset(table)
    if like.dataset_hash != dataset["hash"]:
        raise CleanManifestError(f"{table.method} scores dataset {dataset['hash'][:12]}, the clean manifest to "
                                 f"match filters {str(like.dataset_hash)[:12]}: not the same songs")
    if like.per_target:
        absent = [t for t in like.keep if t not in table.targets]
        if absent:
            raise CleanManifestError(f"{table.method} scores have no column for {', '.join(absent)}: cannot match "
                                     "a per-target clean manifest")
        keep: list[str] | dict[str, list[str]] = {t: top_count(table.column(t), len(ids)) for t, ids in like.keep.items()}
    else:
        keep = top_count(table.column(UNIFIED), len(like.keep))
    lists = keep if isinstance(keep, dict) else {UNIFIED: keep}
    return CleanManifest(keep=keep, dataset_hash=dataset["hash"], dataset_tracks=dataset["tracks"], mode=like.mode,
                         ratio=None, methods=[table.method],
                         extra={"matched": {"methods": like.methods, "ratio": like.ratio,
                                            "kept": {t: len(k) for t, k in lists.items()}}})


def covered_dataset(table: ScoreTable) -> dict:
    """The table's ``dataset`` record (hash, number of tracks), once sure the table scores all of it."""
    dataset = table.metadata.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("hash"), str) or \
            not isinstance(dataset.get("tracks"), int):
        raise ScoresError(f"{table.method} scores do not say which dataset they score (no 'dataset' "
                                 "record in meta.json): a clean manifest cannot be tied to its dataset")
    if len(table.tracks) != dataset["tracks"]:
        raise ScoresError(
            f"{table.method} scores cover {len(table.tracks)} track(s) of the {dataset['tracks']} of the dataset "
            f"they score (manifest {dataset['hash'][:12]}): every track must be scored before filtering"
        )
    return dataset
