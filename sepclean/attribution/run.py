"""Attribution runs: the engine applied through a toolkit adapter, sharded over references.

An output directory holds one run::

    OUT/run.json                     what the run is: toolkit, models' hashes, manifests' hashes,
                                     settings (its ``fingerprint`` must match for shards to mix)
    OUT/parts/<unit>/ref_<j>.npz     ΔL of every training track for reference j (one file each,
                                     written atomically: a crash never loses a finished reference)
    OUT/parts/<unit>/baseline.npy    L_i, the training tracks' losses before unlearning
    OUT/parts/<unit>/norms.npz       self-influences gᵀ(F + λ)⁻¹g of the tracks and references, only
                                     when a scoring asks for them (``Run.norms``)
    OUT/scores.csv, OUT/meta.json    the scores table (method ``attribute``), once all parts exist
    OUT/loss/                        the scores table of the ``loss`` comparator (−L_i)
    OUT/delta_loss.npz               ``delta`` (N × M × targets), ``baseline`` (N × targets),
                                     ``train``/``reference``/``targets`` (the axes' labels),
                                     ``step`` (α/N per target); plain arrays, no pickle

``--shard i/K`` takes references j with j mod K = i; every shard recomputes the (cheap) baseline
losses and Fisher, and the last one to finish in a directory, or ``merge``, writes the outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.utils.data import default_collate
from tqdm import tqdm

import sepclean
from sepclean import toolkit as toolkits
from sepclean.attribution.engine import (
    AttributionError,
    Unit,
    calibrate_step,
    delta_losses,
    diagonal_fisher,
    linear_delta_losses,
    losses,
    own_rise,
    preconditioner,
    self_influence,
)
from sepclean.errors import writing
from sepclean.manifest import Manifest
from sepclean.scores import UNIFIED, ScoreTable

FORMAT = "sepclean.attribution"
VERSION = 1
MODES = ("exact", "linear")


@dataclass(frozen=True)
class Settings:
    mode: str = "exact"
    strength: float = 0.2
    """Relative rise of a reference's own loss that unlearning it should cause; sets α."""
    alpha: float | None = None
    """The paper's α, used as given when set (then ``strength`` is only reported)."""
    steps: int = 1
    damping: float = 0.0
    """λ relative to the mean of F; 0 is the paper's F⁻¹."""
    parameters: str | None = None
    """Regular expression on parameter names: only those are attributed (all when None)."""
    segment: float | None = None
    """Excerpt length in seconds; None: the toolkit's deterministic default (Open-Unmix: whole tracks)."""
    batch_size: int = 4
    calibration_references: int = 8
    per_stem: bool = False
    """Joint models (Demucs): unlearn the reference's loss of target t alone and read target t's ΔL
    only, once per target (T times the cost). Models of one target (Open-Unmix) always are."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise AttributionError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "linear" and self.steps != 1:
            raise AttributionError("linear mode is a first-order estimate of a single step: use --steps 1")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise AttributionError(f"--alpha must be a positive number, got {self.alpha}")
        if self.alpha is None and not (math.isfinite(self.strength) and self.strength > 0):
            raise AttributionError(f"--strength must be a positive number, got {self.strength}")
        if self.steps < 1:
            raise AttributionError(f"--steps must be at least 1, got {self.steps}")
        if not (math.isfinite(self.damping) and self.damping >= 0):
            raise AttributionError(f"--damping must be a number >= 0, got {self.damping}")
        if self.segment is not None and not (math.isfinite(self.segment) and self.segment > 0):
            raise AttributionError(f"--segment must be a positive number of seconds, got {self.segment}")
        if self.batch_size < 1:
            raise AttributionError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise AttributionError(f"--shard must be i/K with 0 <= i < K, got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def references(self, count: int) -> list[int]:
        return [j for j in range(count) if j % self.count == self.index]


def model_hash(model: torch.nn.Module) -> str:
    """Content hash of a model's weights: the same for the same checkpoint wherever it lives."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def overlapping(train: Manifest, reference: Manifest) -> list[str]:
    """Reference tracks whose audio (or id) is also in the training set."""
    train_hashes = {t.hash for t in train}
    return [r.id for r in reference if r.hash in train_hashes or r.id in train]


def load_tracks(kit: toolkits.Toolkit, manifest: Manifest, unit: str, settings: Settings) -> list[list]:
    """Every track's deterministic examples from the toolkit's own dataset, batched: one list each."""
    dataset = kit.dataset(manifest, unit, deterministic=True, segment=settings.segment)
    held = set(kit.dataset_tracks(dataset))
    left_out = [t for t in manifest.ids if t not in held]
    if left_out:
        raise AttributionError(
            f"the {kit.name} dataset for {unit!r} left out {len(left_out)} track(s), e.g. {left_out[:5]} "
            "(shorter than the excerpt?): every track must be scored; lower --segment"
        )
    tracks = []
    for track_id in manifest.ids:
        examples = [dataset[i] for i in kit.examples(dataset, track_id)]
        tracks.append([default_collate(examples[k:k + settings.batch_size])
                       for k in range(0, len(examples), settings.batch_size)])
    return tracks


def _atomic_save(path: Path, save) -> None:
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            save(f)
        tmp.replace(path)


def _part(out: Path, unit: str, j: int) -> Path:
    return out / "parts" / unit / f"ref_{j:05d}.npz"


class Run:
    """One attribution run in ``out``; see the module docstring for what it writes."""

    def __init__(self, toolkit: str, checkpoint, train: Manifest, reference: Manifest, out,
                 targets: list[str] | None = None, settings: Settings = Settings(), device: str = "cpu",
                 progress: bool = True):
        if not len(train) or not len(reference):
            raise AttributionError("empty manifest: attribution needs training tracks and reference tracks")
        self.kit = toolkits.get(toolkit)
        self.train, self.reference, self.out = train, reference, Path(out)
        self.settings, self.device, self.progress = settings, device, progress
        self.units = self.kit.units(targets) if targets else self.kit.trained_units(checkpoint)
        self.models = {u: self.kit.load(checkpoint, u, device).eval() for u in self.units}
        self.targets = [t for u in self.units for t in self.kit.unit_targets(u)]
        self.overlap = overlapping(train, reference)
        if self.overlap:
            warnings.warn(f"{len(self.overlap)} reference track(s) are also training tracks: {self.overlap}",
                          stacklevel=2)
        self.description = {
            "format": FORMAT,
            "version": VERSION,
            "toolkit": toolkit,
            "checkpoint": str(checkpoint),
            "models": {u: model_hash(m) for u, m in self.models.items()},
            "units": {u: self.kit.unit_targets(u) for u in self.units},
            "targets": self.targets,
            "manifests": {"train": train.hash, "reference": reference.hash},
            "train": train.ids,
            "reference": reference.ids,
            # per_stem recorded only when on: runs made before it existed keep their fingerprint.
            "settings": {k: v for k, v in asdict(settings).items() if k != "per_stem" or v},
        }
        digest = json.dumps({k: v for k, v in self.description.items() if k != "checkpoint"}, sort_keys=True)
        self.description["fingerprint"] = hashlib.sha256(digest.encode()).hexdigest()

    def _claim(self) -> None:
        path = self.out / "run.json"
        if path.is_file():
            try:
                held = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise AttributionError(f"{path}: not a readable run description ({e}); it was not written by "
                                       "sepclean (its writes are atomic): remove the output directory to start "
                                       "again") from None
            if not isinstance(held, dict):
                raise AttributionError(f"{path}: not a run description (a JSON {type(held).__name__})")
            if held.get("fingerprint") != self.description["fingerprint"]:
                raise AttributionError(
                    f"{self.out} holds another attribution run (different models, manifests or settings); "
                    "use another output directory"
                )
            return
        _atomic_save(path, lambda f: f.write(json.dumps(self.description, indent=2).encode()))

    def missing(self, shard: Shard = Shard()) -> dict[str, list[int]]:
        return {u: [j for j in shard.references(len(self.reference)) if not _part(self.out, u, j).is_file()]
                for u in self.units}

    def compute(self, shard: Shard = Shard()) -> bool:
        """Compute this shard's missing references; write the outputs when none is missing. Returns
        whether the outputs were written."""
        self._claim()
        # cuDNN's RNN backward refuses eval mode; gradients here come from eval-mode models.
        with torch.backends.cudnn.flags(enabled=False):
            for unit, todo in self.missing(shard).items():
                if todo:
                    self._compute_unit(unit, todo)
        if any(self.missing().values()):
            return False
        finalize(self.out)
        return True

    def _engine_unit(self, unit: str) -> Unit:
        select = re.compile(self.settings.parameters).search if self.settings.parameters else None
        return Unit.of(self.models[unit], lambda model, batch: self.kit.loss(unit, model, batch), select)

    def _fisher_inverse(self, unit: str, engine_unit: Unit, train) -> list[torch.Tensor]:
        bar = tqdm(total=len(train), desc=f"{unit}: Fisher", unit="track", disable=not self.progress, leave=False)
        inverse = preconditioner(diagonal_fisher(engine_unit, train, bar), self.settings.damping)
        bar.close()
        return inverse

    def norms(self) -> tuple[np.ndarray, np.ndarray]:
        """Self-influences s = gᵀ(F + λ)⁻¹g: of every training track per target (N × targets, the
        target's own gradient) and of every reference (M × targets, the gradient unlearning
        ascends: the joint one, or each target's with ``per_stem``). Computed once per unit, on demand (one more Fisher pass and N + M gradients)."""
        self._claim()
        train_norm = np.empty((len(self.train), len(self.targets)))
        reference_norm = np.empty((len(self.reference), len(self.targets)))
        column = 0
        for unit in self.units:
            width = len(self.kit.unit_targets(unit))
            path = self.out / "parts" / unit / "norms.npz"
            if not path.is_file():
                with torch.backends.cudnn.flags(enabled=False):
                    engine_unit = self._engine_unit(unit)
                    train = load_tracks(self.kit, self.train, unit, self.settings)
                    inverse = self._fisher_inverse(unit, engine_unit, train)
                    per_track = [[self_influence(engine_unit, track, inverse, k,
                                                 f"training track {self.train.ids[i]!r}") for k in range(width)]
                                 for i, track in enumerate(train)]
                    refs = load_tracks(self.kit, self.reference, unit, self.settings)
                    per_stem = self.settings.per_stem and width > 1
                    per_ref = [[self_influence(engine_unit, ref, inverse, k if per_stem else None, self._name(j, unit))
                                for k in range(width if per_stem else 1)] for j, ref in enumerate(refs)]
                _atomic_save(path, lambda f: np.savez(f, train=np.array(per_track), reference=np.array(per_ref)))
            with np.load(path, allow_pickle=False) as saved:
                train_norm[:, column:column + width] = saved["train"]
                reference_norm[:, column:column + width] = saved["reference"]  # (M, 1) broadcasts
            column += width
        return train_norm, reference_norm

    def _prepare(self, unit: str, reference_indices: list[int]):
        s = self.settings
        engine_unit = self._engine_unit(unit)
        train = load_tracks(self.kit, self.train, unit, s)
        calibration = list(range(min(s.calibration_references, len(self.reference))))
        wanted = sorted(set(reference_indices) | set(calibration))
        loaded = dict(zip(wanted, load_tracks(self.kit, self.reference.subset(
            [self.reference.ids[j] for j in wanted]), unit, s)))
        baseline = losses(engine_unit, train)
        inverse = self._fisher_inverse(unit, engine_unit, train)
        names = [self._name(j, unit) for j in calibration]
        if s.alpha is not None:
            step = s.alpha / len(train)
            rise = float(np.median([own_rise(engine_unit, loaded[j], inverse, step, s.steps, n)
                                    for j, n in zip(calibration, names)]))
        else:
            step, rise = calibrate_step(engine_unit, [loaded[j] for j in calibration], inverse, s.strength, s.steps,
                                        names=names)
        return engine_unit, train, loaded, baseline, inverse, step, rise

    def _name(self, j: int, unit: str) -> str:
        return f"reference {self.reference.ids[j]!r} ({unit})"

    def _compute_unit(self, unit: str, todo: list[int]) -> None:
        s = self.settings
        engine_unit, train, refs, baseline, inverse, step, rise = self._prepare(unit, todo)
        _atomic_save(self.out / "parts" / unit / "baseline.npy", lambda f: np.save(f, baseline.numpy()))
        targets = len(self.kit.unit_targets(unit))
        per_stem = s.per_stem and targets > 1
        if s.mode == "linear":
            bar = tqdm(total=len(todo) * (targets if per_stem else 1) + len(train), desc=f"{unit}: gradients",
                       disable=not self.progress)
            deltas = linear_delta_losses(engine_unit, train, [refs[j] for j in todo], inverse, step, targets, bar,
                                         per_stem)
            bar.close()
            results = {j: deltas[:, k] for k, j in enumerate(todo)}
        else:
            results = None
        for k, j in enumerate(tqdm(todo, desc=f"{unit}: unlearning", unit="ref", disable=not self.progress)):
            name = self._name(j, unit)
            if results:
                delta = results[j]
            elif per_stem:  # target t's column of the run that unlearns target t only
                delta = torch.stack([delta_losses(engine_unit, train, baseline, refs[j], inverse, step, s.steps,
                                                  f"{name}, {self.kit.unit_targets(unit)[t]}", target=t)[:, t]
                                     for t in range(targets)], dim=1)
            else:
                delta = delta_losses(engine_unit, train, baseline, refs[j], inverse, step, s.steps, name)
            _atomic_save(_part(self.out, unit, j), lambda f: np.savez(
                f, delta=delta.numpy(), step=step, rise=rise, reference=self.reference.ids[j]))


def _read_run(directory: Path) -> dict:
    path = directory / "run.json"
    if not path.is_file():
        raise AttributionError(f"{directory}: no attribution run here (no run.json)")
    try:
        run = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AttributionError(f"{path}: unreadable or corrupt ({e})") from None
    if not isinstance(run, dict) or run.get("format") != FORMAT or "fingerprint" not in run:
        raise AttributionError(f"{path}: not a sepclean attribution run")
    return run


def merge(out, others) -> None:
    """Gather the parts of shards computed in other directories into ``out`` and write the outputs.

    ``out`` may be one of the shards' directories or a new one (it then takes their run.json).
    Refuses shards of a different run (another model, manifest or settings).
    """
    out = Path(out)
    shards = {Path(other): _read_run(Path(other)) for other in others}
    run = _read_run(out) if (out / "run.json").exists() else next(iter(shards.values()))
    for other, other_run in shards.items():
        if other_run["fingerprint"] != run["fingerprint"]:
            raise AttributionError(f"{other} holds a different attribution run than {out}: refusing to merge")
    if not (out / "run.json").exists():
        _atomic_save(out / "run.json", lambda f: f.write(json.dumps(run, indent=2).encode()))
    for other in shards:
        for part in sorted((other / "parts").glob("*/*")):
            target = out / "parts" / part.parent.name / part.name
            if not target.exists():
                data = part.read_bytes()
                _atomic_save(target, lambda f: f.write(data))
    finalize(out)


def finalize(out) -> ScoreTable:
    """Assemble the parts into ΔL (N × M × targets) and write the scores tables and arrays."""
    out = Path(out)
    run = _read_run(out)
    train, reference, targets = run["train"], run["reference"], run["targets"]
    delta = np.empty((len(train), len(reference), len(targets)))
    baseline = np.empty((len(train), len(targets)))
    steps, rises = {}, {}
    column = 0
    for unit, unit_targets in run["units"].items():
        width = len(unit_targets)
        baseline[:, column:column + width] = np.load(out / "parts" / unit / "baseline.npy")
        unit_steps = []
        for j in range(len(reference)):
            path = _part(out, unit, j)
            if not path.is_file():
                raise AttributionError(f"{out}: reference {reference[j]!r} ({unit}) not computed yet; run its shard")
            with np.load(path, allow_pickle=False) as part:
                delta[:, j, column:column + width] = part["delta"]
                unit_steps.append(float(part["step"]))
                rises[unit] = float(part["rise"])
        if max(unit_steps) > min(unit_steps) * (1 + 1e-6):
            raise AttributionError(f"{out}: shards of {unit!r} used different step sizes: not one run")
        for t in unit_targets:
            steps[t] = unit_steps[0]
        column += width

    settings = run["settings"]
    meta = {
        "dataset": {"hash": run["manifests"]["train"], "tracks": len(train)},
        "manifests": run["manifests"],
        "toolkit": run["toolkit"],
        "checkpoint": run["checkpoint"],
        "models": run["models"],
        "settings": settings,
        "step": steps,
        "alpha": {t: s * len(train) for t, s in steps.items()},
        "own_loss_rise": rises,
        "fingerprint": run["fingerprint"],
        "sepclean": sepclean.__version__,
    }
    absolute = _table("attribute", delta.mean(1), train, targets, {**meta, "scoring": "absolute"})
    relative = _table("attribute", (delta / np.maximum(baseline[:, None, :], 1e-12)).mean(1), train, targets,
                      {**meta, "scoring": "relative"})
    absolute.write(out)
    relative.write(out / "relative")
    _table("loss", -baseline, train, targets, {**meta, "scoring": "negative baseline loss"}).write(out / "loss")
    _atomic_save(out / "delta_loss.npz", lambda f: np.savez(
        f, delta=delta, baseline=baseline, train=np.array(train), reference=np.array(reference),
        targets=np.array(targets), step=np.array([steps[t] for t in targets])))
    return absolute


def _table(method: str, per_target: np.ndarray, tracks: list[str], targets: list[str], meta: dict) -> ScoreTable:
    scores = {}
    for i, track in enumerate(tracks):
        row = {t: float(per_target[i, k]) for k, t in enumerate(targets)}
        row[UNIFIED] = float(per_target[i].mean())
        scores[track] = row
    return ScoreTable(method, scores, meta)


def compare_modes(run: Run, references: int = 4) -> dict[str, float]:
    """Spearman correlation of linear against exact ΔL on the first ``references`` references, per unit."""
    result = {}
    with torch.backends.cudnn.flags(enabled=False):
        for unit in run.units:
            chosen = list(range(min(references, len(run.reference))))
            engine_unit, train, refs, baseline, inverse, step, _ = run._prepare(unit, chosen)
            exact = torch.stack([delta_losses(engine_unit, train, baseline, refs[j], inverse, step) for j in chosen], 1)
            linear = linear_delta_losses(engine_unit, train, [refs[j] for j in chosen], inverse, step,
                                         len(run.kit.unit_targets(unit)))
            result[unit] = float(spearmanr(exact.flatten().numpy(), linear.flatten().numpy()).statistic)
    return result
