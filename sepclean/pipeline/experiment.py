"""One experiment: an architecture trained under one cleaning condition, evaluated on the test songs.

A condition is a control or a scoring method at a ratio and mode:

``dirty``           the whole noisy pool
``clean_twin``      the uncontaminated twin of every song (the upper bound; synthetic data)
``reference_only``  the trusted references alone
``<method>``        any registered scoring method (``fad``, ``mlp``, ``attribute``, ``loss``, the
                    ``oracle`` and ``random`` controls, ...): score the pool, keep ``ratio`` of it
                    (one set, or one per target), retrain. ``ratio`` is a fraction, ``auto``, or
                    ``OTHER@RATIO``: as many songs per list as method OTHER keeps at RATIO, e.g.
                    ``random`` at ``fad@auto`` is the random control at the size fad chose itself

A method's condition has an ``action`` (:mod:`sepclean.actions`): ``drop`` the (song, stem) pairs it
flags (the clean manifest's kept lists), ``weight`` every pair's loss by the clean posterior of the
``auto`` fit (ratio ``auto``), or ``repair`` the flagged pairs with pseudo-labels separated by
``repair.model`` (``reference``: the ``reference_only`` control's model; ``baseline``: the dirty
baseline; or a checkpoint), a consistency check deciding each, the rest falling back, or
``relabel`` them: permute a song's flagged labels among its stems where that model's separations
say they were swapped. ``oracle`` with ``repair`` repairs exactly the contaminated pairs: the
ceiling of repair with that model.

Any condition may train its model robustly (``robust:``, :mod:`sepclean.robust`): ``dirty`` with
loss truncation is robust training alone, the comparator every cleaning must beat; a method with
it is the two combined. The baseline that scores come from always trains plainly.

Identical cleaning across architectures: the scores, and so the kept songs, do not depend on the
architecture being retrained (attribution unlearns from ``scoring.baseline``'s dirty model,
whichever architecture the experiment retrains). Fair training: every condition of an architecture
trains for the same number of optimizer updates (``epochs`` x ``epoch_updates``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sepclean import toolkit as toolkits
from sepclean.clean_manifest import MODEL_ACTIONS
from sepclean.errors import PipelineError
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.pipeline.shards import Shards
from sepclean.robust import RobustLoss
from sepclean.toolkit import TrainResult, TrainSpec

if TYPE_CHECKING:
    from sepclean.actions import RepairSettings

logger = logging.getLogger(__name__)

CONTROLS = {"dirty": "train", "clean_twin": "train_clean", "reference_only": "reference"}
"""Conditions that train on a whole split, without scoring: condition -> split."""

MODES = {"unified": "unified", "per-target": "per-target", "per-stem": "per-target"}
"""Cleaning mode -> the clean manifest's mode. ``per-stem`` keeps the per-target lists too, and a
joint model (Demucs) draws each source from its own list (``TrainSpec.per_stem``) instead of
training on the songs kept for every target; per-target models (Open-Unmix) train as in ``per-target``."""


def overrides(items) -> dict:
    """``["hidden_size=128", "hdemucs.channels=16"]`` -> ``{"hidden_size": 128, "hdemucs.channels": 16}``."""
    parsed = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"override {item!r} is not KEY=VALUE")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


@dataclasses.dataclass
class Experiment:
    """The settings of one XP (the dora main's config, as plain values) and where it works."""

    cfg: dict
    store: ArtifactStore
    workspace: Path
    """Where toolkits keep their own runs (``TrainSpec.workspace``: Demucs' XP folders)."""
    device: str = "cpu"
    progress: bool = True

    def data(self) -> stages.Data:
        """The XP's dataset (made, or found made), said in one line: what it is, its songs per split, where."""
        data = self.cfg["data"]
        roots = {split: list(rs or []) for split, rs in (data.get("roots") or {}).items()}
        if any(roots.values()):
            found = stages.dataset_roots(self.store, roots, progress=self.progress)
            what = f"the roots of {', '.join(split for split, rs in roots.items() if rs)}"
        else:
            synth = dict(data["synth"])
            synth["sizes"] = {k: v for k, v in (synth.get("sizes") or {}).items() if v is not None}
            found = stages.synthetic_data(self.store, **synth, progress=self.progress)
            what = (f"synthetic {synth.get('preset')}, profile {synth.get('profile')}, severity {synth.get('severity')}, "
                    f"seed {synth.get('seed')}")
        counts = self.store.summary(found.folder).get("tracks") or {}
        sizes = ", ".join(f"{split} {counts[split]}" for split in stages.SPLITS if split in counts)
        logger.info(f"[data] {what}: {sizes} songs; manifests in {found.folder / 'manifests'}")
        return found

    def spec(self, arch: str, data: stages.Data, split: str, clean: Path | None = None,
             robust: RobustLoss | None = None) -> TrainSpec:
        settings = self.cfg["archs"].get(arch)
        if settings is None:
            raise PipelineError(f"no architecture {arch!r} in archs (known: {', '.join(self.cfg['archs'])})")
        extra = overrides(settings.get("overrides"))
        targets = settings.get("targets")
        per_stem = clean is not None and self.cfg.get("mode") == "per-stem" and toolkits.get(settings["toolkit"]).joint
        return TrainSpec(train=data.path(split), valid=data.path("valid"), clean=clean,
                         targets=tuple(targets) if targets else None, preset=settings.get("preset"),
                         overrides=extra, epochs=settings["epochs"], epoch_updates=settings.get("epoch_updates"),
                         seed=self.cfg["seed"], device=self.device, quiet=not self.progress, per_stem=per_stem,
                         robust=robust, workspace=self.workspace)

    def train(self, arch: str, data: stages.Data, split: str, clean: Path | None = None,
              robust: RobustLoss | None = None) -> TrainResult:
        toolkit = self.cfg["archs"][arch]["toolkit"]
        logger.info(f"[train] {arch} on {split}" + (f" kept by {clean}" if clean else "")
                    + (f", robust: {robust.label()}" if robust else ""))
        return stages.train(self.store, toolkit, self.spec(arch, data, split, clean, robust))

    def robust(self) -> RobustLoss | None:
        """The robust training of the XP's model (never of the baseline its scores come from)."""
        return RobustLoss.of(self.cfg.get("robust"))

    def scorer(self, method: str):
        return create_scorer(self.cfg, method)

    def shards(self) -> Shards:
        settings = dict(self.cfg.get("shards") or {})
        return Shards(**settings, slurm=dict(self.cfg.get("slurm") or {}))

    def run(self) -> dict:
        """Run (or resume, or read back) every stage; returns the XP's metrics."""
        cfg = self.cfg
        arch, method = cfg["arch"], cfg["method"]
        robust = self.robust()
        rounds = self.rounds()
        action, repair = self.action()
        data = self.data()
        scores = clean = None
        if method in CONTROLS:
            model = self.train(arch, data, CONTROLS[method], robust=robust)
        else:
            scores, clean = self.cleaning(data, method, cfg["ratio"], cfg["mode"], rounds)
            clean = self.act(data, scores, clean, action, repair)
            model = self.train(arch, data, "train", clean, robust)
        logger.info(f"[evaluate] {arch} on {len(data.manifest('test'))} test songs")
        targets = cfg["archs"][arch].get("targets")
        evaluation = stages.evaluate(self.store, cfg["archs"][arch]["toolkit"], model, data.manifest("test"),
                                     list(targets) if targets else None, self.device, cfg["evaluate"]["workers"],
                                     cfg["evaluate"]["sdr_only"], self.progress)
        return metrics(data, model, evaluation, scores, clean, self.store)


    def rounds(self) -> int:
        """Rounds of cleaning, checked before any work: a second round re-scores the pool with a model,
        so the method must score with one."""
        rounds = self.cfg.get("rounds")
        rounds = 1 if rounds is None else rounds
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise PipelineError(f"rounds must be a whole number >= 1; got {rounds!r}")
        method, ratio = self.cfg["method"], self.cfg.get("ratio")
        if rounds > 1 and method not in CONTROLS:
            scorer = self.scorer(matched_ratio(ratio)[0] if matched_ratio(ratio) else method)
            if not scorer.needs_baseline:
                raise PipelineError(f"rounds={rounds}: {scorer.name} scores without a model, so every round would "
                                    "score the same; rounds re-score with the model the round before trained "
                                    "(attribute, loss, refloss scoring=reducible|ratio, refsdr model=baseline, "
                                    "fusion of them)")
        return rounds

    def action(self) -> tuple[str, "RepairSettings | None"]:
        """The action and, for ``repair`` and ``relabel``, its settings, checked before any work (``check_action``)."""
        return check_action(self.cfg)

    def act(self, data: stages.Data, scores: Path, clean: Path, action: str, repair) -> Path:
        """The clean manifest the XP trains on: the filter's (drop), or the action's made from it."""
        if action == "weight":
            logger.info(f"[weight] every pair by the clean posterior of {self.cfg['method']}'s auto fit")
            return stages.weigh(self.store, scores, MODES[self.cfg["mode"]])
        if action in MODEL_ACTIONS:
            which = self.cfg["repair"]["model"]
            arch = self.cfg["repair"].get("arch") or self.cfg["scoring"]["baseline"]
            toolkit = self.cfg["archs"][arch]["toolkit"]
            if which == "reference":
                checkpoint = self.train(arch, data, CONTROLS["reference_only"]).checkpoint
            elif which == "baseline":
                checkpoint = self.baseline(data).checkpoint
            else:
                checkpoint = Path(which).expanduser().resolve()
            logger.info(f"[{action}] the flagged pairs, by the separations of the {which} model ({arch})")
            return stages.repair(self.store, data, clean, toolkit, checkpoint, repair, self.device, action)
        return clean

    def baseline(self, data: stages.Data, clean: Path | None = None):
        """The model a method scores with: the baseline architecture trained plainly on the pool, or on
        what ``clean`` keeps of it (a later round)."""
        from sepclean.scorers import Baseline

        base_arch = self.cfg["scoring"]["baseline"]
        model = self.train(base_arch, data, "train", clean)
        return Baseline(self.cfg["archs"][base_arch]["toolkit"], model.checkpoint)

    def cleaning(self, data: stages.Data, method: str, ratio, mode: str, rounds: int = 1) -> tuple[Path, Path]:
        """The scores of ``method`` on the pool and the clean manifest kept from them at ``ratio``.

        With ``rounds`` k > 1 (CCOM's filtering in rounds): round r scores the whole pool again with the
        baseline architecture retrained on what round r − 1 kept, and filters it at the same ratio;
        each round's model, scores and clean manifest are shared artifacts, so a rerun resumes after
        the last finished round. The last round's scores and clean manifest are returned."""
        if mode not in MODES:
            raise PipelineError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        matched = matched_ratio(ratio)
        if matched is not None:  # a control at the size another method (after its rounds) chose
            other, at = matched
            _, like = self.cleaning(data, other, at, mode, rounds)
            scores = self.score(data, self.scorer(method))
            logger.info(f"[filter] as many songs as {other} keeps at ratio {at}, {mode}")
            return scores, stages.match_scores(self.store, scores, like)
        clean = None
        for round_ in range(1, rounds + 1):
            scores = self.score(data, self.scorer(method), clean, f", round {round_} of {rounds}" if rounds > 1 else "")
            logger.info(f"[filter] ratio {ratio}, {mode}")
            clean = stages.filter_scores(self.store, scores, ratio, MODES[mode])
        return scores, clean

    def score(self, data: stages.Data, scorer, clean: Path | None = None, note: str = "") -> Path:
        """The scores table of ``scorer`` on the pool, with the baseline trained on what ``clean``
        keeps of it when the method scores with one."""
        if scorer.name == "fusion":
            scorer = self.fusion_of_tables(data, scorer, clean, note)
        baseline = self.baseline(data, clean) if scorer.needs_baseline else None
        logger.info(f"[score] {scorer.name}{note}")
        return stages.score(self.store, scorer, data, baseline, self.device, self.progress, self.shards())

    def fusion_of_tables(self, data: stages.Data, fusion, clean: Path | None, note: str):
        """``fusion`` with each component method scored first as the XP scores that method alone (its
        ``scoring.<method>`` settings under the component's own, its seed, the round's baseline), each
        table a shared artifact: the fusion of mlp and attribute reads the very tables of the mlp and
        attribute XPs of its seed, and fuses them by their content."""
        tables = []
        for component in fusion.methods:
            if isinstance(component, dict):
                settings = {k: v for k, v in component.items() if k != "method"}
                component = self.score(data, create_scorer(self.cfg, component["method"], **settings), clean,
                                       f"{note}, for fusion")
            tables.append(str(component))
        return dataclasses.replace(fusion, methods=tuple(tables))


def create_scorer(cfg: dict, method: str, **given):
    """The scoring method ``method`` with the XP's ``scoring.<method>`` settings (null: the method's
    own default) under ``given`` ones."""
    from sepclean.scorers import create, names, scorer_class

    if method not in names():
        raise PipelineError(f"no cleaning condition {method!r}: the controls are {', '.join(CONTROLS)}, "
                            f"the scoring methods {', '.join(names())}")
    settings = {k: v for k, v in dict((cfg.get("scoring") or {}).get(method) or {}).items() if v is not None}
    settings.update(given)
    fields = {f.name for f in dataclasses.fields(scorer_class(method))}
    if "seed" in fields and settings.get("seed") is None:
        settings["seed"] = cfg["seed"]  # a seed replicates the whole pipeline, scoring included
    if "targets" in fields and settings.get("targets") is None:  # what the baseline was trained for
        settings["targets"] = cfg["archs"][cfg["scoring"]["baseline"]].get("targets")
    return create(method, **settings)


def matched_ratio(ratio) -> tuple[str, float | str] | None:
    """``"fad@auto"`` -> ``("fad", "auto")``, ``"mlp@0.5"`` -> ``("mlp", 0.5)``; None for a plain ratio."""
    if not isinstance(ratio, str) or "@" not in ratio:
        return None
    other, _, at = ratio.partition("@")
    if other in CONTROLS or not other or "@" in at:
        raise PipelineError(f"ratio {ratio!r}: OTHER@RATIO names a scoring method and its ratio (a fraction or "
                            "auto), e.g. fad@auto")
    if at == "auto":
        return other, at
    try:
        return other, float(at)
    except ValueError:
        raise PipelineError(f"ratio {ratio!r}: {at!r} is neither a fraction nor auto") from None


def metrics(data: stages.Data, model: TrainResult, evaluation: dict, scores: Path | None,
            clean: Path | None = None, store: ArtifactStore | None = None) -> dict:
    """What the explorer tables: what the model trained on, what the scores found, its SDR; and
    where its artifacts are (``sepclean report`` reads the scores, the clean manifest and the data's
    ground truth from there): relative to ``store``'s root, so that a moved or copied store's
    report reads its own."""
    def where(path) -> str | None:
        if path is None:
            return None
        return store.record(path) if store is not None else str(Path(path).resolve())

    pool = data.manifest("train").ids
    trained = {unit: set(ids) for unit, ids in model.tracks.items()}
    out = {
        "kept": _mean(len(ids) for ids in trained.values()),
        "kept_per_unit": {unit: len(ids) for unit, ids in trained.items()},
        "best_epoch": model.best_epoch,
        "epochs": model.epochs,
        "converged": all(model.best_epoch[u] < model.epochs[u] for u in model.epochs),
        "sdr": {**evaluation["median"], "avg": evaluation["average"]},
        "artifacts": {"data": where(data.folder), "model": where(model.checkpoint), "scores": where(scores),
                      "clean": where(clean)},
    }
    if clean is not None:
        from sepclean.clean_manifest import CleanManifest

        manifest = CleanManifest.load(clean)
        if manifest.action in MODEL_ACTIONS:
            out[manifest.action] = manifest.extra[manifest.action]["counts"]
        elif manifest.action == "weight":
            values = [w for weights in manifest.weights.values() for w in weights.values()]
            out["weights"] = {"mean": _mean(values), "below_half": sum(w < 0.5 for w in values)}
    truth = (data.contamination or {}).get("tracks")
    if truth is not None:
        bad = {t for t in pool if truth.get(t, {}).get("contaminated")}
        out["removed"] = _mean(len([t for t in pool if t not in ids]) for ids in trained.values() if ids <= set(pool))
        out["removed_contaminated"] = _mean(len(bad - ids) for ids in trained.values() if ids <= set(pool))
        out["contaminated"] = len(bad)
    if scores is not None and data.contamination is not None:
        from sepclean.detection import report
        from sepclean.scores import ScoreTable

        found = report(ScoreTable.read(scores), data.contamination)
        out["auroc"] = found["overall"]
        out["auroc_per_target"] = found["target"]
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def check_action(cfg) -> tuple[str, "RepairSettings | None"]:
    """The action and, for ``repair`` and ``relabel``, their settings, checked before any work: an
    action other than drop needs a scoring method; weight, ratio auto (its weights are the auto fit's
    posterior); repair and relabel, a model. The XP runs it, and ``checks.check`` for every XP of a grid before any is launched."""
    from sepclean.actions import ActionError, RepairSettings
    from sepclean.clean_manifest import ACTIONS

    action = cfg.get("action") or "drop"
    if action not in ACTIONS:
        raise PipelineError(f"action must be one of {', '.join(ACTIONS)}; got {action!r}")
    if action == "drop":
        return action, None
    if cfg["method"] in CONTROLS:
        raise PipelineError(f"action={action} acts on the pairs a scoring method flags; {cfg['method']} scores "
                            "nothing (method=oracle action=repair repairs exactly the contaminated pairs)")
    if action == "weight":
        if cfg.get("ratio") != "auto":
            raise PipelineError(f"action=weight weighs every pair by the clean posterior of the ratio=auto fit: "
                                f"set ratio=auto (got ratio={cfg.get('ratio')!r})")
        return action, None
    settings = dict(cfg.get("repair") or {})
    model, arch = settings.pop("model", None), settings.pop("arch", None)
    if not model:
        raise PipelineError(f"action={action} needs a model: repair.model=reference (trained on the trusted "
                            "references), baseline (the dirty baseline) or a checkpoint path")
    arch = arch or cfg["scoring"]["baseline"]
    if arch not in cfg["archs"]:
        raise PipelineError(f"repair.arch={arch}: no such architecture (known: {', '.join(cfg['archs'])})")
    if model not in ("reference", "baseline") and not Path(model).expanduser().exists():
        raise PipelineError(f"repair.model={model}: no such checkpoint (or reference, baseline)")
    try:
        return action, RepairSettings.of(settings)
    except ActionError as e:
        raise PipelineError(str(e)) from None
