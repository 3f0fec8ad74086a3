"""Methods that read a baseline trained on the noisy set: unlearning attribution (the paper's
flagship) and the ``loss`` comparator (the baseline's own loss on each song, as MDX23 teams filtered)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sepclean
from sepclean.scorers.base import Scorer, ScorerError, ScoringTask, register, setting
from sepclean.scores import ScoreTable, dataset_record

SCORINGS = ("absolute", "relative")


class ShardPending(ScorerError):
    """This shard's references are done; others are not, so there are no scores yet."""

    def __init__(self, message: str, left: int):
        super().__init__(message)
        self.left = left


@register
@dataclass(frozen=True)
class Attribute(Scorer):
    """ΔL of every training song when each reference is unlearned (sepclean.attribution.run)."""

    name = "attribute"
    needs_baseline = True
    targets: tuple[str, ...] | None = None
    mode: str = "exact"
    strength: float = 0.2
    alpha: float | None = None
    steps: int = 1
    damping: float = 0.0
    parameters: str | None = None
    segment: float | None = None
    scoring: str = "absolute"
    """absolute: mean ΔL over references (the paper); relative: ΔL over the song's own loss."""
    batch_size: int = setting(4, identity=False)
    shard: str = setting("0/1", identity=False)

    def __post_init__(self):
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, not {self.scoring!r}")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))

    def settings(self):
        from sepclean.attribution.run import Settings

        return Settings(mode=self.mode, strength=self.strength, alpha=self.alpha, steps=self.steps,
                        damping=self.damping, parameters=self.parameters, segment=self.segment,
                        batch_size=self.batch_size)

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.attribution.run import Run, Shard

        self.check(task)
        run = Run(task.baseline.toolkit, task.baseline.checkpoint, task.train, task.reference, workdir,
                  list(self.targets) if self.targets else None, self.settings(), task.device, task.progress)
        if not run.compute(Shard.parse(self.shard)):
            left = sum(len(v) for v in run.missing().values())
            raise ShardPending(f"{workdir}: shard {self.shard} done, {left} (unit, reference) pair(s) left to other "
                               "shards; the last shard to finish writes the scores", left)
        return ScoreTable.read(workdir if self.scoring == "absolute" else workdir / "relative")


@register
@dataclass(frozen=True)
class Loss(Scorer):
    """The baseline's own loss on each song, negated: songs the noisy model fits worst go first."""

    name = "loss"
    needs_baseline = True
    targets: tuple[str, ...] | None = None
    segment: float | None = None
    batch_size: int = setting(4, identity=False)

    def __post_init__(self):
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean import toolkit as toolkits
        from sepclean.attribution.engine import Unit, losses
        from sepclean.attribution.run import Settings, load_tracks, model_hash

        self.check(task)
        kit = toolkits.get(task.baseline.toolkit)
        settings = Settings(segment=self.segment, batch_size=self.batch_size)
        columns, hashes = {}, {}
        for unit in kit.units(list(self.targets) if self.targets else None):
            model = kit.load(task.baseline.checkpoint, unit, task.device).eval()
            hashes[unit] = model_hash(model)
            values = losses(Unit.of(model, lambda m, b, u=unit: kit.loss(u, m, b)),
                            load_tracks(kit, task.train, unit, settings)).numpy()
            for k, target in enumerate(kit.unit_targets(unit)):
                columns[target] = dict(zip(task.train.ids, (-values[:, k]).tolist()))
        meta = {"dataset": dataset_record(task.train),
                "manifests": {"train": task.train.hash, "reference": task.reference.hash},
                "toolkit": task.baseline.toolkit, "checkpoint": str(task.baseline.checkpoint), "models": hashes,
                "scoring": "negative baseline loss", "sepclean": sepclean.__version__}
        return ScoreTable.from_columns(self.name, task.train.ids, columns, meta)
