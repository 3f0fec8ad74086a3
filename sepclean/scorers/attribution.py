"""Methods that read a baseline trained on the noisy set: unlearning attribution (the paper's
flagship) and the ``loss`` comparator (the baseline's own loss on each song, as MDX23 teams filtered)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sepclean
from sepclean.attribution.run import Settings
from sepclean.attribution.scoring import NEEDS_NORMS, REFERENCES, SCORINGS, UNIFIED
from sepclean.field_docs import setting
from sepclean.scorers.base import Scorer, ScorerError, ScoringTask, register
from sepclean.scores import ScoreTable

SCORE_SETTINGS = ("scoring", "references", "unified")
"""Settings that only change how ΔL becomes scores: runs that differ only in them share one ΔL."""


class ShardPending(ScorerError):
    """This shard's pieces are done (or, in linear mode, its part of the preconditioner, while other
    shards' parts are missing); others are not, so there are no scores yet."""

    def __init__(self, message: str, left: int):
        super().__init__(message)
        self.left = left


@register
@dataclass(frozen=True)
class Attribute(Scorer, Settings):
    """ΔL of every training song when each reference is unlearned (sepclean.attribution.run), turned
    into scores by sepclean.attribution.scoring; the defaults are the paper's mean ΔL."""

    # How to unlearn (mode, strength, ...) is the engine's ``Settings``, inherited: declared once.

    name = "attribute"
    needs_baseline = True
    shardable = True
    targets: tuple[str, ...] | None = None
    """Targets to attribute (None: those the baseline holds a model for)."""
    scoring: str = "absolute"
    """absolute: ΔL (the paper); relative: over the song's own loss; gradnorm: over the square root of
    its self-influence (RelatIF); cosine: over both self-influences."""
    references: str = "mean"
    """mean: mean over references (the paper); rank: mean of each reference's ranking of the songs."""
    unified: str = "mean"
    """The per-song score: mean of the targets' scores (the paper), their mean rank, or the worst rank."""
    checkpoints: tuple[int, ...] | None = None
    """None: unlearn from the baseline (its best epoch). Epochs: unlearn from each of the weights saved
    along its training (``<checkpoint>/epochs/e<epoch:04d>``, Open-Unmix's ``--save-every``) and
    pool every (checkpoint, reference) pair as one more reference, as TracIn sums over checkpoints."""
    shard: str = setting("0/1", identity=False)
    """i/K: exact mode computes the references j with j mod K = i, linear mode the i-th of K pieces of
    the training songs (in one shared work folder, or gathered by ``--merge``)."""

    def __post_init__(self):
        super().__post_init__()
        for name, choices in (("scoring", SCORINGS), ("references", REFERENCES), ("unified", UNIFIED)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
        if self.checkpoints is not None:
            object.__setattr__(self, "checkpoints", tuple(int(e) for e in self.checkpoints))
            if not self.checkpoints:
                raise ValueError("checkpoints: give at least one epoch, or None for the baseline itself")

    @property
    def shard_rounds(self) -> int:
        """How many times a sharded stage runs every shard: linear mode's shards first sum their part
        of the shared preconditioner, then (run again) compute their songs' ΔL."""
        return 2 if self.mode == "linear" else 1

    def run_config(self) -> dict:
        """What determines the ΔL array: ``config()`` less the settings that only read it."""
        return {k: v for k, v in self.config().items() if k not in SCORE_SETTINGS}

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.attribution.run import Run, Shard

        self.check(task)
        workdir = Path(workdir)
        checkpoints = ([task.baseline.checkpoint] if self.checkpoints is None
                       else [epoch_checkpoint(task.baseline.checkpoint, e) for e in self.checkpoints])
        runs = [(checkpoint, workdir / run) for checkpoint, run in zip(checkpoints, self._runs())]
        left = 0
        finished = []
        for checkpoint, folder in runs:
            run = Run(task.baseline.toolkit, checkpoint, task.train, task.reference, folder,
                      list(self.targets) if self.targets else None, self, task.device, task.progress)
            if run.compute(Shard.parse(self.shard)):
                finished.append((run, folder))
            else:
                left += sum(len(v) for v in run.missing().values())
        if left and self.mode == "linear":
            raise ShardPending(f"{workdir}: shard {self.shard} done, {left} (unit, piece of songs) pair(s) left; "
                               "a shard that ran before every shard had summed its part of the preconditioner "
                               "computes its songs when run again; the last shard to finish writes the scores", left)
        if left:
            raise ShardPending(f"{workdir}: shard {self.shard} done, {left} (unit, reference) pair(s) left to other "
                               "shards; the last shard to finish writes the scores", left)
        norms = [run.norms() if self.scoring in NEEDS_NORMS else (None, None) for run, _ in finished]
        table = delta_table(self.name, [folder for _, folder in finished], self.scoring, self.references,
                            self.unified, norms)
        if self.checkpoints is not None:
            table.metadata["checkpoints"] = [str(checkpoint) for checkpoint, _ in runs]
        return table

    def _runs(self) -> list[Path]:
        """The run folders of a work folder, relative to it: itself, or one per epoch unlearned from."""
        return [Path()] if self.checkpoints is None else [Path(f"e{e:04d}") for e in self.checkpoints]

    def outputs(self, workdir: Path) -> list[Path]:
        """Each run's description, ΔL arrays, ``relative`` and ``loss`` tables
        (``sepclean.attribution.run``)."""
        from sepclean.attribution.run import OUTPUTS

        return [run / name for run in self._runs() for name in OUTPUTS]

    def begun_in(self, folder: Path) -> bool:
        """Whether ``folder`` holds the work of an attribution run of these epochs (not only the outputs
        ``sepclean score`` copies from the store)."""
        from sepclean.attribution.run import holds_work

        return any(holds_work(Path(folder) / run) for run in self._runs())

    def merge(self, workdir: Path, others: list[Path]) -> ScoreTable:
        """The shards computed in ``others`` gathered into ``workdir``: the paper's table (mean ΔL over
        references), which is what the run's own outputs hold."""
        from sepclean.attribution.run import merge

        changed = [name for name in ("checkpoints", *SCORE_SETTINGS) if getattr(self, name) != getattr(Attribute, name)]
        if changed:
            raise ScorerError(f"--merge gathers the shards of one run and writes the paper's scores; "
                              f"{', '.join(changed)} read the merged ΔL: run `sepclean score attribute` with them "
                              f"again in {workdir} once merged (nothing is computed again)")
        return merge(Path(workdir), [Path(other) for other in others])


def epoch_checkpoint(checkpoint, epoch: int) -> Path:
    """The weights a baseline's training kept at ``epoch``: ``<checkpoint>/epochs/e<epoch:04d>``."""
    folder = Path(checkpoint) / "epochs" / f"e{epoch:04d}"
    if not folder.is_dir():
        raise ScorerError(f"{folder}: no weights of epoch {epoch} were kept (train the baseline with "
                          "--save-every K, K dividing the epochs asked for)")
    return folder


def delta_table(method: str, workdirs: list[Path], scoring: str, references: str, unified: str,
                norms: list[tuple] | None = None) -> ScoreTable:
    """The scores table of finished attribution runs (their ``delta_loss.npz`` and ``meta.json``),
    scored as sepclean.attribution.scoring says; several runs (checkpoints) pool their references,
    each normalised by its own losses and self-influences."""
    import numpy as np

    from sepclean.attribution import scoring as rules

    normalised, train, targets = [], None, None
    for k, workdir in enumerate(workdirs):
        with np.load(Path(workdir) / "delta_loss.npz", allow_pickle=False) as saved:
            delta, baseline = saved["delta"], saved["baseline"]
            if train is not None and (saved["train"].tolist() != train or saved["targets"].tolist() != targets):
                raise ScorerError(f"{workdir}: another run's songs or targets than {workdirs[0]}")
            train, targets = saved["train"].tolist(), saved["targets"].tolist()
        train_norm, reference_norm = norms[k] if norms else (None, None)
        normalised.append(rules.normalise(delta, baseline, scoring, train_norm, reference_norm))
    per_target = rules.over_references(np.concatenate(normalised, axis=1), references)
    per_song = rules.unified(per_target, unified)
    meta = ScoreTable.read(workdirs[0]).metadata
    meta.update(scoring=scoring, references=references, unified=unified)
    columns = {t: dict(zip(train, per_target[:, k].tolist())) for k, t in enumerate(targets)}
    return ScoreTable.from_columns(method, train, columns, meta, dict(zip(train, per_song.tolist())))


@register
@dataclass(frozen=True)
class Loss(Scorer):
    """The baseline's own loss on each song, negated: songs the noisy model fits worst go first."""

    name = "loss"
    needs_baseline = True
    targets: tuple[str, ...] | None = None
    """Targets to score (None: those the baseline holds a model for)."""
    segment: float | None = None
    """Excerpt seconds (None: the toolkit's deterministic one)."""
    batch_size: int = setting(4, identity=False)
    """Examples per forward pass."""

    def __post_init__(self):
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        self.check(task)
        values, hashes = model_losses(task.baseline.toolkit, task.baseline.checkpoint, task, self.targets,
                                      self.segment, self.batch_size)
        columns = {target: dict(zip(task.train.ids, (-v).tolist())) for target, v in values.items()}
        meta = {**self.record(task),
                "toolkit": task.baseline.toolkit, "checkpoint": str(task.baseline.checkpoint), "models": hashes,
                "scoring": "negative baseline loss", "sepclean": sepclean.__version__}
        return ScoreTable.from_columns(self.name, task.train.ids, columns, meta)


def model_losses(toolkit: str, checkpoint, task: ScoringTask, targets=None, segment=None, batch_size: int = 4):
    """The toolkit's training loss of a model on every training song, through its own dataset:
    ``({target: array over task.train}, {unit: model weight hash})``."""
    from sepclean import toolkit as toolkits
    from sepclean.attribution.engine import Unit, losses
    from sepclean.attribution.run import load_tracks, model_hash

    kit = toolkits.get(toolkit)
    settings = Settings(segment=segment, batch_size=batch_size)
    columns, hashes = {}, {}
    for unit in kit.units(list(targets) if targets else None):
        model = kit.load(checkpoint, unit, task.device).eval()
        hashes[unit] = model_hash(model)
        values = losses(Unit.of(model, lambda m, b, u=unit: kit.loss(u, m, b)),
                        load_tracks(kit, task.train, unit, settings)).numpy()
        for k, target in enumerate(kit.unit_targets(unit)):
            columns[target] = values[:, k].astype("float64")
    return columns, hashes
