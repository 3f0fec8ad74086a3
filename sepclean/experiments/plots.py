"""The report's figures, drawn with matplotlib's object API (``Figure`` + the Agg renderer for PNG):
no pyplot, so no global backend or figure state, and no display needed.

Each function takes plain values and writes one PNG. Colours name a scoring method and line styles
a filter mode, the same in every figure; the controls are black horizontal lines.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sepclean.detection import auroc, labels, roc_curve
from sepclean.scores import UNIFIED, ScoreTable

DPI = 110
CONTROL_STYLES = {"dirty": ("-", "dirty (whole pool)"), "clean_twin": (":", "clean twin (upper bound)"),
                  "reference_only": ("-.", "reference only")}
MODE_STYLES = {"unified": ("-", "o"), "per-target": ("--", "s")}
CLEAN_COLOUR, BAD_COLOUR = "tab:blue", "tab:red"
MIN_SDR_SPAN = 0.5
"""dB: the least an SDR panel's y axis spans, so that differences of 0.001 dB never fill a panel."""
SCORE_AXES = {"fad": "score = −FAD (squared embedding units; higher = keep)"}
"""What a method's raw scores are, where they are not plain: FAD's are negated Fréchet distances."""


def colours(methods) -> dict[str, str]:
    """method -> colour, stable for a given set of methods."""
    palette = [f"C{i}" for i in range(10)]
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(methods)))}


def finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def sdr_vs_ratio(rows: list[dict], archs: list[str], targets: list[str], path: Path, title: str) -> Path:
    """SDR of each (method, mode) against the ratio kept, one panel per (architecture, target):
    ``rows`` are ``results.summarise`` rows (mean and std over seeds); the controls are horizontal
    lines with a band of ± one standard deviation over seeds."""
    methods = [r for r in rows if r["method"] not in CONTROL_STYLES and isinstance(r["ratio"], (int, float))]
    ratios = sorted({float(r["ratio"]) for r in methods})
    methods = [{**r, "method": r.get("name", r["method"])} for r in methods]
    series = sorted({(r["method"], r["mode"]) for r in methods})
    colour = colours(m for m, _ in series)
    # A small horizontal offset per series keeps error bars at the same ratio apart.
    spread = (min(np.diff(ratios)) if len(ratios) > 1 else 0.1) * 0.1
    offsets = {s: (i - (len(series) - 1) / 2) * spread / max(len(series) - 1, 1) for i, s in enumerate(series)}

    # One target: the architectures side by side; several: one row per architecture.
    nrows, ncols = (1, len(archs)) if len(targets) == 1 else (len(archs), len(targets))
    width = max(4.6 * ncols, 7.0)
    legend_cols = max(1, min(len(series) + len(CONTROL_STYLES), int(width / 2.4)))
    legend_rows = math.ceil((len(series) + len(CONTROL_STYLES)) / legend_cols)
    fig = Figure(figsize=(width, 3.8 * nrows + 0.6 + 0.25 * legend_rows), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles = {}
    for i, arch in enumerate(archs):
        for j, target in enumerate(targets):
            ax = axes[0][i] if len(targets) == 1 else axes[i][j]
            first_column, last_row = (i == 0, True) if len(targets) == 1 else (j == 0, i == len(archs) - 1)
            key, std = f"sdr_{target}", f"sdr_{target}_std"
            if not any(finite(r.get(key)) for r in rows if r["arch"] == arch):
                ax.text(0.5, 0.5, f"no {target} SDR: {arch} was not trained for it", ha="center", va="center",
                        fontsize=9, transform=ax.transAxes)
            for control, (style, label) in CONTROL_STYLES.items():
                row = next((r for r in rows if r["arch"] == arch and r.get("name", r["method"]) == control), None)
                if row is None or not finite(row.get(key)):
                    continue
                line = ax.axhline(row[key], color="black", linestyle=style, linewidth=1.2)
                handles.setdefault(label, line)
                if finite(row.get(std)):
                    ax.axhspan(row[key] - row[std], row[key] + row[std], color="black", alpha=0.07, linewidth=0)
            for method, mode in series:
                points = sorted((float(r["ratio"]), r[key], r.get(std)) for r in methods
                                if r["arch"] == arch and r["method"] == method and r["mode"] == mode
                                and finite(r.get(key)))
                if not points:
                    continue
                x = np.array([p[0] for p in points]) + offsets[(method, mode)]
                y = np.array([p[1] for p in points])
                err = np.array([p[2] if finite(p[2]) else 0.0 for p in points])
                style, marker = MODE_STYLES.get(mode, ("-", "^"))
                if len(ratios) == 1:
                    style = "none"  # points only: the legend must not draw a line either
                bars = ax.errorbar(x, y, yerr=err if err.any() else None, color=colour[method], linestyle=style,
                                   marker=marker, markersize=4.5, linewidth=1.4, capsize=3, elinewidth=1)
                handles.setdefault(f"{method} ({mode})", bars)
            ax.set_title(f"{arch}: {'average' if target == 'avg' else target} SDR", fontsize=10)
            ax.set_xticks(ratios)
            ax.set_xticklabels([f"{r:g}" for r in ratios])
            if ratios:
                pad = max(spread, 0.05)
                ax.set_xlim(ratios[0] - pad, ratios[-1] + pad)
            low, high = ax.get_ylim()
            if high - low < MIN_SDR_SPAN:
                middle = (low + high) / 2
                ax.set_ylim(middle - MIN_SDR_SPAN / 2, middle + MIN_SDR_SPAN / 2)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
            if last_row:
                ax.set_xlabel("ratio kept (fraction of the pool)", fontsize=9)
            if first_column:
                ax.set_ylabel("SDR (dB), mean over seeds", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=legend_cols, fontsize=8,
               frameon=False)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, (0.1 + 0.22 * legend_rows) / height, 1, 1 - 0.15 / height))
    return _save(fig, path)


def condition_name(row: dict) -> str:
    """A summary row's condition as a reader names it: ``mlp auto per-target + truncate 0.25``."""
    name = row["method"]
    if row.get("ratio") is not None:
        name += f" {row['ratio']:g}" if isinstance(row["ratio"], (int, float)) else f" {row['ratio']}"
    if row.get("mode"):
        name += f" {row['mode']}"
    return name + row.get("name", row["method"])[len(row["method"]):]  # its action, rounds, robust training, variant


def gains(rows: list[dict], archs: list[str], path: Path, title: str) -> Path:
    """Each condition's paired difference in average SDR against dirty (same architecture and seed)
    with its 95% t-interval, one panel per architecture, the clean twin's as the dotted line the gap
    ends at. Intervals that exclude zero are drawn in colour, the others in grey."""
    per_arch = {arch: [r for r in rows if r["arch"] == arch and finite(r.get("delta"))] for arch in archs}
    height = max(len(v) for v in per_arch.values())
    # never shorter than the other figures: a grid with two conditions still gets a readable panel
    fig = Figure(figsize=(6.8 * len(archs), max(0.42 * height + 1.6, 3.2)), dpi=DPI)
    axes = fig.subplots(1, len(archs), squeeze=False)[0]
    for ax, arch in zip(axes, archs):
        shown = per_arch[arch]
        for y, row in enumerate(reversed(shown)):
            low, high = row.get("delta_low"), row.get("delta_high")
            resolved = finite(low) and finite(high) and (low > 0 or high < 0)
            colour = ("tab:green" if row["delta"] > 0 else "tab:red") if resolved else "tab:gray"
            if finite(low) and finite(high):
                ax.plot([low, high], [y, y], color=colour, linewidth=2)
            ax.plot([row["delta"]], [y], marker="o", color=colour, markersize=5)
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels([f"{condition_name(r)} (n={r['seeds']})" for r in reversed(shown)], fontsize=8)
        ax.axvline(0, color="black", linewidth=1)
        twin = next((r for r in shown if r.get("name", r["method"]) == "clean_twin"), None)
        if twin is not None:
            ax.axvline(twin["delta"], color="black", linestyle=":", linewidth=1.2)
        lows = [r["delta_low"] for r in shown if finite(r.get("delta_low"))] + [r["delta"] for r in shown]
        highs = [r["delta_high"] for r in shown if finite(r.get("delta_high"))] + [r["delta"] for r in shown]
        if lows:  # at least 0.5 dB wide, so that noise never looks like an effect
            middle, half = (min(lows + [0]) + max(highs + [0])) / 2, max((max(highs + [0]) - min(lows + [0])) / 2, 0.25)
            ax.set_xlim(middle - half * 1.1, middle + half * 1.1)
        ax.set_xlabel("Δ average SDR against dirty (dB), 95% interval")
        ax.set_title(f"{arch}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def score_histograms(tables: list[tuple[str, ScoreTable, dict | None]], path: Path) -> Path:
    """One row per scores table (label, table, ground truth or None), one column per score (the
    unified ``all`` score, then each target's): clean songs against contaminated ones (for a target:
    songs whose stem of that target was contaminated), or every song when there is no ground truth."""
    columns = [UNIFIED, *_targets(t for _, t, _ in tables)]
    fig = Figure(figsize=(3.3 * len(columns) + 0.6, 2.5 * len(tables) + 0.9), dpi=DPI)
    axes = fig.subplots(len(tables), len(columns), squeeze=False)
    handles = {}
    for i, (label, table, truth) in enumerate(tables):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            if column != UNIFIED and column not in table.targets:
                ax.text(0.5, 0.5, f"{label}: no {column} scores", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            scores = table.column(column)
            values = np.array(list(scores.values()))
            bins = np.histogram_bin_edges(values, bins=min(30, max(8, len(values) // 3)))
            name = "all (unified)" if column == UNIFIED else column
            if truth is None:
                ax.hist(values, bins=bins, color="tab:gray", alpha=0.8)
                ax.set_title(f"{label}: {name}", fontsize=9)
            else:
                bad = labels(truth, target=None if column == UNIFIED else column)
                for flag, colour, text in ((False, CLEAN_COLOUR, "clean"), (True, BAD_COLOUR, "contaminated")):
                    subset = [scores[t] for t in scores if bad.get(t) is flag]
                    if subset:
                        _, _, patches = ax.hist(subset, bins=bins, color=colour, alpha=0.55, edgecolor=colour)
                        handles.setdefault(text + (" (for a target: that stem)" if flag else ""), patches[0])
                found = auroc(scores, bad)
                ax.set_title(f"{label}: {name}" + (f"  AUROC {found:.2f}" if math.isfinite(found) else ""), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # FAD distances have long tick labels
            if i == len(tables) - 1 or table.method in SCORE_AXES:
                ax.set_xlabel(SCORE_AXES.get(table.method, "score (higher = keep)"), fontsize=8)
            if j == 0:
                ax.set_ylabel("songs", fontsize=8)
    fig.suptitle("Scores of the training songs" + (", clean vs contaminated" if handles else ""), fontsize=11)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight() if handles else 0, 1, 1 - 0.3 / fig.get_figheight()))
    return _save(fig, path)


def roc_curves(tables: list[tuple[str, ScoreTable, dict]], path: Path) -> Path:
    """ROC of flagging the lowest-scored songs as contaminated: one panel per score (unified, then
    each target), one curve per scores table, its AUROC in the legend."""
    columns = [UNIFIED, *_targets(t for _, t, _ in tables)]
    ncols = min(len(columns), 3)
    nrows = math.ceil(len(columns) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 4.0 * nrows + 0.3), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colour = colours(label for label, _, _ in tables)
    for ax, column in zip(axes, columns):
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1, label="chance (0.50)")
        drawn = 0
        for label, table, truth in tables:
            if column != UNIFIED and column not in table.targets:
                continue
            scores = table.column(column)
            bad = labels(truth, target=None if column == UNIFIED else column)
            fpr, tpr = roc_curve(scores, bad)
            if np.isnan(tpr).any():
                continue  # no contaminated (or no clean) song for this target: no curve
            drawn += 1
            ax.plot(fpr, tpr, color=colour[label], linewidth=1.6,
                    label=f"{label} ({auroc(scores, bad):.2f})")
        if not drawn:
            ax.text(0.5, 0.55, "no curve: no song whose stem\nof this target was contaminated (or none clean)",
                    ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_title("all (unified score)" if column == UNIFIED else f"{column} (its stem contaminated)", fontsize=10)
        ax.set_xlim(-0.02, 1.02)  # curves along the frame stay visible
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("clean songs flagged (false positive rate)", fontsize=8)
        ax.set_ylabel("contaminated songs flagged (TPR)", fontsize=8)
        ax.legend(loc="lower right", fontsize=7, title="method (AUROC)", title_fontsize=7)
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    fig.suptitle("ROC: flagging the lowest-scored songs as contaminated", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _targets(tables) -> list[str]:
    """The targets any table scores, in the order they first appear."""
    seen: list[str] = []
    for table in tables:
        seen += [t for t in table.targets if t not in seen]
    return seen


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path
