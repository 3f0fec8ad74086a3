"""The controls every cleaning method is measured against: ``oracle`` and ``random``."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepclean.scorers.base import Scorer, ScorerError, ScoringTask, register
from sepclean.scores import ScoreTable


def _meta(task: ScoringTask, **extra) -> dict:
    return {**Scorer.record(task), **extra}


@register
@dataclass(frozen=True)
class Oracle(Scorer):
    """Knows the truth: 1 for a clean song, 0 for a contaminated one (per target: that target's stem
    was affected; unified: any stem was). ``cut`` 0.5 keeps exactly the clean songs (ratio auto)."""

    name = "oracle"
    blind = False
    needs_truth = True

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        self.check(task)
        truth = task.contamination["tracks"]
        absent = [t for t in task.train.ids if t not in truth]
        if absent:
            raise ScorerError(f"oracle: {len(absent)} training track(s) absent from the ground truth, e.g. {absent[0]!r}")
        stems = list(task.train.stems)
        columns = {s: {t: 0.0 if truth[t]["contaminated"] and s in truth[t]["stems"] else 1.0 for t in task.train.ids}
                   for s in stems}
        unified = {t: 0.0 if truth[t]["contaminated"] else 1.0 for t in task.train.ids}
        return ScoreTable.from_columns(self.name, task.train.ids, columns, _meta(task, cut=0.5), unified)


@register
@dataclass(frozen=True)
class Random(Scorer):
    """A uniform random score per song (the same for every target), from ``seed`` and the track id,
    so the same song gets the same score whatever the rest of the pool."""

    name = "random"
    seed: int = 0
    """Seed of the scores (with each track id)."""

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        values = {t: float(np.random.default_rng([self.seed, zlib.crc32(t.encode())]).random()) for t in task.train.ids}
        columns = {s: values for s in task.train.stems}
        return ScoreTable.from_columns(self.name, task.train.ids, columns, _meta(task, seed=self.seed), values)
