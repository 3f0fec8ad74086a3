"""Methods that read a model trained on the trusted references only (the "reference model").

Such a model never saw the noisy pool, so it cannot have memorised a contaminated song: how well it
explains a training song is a blind score that uses the same trusted set as attribution.

- ``refloss``: the reference model's training loss on each (song, target), through the toolkit's own
  dataset and loss. ``scoring``: ``loss`` scores −L_ref (RHO-LOSS's irreducible loss, Mindermann
  et al. 2022: what a clean model cannot fit is noise); ``reducible`` scores L_base − L_ref, the
  noisy baseline's loss minus the reference model's (RHO-LOSS's reducible loss: a contaminated song
  the baseline memorised has a low L_base and a high L_ref); ``ratio`` scores log L_base − log L_ref,
  the same without the loudness of the song (both losses grow with it).
- ``refsdr``: each training mixture separated by the reference model, each stem scored by its SDR
  against its own label (BSSEval v4 through sepclean.evaluate, as the MDX23 teams filtered stems,
  around 10 dB); the song's score is the mean over its stems. A stem whose SDR is undefined (a
  silent label) gets its target's median, listed in the metadata. ``model=baseline`` separates with
  the noisy baseline instead (iSeparate's criterion: a model trained on the whole pool); in rounds
  that is the model the round before trained (``rounds``), as CCOM filtered stems round by round.

The reference model is trained here, through the toolkit adapter's ``train`` (its own procedure),
on the references only, into the work folder (resumed when interrupted): ``preset``, ``epochs``,
``epoch_updates``, ``overrides`` and ``seed`` are its TrainSpec. The references are also its
validation set (the task has no other clean split), so its best epoch is the one that fits them
best. ``checkpoint`` instead names a reference-only model trained elsewhere (e.g. with a held-out
validation split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sepclean
from sepclean.scorers.attribution import model_losses
from sepclean.scorers.base import Scorer, ScorerError, ScoringTask, register
from sepclean.field_docs import setting
from sepclean.manifest import Manifest
from sepclean.scores import ScoreTable
from sepclean.toolkit import TrainSpec

REFLOSS_SCORINGS = ("loss", "reducible", "ratio")


@dataclass(frozen=True)
class ReferenceModelScorer(Scorer):
    toolkit: str = "openunmix"
    """The toolkit of the reference model (openunmix, demucs)."""
    checkpoint: str | None = None
    """A model trained on the reference songs only; None: trained here."""
    targets: tuple[str, ...] | None = None
    """Targets of the reference model (None: the toolkit's default)."""
    preset: str | None = None
    """The toolkit's named defaults for training it (Open-Unmix ``--preset``, Demucs ``variant``)."""
    epochs: int | None = None
    """Training epochs of the reference model (None: the toolkit's)."""
    epoch_updates: int | None = None
    """Optimizer updates per epoch (None: one pass over the examples)."""
    overrides: dict | None = None
    """Toolkit settings on top of the preset (a mapping; on the command line, YAML or JSON)."""
    seed: int = 0
    """Seed of the reference model's training."""

    def __post_init__(self):
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))

    def reference_model(self, task: ScoringTask, workdir: Path) -> Path:
        """The reference-only model: ``checkpoint``, or trained through the toolkit into ``workdir``."""
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        from sepclean import toolkit as toolkits

        workdir = Path(workdir)
        references = workdir / "reference.jsonl"
        if not references.is_file():
            task.reference.write(references)
        elif Manifest.load(references).hash != task.reference.hash:
            raise ScorerError(f"{workdir} holds a reference model of other references: use another work folder")
        spec = TrainSpec(train=references, valid=references, targets=self.targets, preset=self.preset,
                         overrides=dict(self.overrides or {}), epochs=self.epochs, epoch_updates=self.epoch_updates,
                         seed=self.seed, device=task.device, quiet=not task.progress)
        return toolkits.get(self.toolkit).train(spec, workdir / "reference_model").checkpoint

    def meta(self, task: ScoringTask, model: Path, **extra) -> dict:
        return {**self.record(task), "toolkit": self.toolkit,
                "reference_model": str(model), **extra, "sepclean": sepclean.__version__}


@register
@dataclass(frozen=True)
class RefLoss(ReferenceModelScorer):
    """The reference model's loss on each training song, alone or against the noisy baseline's."""

    name = "refloss"
    scoring: str = "loss"
    """loss: −L_ref, the reference model's loss; reducible: L_base − L_ref; ratio: log L_base − log L_ref
    (reducible and ratio need the noisy baseline)."""
    segment: float | None = None
    """Excerpt seconds (None: the toolkit's deterministic one)."""
    batch_size: int = setting(4, identity=False)
    """Examples per forward pass."""

    def __post_init__(self):
        super().__post_init__()
        if self.scoring not in REFLOSS_SCORINGS:
            raise ValueError(f"scoring must be one of {REFLOSS_SCORINGS}, not {self.scoring!r}")

    @property
    def needs_baseline(self) -> bool:
        return self.scoring != "loss"

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        self.check(task)
        model = self.reference_model(task, workdir)
        reference, hashes = model_losses(self.toolkit, model, task, self.targets, self.segment,
                                    self.batch_size)
        extra = {"reference_models": hashes, "scoring": self.scoring}
        if self.scoring == "loss":
            columns = {t: -values for t, values in reference.items()}
        else:
            if task.baseline.toolkit != self.toolkit:
                raise ScorerError(f"the baseline is a {task.baseline.toolkit} model, the reference model {self.toolkit}")
            base, base_hashes = model_losses(self.toolkit, task.baseline.checkpoint, task, self.targets, self.segment,
                                        self.batch_size)
            extra.update(checkpoint=str(task.baseline.checkpoint), models=base_hashes)
            floor = 1e-12
            columns = {t: base[t] - values if self.scoring == "reducible"
                       else np.log(np.maximum(base[t], floor)) - np.log(np.maximum(values, floor))
                       for t, values in reference.items()}
        ids = task.train.ids
        return ScoreTable.from_columns(self.name, ids, {t: dict(zip(ids, v.tolist())) for t, v in columns.items()},
                                       self.meta(task, model, **extra))


@register
@dataclass(frozen=True)
class RefSdr(ReferenceModelScorer):
    """SDR of each training stem as the reference model separates it from the song's mixture."""

    name = "refsdr"
    model: str = "reference"
    """The separating model: ``reference`` (trained on the references only, or ``checkpoint``) or
    ``baseline`` (the noisy baseline the task gives: in rounds, the round's model)."""
    workers: int | None = setting(None, identity=False)
    """Processes computing museval SDR (None: the evaluation's default)."""

    def __post_init__(self):
        super().__post_init__()
        if self.model not in ("reference", "baseline"):
            raise ValueError(f"model must be reference or baseline, not {self.model!r}")
        if self.model == "baseline" and self.checkpoint is not None:
            raise ValueError("model=baseline separates with the task's baseline: a checkpoint names a reference model")

    @property
    def needs_baseline(self) -> bool:
        return self.model == "baseline"

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.evaluate import evaluate

        self.check(task)
        if self.model == "baseline":
            if task.baseline.toolkit != self.toolkit:
                raise ScorerError(f"the baseline is a {task.baseline.toolkit} model; refsdr separates with "
                                  f"toolkit={self.toolkit}")
            model = Path(task.baseline.checkpoint)
        else:
            model = self.reference_model(task, workdir)
        evaluation = evaluate(self.toolkit, model, task.train, Path(workdir) / "separated",
                              list(self.targets) if self.targets else None, self.workers, task.device, task.progress,
                              sdr_only=True)
        ids = task.train.ids
        columns, undefined = {}, {}
        for target in evaluation.targets:
            values = np.array([evaluation.tracks[t][target] for t in ids], dtype=np.float64)
            missing = ~np.isfinite(values)
            if missing.all():
                raise ScorerError(f"refsdr: the SDR of every {target} stem is undefined")
            values[missing] = float(np.median(values[~missing]))
            undefined[target] = [t for t, m in zip(ids, missing) if m]
            columns[target] = dict(zip(ids, values.tolist()))
        meta = self.meta(task, model, metric="median BSSEval v4 SDR over 1 s frames (dB)", undefined_sdr=undefined,
                         average_sdr=evaluation.average if math.isfinite(evaluation.average) else None)
        if self.model == "baseline":  # the model is the baseline, named as refloss names it
            meta["checkpoint"] = meta.pop("reference_model")
        return ScoreTable.from_columns(self.name, ids, columns, meta)
