"""From a scores table to a clean manifest: keep the best-scoring fraction of the training songs.

``unified`` keeps one set for every target (by the ``all`` score); ``per-target`` keeps one set per
target (by that target's score), as the paper does for Open-Unmix's per-target models.
"""

from __future__ import annotations

from sepclean.clean_manifest import CleanManifest
from sepclean.scores import UNIFIED, ScoreTable

MODES = ("unified", "per-target")


def top_fraction(scores: dict[str, float], ratio: float) -> list[str]:
    """The ``round(ratio * N)`` best-scoring tracks (at least one), in the table's track order.

    Ties are broken by track order, so the result is deterministic.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio is the fraction of songs kept, in (0, 1]; got {ratio}")
    order = list(scores)
    count = max(1, round(ratio * len(order)))
    ranked = sorted(order, key=lambda t: -scores[t])  # stable: ties stay in table order
    kept = set(ranked[:count])
    return [t for t in order if t in kept]


def clean_manifest(table: ScoreTable, ratio: float, mode: str = "unified") -> CleanManifest:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "unified":
        keep: list[str] | dict[str, list[str]] = top_fraction(table.column(UNIFIED), ratio)
    else:
        if not table.targets:
            raise ValueError(f"{table.method} scores have no per-target columns; use mode 'unified'")
        keep = {target: top_fraction(table.column(target), ratio) for target in table.targets}
    manifests = table.metadata.get("manifests", {})
    return CleanManifest(
        keep=keep,
        dataset_hash=manifests.get("train"),
        dataset_tracks=len(table.scores),
        mode=mode,
        ratio=ratio,
        methods=[table.method],
    )
