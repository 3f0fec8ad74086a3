"""Rank fusion: several methods' scores as one table (the paper's open problem 2: blind + specialist).

    create("fusion", methods=[{"method": "fad"}, {"method": "attribute", "unified": "worst"}])
    create("fusion", methods=["scores/fad", "scores/unlearn"], weights=[1, 2])

Each component is a method's settings (``{"method": name, **settings}``, scored here, each in its
own subfolder of the work folder) or a finished scores directory of the same training songs. Every
column (each target, and the per-song ``all``) of the fused table is the weighted mean of the
components' normalised ranks in that column (0 = the component's worst song, 1 = its best), so
scores of any scale mix. A fused table is blind only when every component is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sepclean
from sepclean.attribution.scoring import normalised_ranks
from sepclean.scorers.base import Scorer, ScorerError, ScoringTask, create, names, register, scorer_class
from sepclean.scores import CSV_NAME, META_NAME, UNIFIED, ScoreTable


@register
@dataclass(frozen=True)
class Fusion(Scorer):
    """The weighted mean normalised rank of other methods' scores."""

    name = "fusion"
    methods: tuple = ()
    """Components: ``{"method": name, **settings}`` or the path of a scores directory (on the command
    line, paths as ``A,B`` or any of them as a YAML list: ``'[{method: mlp, epochs: 40}, scores/fad]'``)."""
    weights: tuple[float, ...] | None = None
    """One non-negative weight per component (None: equal weights)."""

    def __post_init__(self):
        methods = tuple(dict(m) if isinstance(m, dict) else str(m) for m in self.methods)
        if len(methods) < 2:
            raise ValueError("fusion needs at least two components (methods)")
        for m in methods:
            if isinstance(m, dict) and "method" not in m:
                raise ValueError(f"component {m} names no method ({{'method': name, **settings}})")
        object.__setattr__(self, "methods", methods)
        if self.weights is not None:
            weights = tuple(float(w) for w in self.weights)
            if len(weights) != len(methods) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"weights must be {len(methods)} non-negative numbers, not all zero")
            object.__setattr__(self, "weights", weights)

    def config(self) -> dict:
        """As ``Scorer.config``, with each scores directory among the components named by the table it
        holds now (a digest of its files), not by its path: the artifact of a fusion whose component
        table was written again is made again, never the old one served."""
        config = super().config()
        config["methods"] = [m if isinstance(m, dict) else {"table": _table_digest(Path(m))} for m in self.methods]
        return config

    def components(self) -> list[Scorer | Path]:
        return [create(m["method"], **{k: v for k, v in m.items() if k != "method"}) if isinstance(m, dict)
                else Path(m) for m in self.methods]

    @property
    def blind(self) -> bool:
        """Blind when every component is; a scores directory is as blind as the method that wrote it."""
        def blind(component) -> bool:
            if isinstance(component, Scorer):
                return component.blind
            method = ScoreTable.read(component).method
            return method in names() and scorer_class(method).blind is True

        return all(blind(c) for c in self.components())

    @property
    def needs_baseline(self) -> bool:
        return any(isinstance(c, Scorer) and c.needs_baseline for c in self.components())

    @property
    def needs_truth(self) -> bool:
        return any(isinstance(c, Scorer) and c.needs_truth for c in self.components())

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        self.check(task)
        tables = []
        for component in self.components():
            if isinstance(component, Path):
                table = ScoreTable.read(component)
                made_for = table.metadata.get("manifests", {}).get("train")
                if made_for != task.train.hash:
                    raise ScorerError(f"{component}: scores of another training manifest "
                                      f"({str(made_for)[:12]}, not {task.train.hash[:12]})")
            else:
                key = hashlib.sha256(json.dumps(component.config(), sort_keys=True).encode()).hexdigest()[:12]
                table = component.score(task, Path(workdir) / f"{component.name}-{key}")
            missing = [t for t in task.train.ids if t not in table.scores]
            if missing:
                raise ScorerError(f"{table.method} scores lack {len(missing)} training song(s), e.g. {missing[0]!r}")
            tables.append(table)
        targets = [t for t in tables[0].targets if all(t in table.targets for table in tables[1:])]
        weights = np.array(self.weights or [1.0] * len(tables))
        weights = weights / weights.sum()

        def fused(column: str) -> dict[str, float]:
            ranks = np.stack([normalised_ranks(np.array([table.scores[t][column] for t in task.train.ids]))
                              for table in tables])
            return dict(zip(task.train.ids, (weights @ ranks).tolist()))

        meta = {**self.record(task),
                "components": [{"method": table.method, **{k: table.metadata.get(k) for k in ("scoring", "unified")
                                                            if k in table.metadata}} for table in tables],
                "weights": weights.tolist(), "sepclean": sepclean.__version__}
        return ScoreTable.from_columns(self.name, task.train.ids, {t: fused(t) for t in targets}, meta,
                                       fused(UNIFIED))


def _table_digest(directory: Path) -> str:
    """SHA-256 of the scores table in ``directory`` (its CSV and metadata, checked readable first)."""
    ScoreTable.read(directory)
    h = hashlib.sha256()
    for name in (CSV_NAME, META_NAME):
        h.update((directory / name).read_bytes())
    return h.hexdigest()
