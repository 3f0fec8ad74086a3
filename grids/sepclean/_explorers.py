"""The explorer of every cleaning grid: one row per XP, and the condition's figures over seeds."""

from __future__ import annotations

import sys
import time

import treetable as tt
from dora import Explorer

import sepclean
from sepclean.experiments.local_grid import xp_history
from sepclean.experiments.results import Condition, interval, summarise
from sepclean.pipeline.experiment import CONTROLS


class CleaningExplorer(Explorer):
    """Columns: the condition, what the model trained on, what the scores found, the XP's SDR, and
    over the seeds of its condition the mean ± std average SDR, the paired difference to dirty with
    its 95% interval, the share of the dirty → clean-twin gap closed, and for a condition with more
    than plain cleaning (an action, rounds, robust training) the paired difference to the same
    method's plain drop (``Condition.plain``)."""

    def __call__(self, launcher):
        super().__call__(launcher)
        # dora keeps the grid's XPs in the launcher's herd: a row's seed figures need its siblings.
        self._herd = launcher._herd
        self._cache = (0.0, {})

    def get_colors(self):
        """dora's row colours on a terminal; none in a log file, where they are escape codes."""
        try:
            return super().get_colors() if sys.stdout.isatty() else None
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return None

    def get_grid_meta(self):
        return [tt.leaf("index", align=">"), tt.leaf("state"), tt.leaf("sig", align=">")]

    def get_grid_metrics(self):
        return [
            tt.group("xp", [tt.leaf("arch"), tt.leaf("method"), tt.leaf("ratio"), tt.leaf("mode"), tt.leaf("seed")]),
            tt.group("train", [tt.leaf("kept", ".1f"), tt.leaf("bad_out", ".1f"), tt.leaf("auroc", ".2f"),
                               tt.leaf("conv")]),
            tt.group("sdr", [tt.leaf(t, ".2f") for t in [*sepclean.STEMS, "avg"]]),
            tt.group("seeds", [tt.leaf("n"), tt.leaf("avg", ".2f"), tt.leaf("std", ".2f"), tt.leaf("vs_dirty"),
                               tt.leaf("gap", ".0%"), tt.leaf("vs_plain")]),
        ]

    def _summary(self) -> dict:
        stamp, rows = self._cache
        if time.time() - stamp > 5:
            runs = []
            for sheep in self._herd.sheeps.values():
                history = xp_history(sheep.xp)  # a damaged history.json is an error naming it
                if history:
                    runs.append((sheep.xp.cfg, history[-1]))
            rows = {(r["arch"], r["name"], r["ratio"], r["mode"]): r for r in summarise(runs)}
            self._cache = (time.time(), rows)
        return rows

    def process_sheep(self, sheep, history):
        cfg = sheep.xp.cfg
        control = cfg.method in CONTROLS
        line = {"xp": {"arch": cfg.arch, "method": Condition.of(cfg).name, "ratio": "-" if control else cfg.ratio,
                       "mode": "-" if control else cfg.mode, "seed": cfg.seed}}
        history = xp_history(sheep.xp)  # dora's copy is whatever history.json held; this one is checked
        if not history:
            return line
        metrics = history[-1]
        line["train"] = {"kept": metrics.get("kept"), "bad_out": metrics.get("removed_contaminated"),
                         "auroc": metrics.get("auroc"), "conv": "yes" if metrics.get("converged") else "NO"}
        line["sdr"] = {t: v for t, v in metrics["sdr"].items() if v is not None}
        condition = Condition.of(cfg)
        row = self._summary().get((condition.arch, condition.name, condition.ratio, condition.mode))
        if row is not None:
            seeds = {"n": row["seeds"], "avg": row["sdr_avg"], "std": row["sdr_avg_std"]}
            if row.get("delta") is not None:
                seeds["vs_dirty"] = interval(row, "delta")
            if row.get("gap_closed") is not None:
                seeds["gap"] = row["gap_closed"]
            if row.get("vs_plain") is not None:
                seeds["vs_plain"] = interval(row, "vs_plain")
            line["seeds"] = seeds
        return line


def launch_conditions(launcher, archs, methods, ratios, seeds, controls=tuple(CONTROLS)) -> None:
    """Every (seed, architecture) gets the controls, and every (method, mode) at every ratio.

    ``methods``: ``(method, mode)`` pairs, e.g. ``[("fad", "per-target"), ("attribute", "unified")]``.
    Controls are launched without ratio or mode, so that each is one XP whatever the grid's ratios.
    """
    for seed in seeds:
        for arch in archs:
            sub = launcher.bind(arch=arch, seed=seed)
            for control in controls:
                sub(method=control)
            for method, mode in methods:
                for ratio in ratios:
                    sub(method=method, ratio=ratio, mode=mode)


def launch_auto(launcher, archs, methods, seeds) -> None:
    """Each ``(method, mode)`` at ratio ``auto``, with the oracle and random controls keeping as many
    songs as it chose (ratio ``METHOD@auto``): what its choice of songs adds to the choice of a size."""
    for method, mode in methods:
        launch_conditions(launcher, archs, [(method, mode)], ["auto"], seeds, controls=())
        launch_conditions(launcher, archs, [("oracle", mode), ("random", mode)], [f"{method}@auto"], seeds,
                          controls=())
