"""From a scores table to a clean manifest: keep the best-scoring fraction of the training songs.

``unified`` keeps one set for every target (by the ``all`` score); ``per-target`` keeps one set per
target (by that target's score), as the paper does for Open-Unmix's per-target models.

The clean manifest is stamped with the dataset the table says it scores, so the table must score
every track of it: a table that does not is refused, never turned into a smaller clean manifest.
"""

from __future__ import annotations

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.scores import UNIFIED, ScoresError, ScoreTable

MODES = ("unified", "per-target")


def top_fraction(scores: dict[str, float], ratio: float) -> list[str]:
    """The ``round(ratio * N)`` best-scoring tracks (at least one), in the table's track order.

    Ties are broken by track order, so the result is deterministic.
    """
    if not 0.0 < ratio <= 1.0:
        raise CleanManifestError(f"ratio is the fraction of songs kept, in (0, 1]; got {ratio}")
    order = list(scores)
    count = max(1, round(ratio * len(order)))
    ranked = sorted(order, key=lambda t: -scores[t])  # stable: ties stay in table order
    kept = set(ranked[:count])
    return [t for t in order if t in kept]


def clean_manifest(table: ScoreTable, ratio: float, mode: str = "unified") -> CleanManifest:
    if mode not in MODES:
        raise CleanManifestError(f"mode must be one of {MODES}, got {mode!r}")
    dataset = covered_dataset(table)
    if mode == "unified":
        keep: list[str] | dict[str, list[str]] = top_fraction(table.column(UNIFIED), ratio)
    else:
        if not table.targets:
            raise CleanManifestError(f"{table.method} scores have no per-target columns; use mode 'unified'")
        keep = {target: top_fraction(table.column(target), ratio) for target in table.targets}
    return CleanManifest(
        keep=keep,
        dataset_hash=dataset["hash"],
        dataset_tracks=dataset["tracks"],
        mode=mode,
        ratio=ratio,
        methods=[table.method],
    )


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
