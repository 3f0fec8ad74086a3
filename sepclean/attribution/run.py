"""Attribution runs: the engine applied through a toolkit adapter, sharded over references (exact
mode) or over training songs (linear mode).

An output directory holds one run::

    OUT/run.json                     what the run is: toolkit, models' hashes, manifests' hashes,
                                     settings (its ``fingerprint`` must match for shards to mix), and
                                     ``split``: what its shards split, ``references`` or ``songs``
  exact mode (split by references; every file written atomically, so a crash never loses a piece):
    OUT/parts/<unit>/ref_<j>.npz     ΔL of every training track for reference j, one file each
    OUT/parts/<unit>/baseline.npy    L_i, the training tracks' losses before unlearning
  linear mode (split by songs):
    OUT/parts/<unit>/fisher_<i>of<K>.npz   shard i's partial sum (float64) of the squared per-song
                                     gradients over its songs, saved after each piece of songs;
                                     removed once the preconditioner is written
    OUT/parts/<unit>/preconditioner.npz    (F + λ·mean F)⁻¹, flattened: from the K partial sums, once
    OUT/parts/<unit>/references.npz  the step α/N (calibrated once), the own-loss rise, and the
                                     references' directions (F + λ)⁻¹g_j ((1 or targets) × M ×
                                     parameters, float32), computed once
    OUT/parts/<unit>/songs_<a>_<b>.npz  ΔL (songs a..b-1 × M × targets) and L_i of one piece of
                                     consecutive songs (``songs_per_piece`` of them)
                                     The first three carry their identity (the model's weights hash,
                                     the manifests' hashes, the settings they depend on): one made for
                                     another model or manifest is refused, naming what differs.
    OUT/parts/<unit>/norms.npz       self-influences gᵀ(F + λ)⁻¹g of the tracks and references, only
                                     when a scoring asks for them (``Run.norms``)
    OUT/scores.csv, OUT/meta.json    the scores table (method ``attribute``), once all parts exist
    OUT/loss/                        the scores table of the ``loss`` comparator (−L_i)
    OUT/delta_loss.npz               ``delta`` (N × M × targets), ``baseline`` (N × targets),
                                     ``train``/``reference``/``targets`` (the axes' labels),
                                     ``step`` (α/N per target); plain arrays, no pickle

Exact mode: ``--shard i/K`` takes references j with j mod K = i; every shard recomputes the (cheap)
baseline losses and Fisher, and the last one to finish in a directory, or ``merge``, writes the
outputs.

Linear mode: ``--shard i/K`` takes the i-th of K runs of consecutive pieces of songs, in two rounds.
Round 1: each shard sums its songs' squared gradients; the shard that completes the K partial sums
writes the preconditioner, the step and the references' directions, and stops there too. Round 2:
each shard computes its songs' ΔL, piece by piece. Had the completing shard gone on to its songs,
it would do both rounds' work in the first while the others sat waiting for it in the second
(1,000 songs, K = 2 on two cores: 1.29x faster than unsharded instead of about 2x). The pipeline
runs every shard twice (``Attribute.shard_rounds``); an unsharded run (K = 1) does it all at once.
Every shard reads only its own songs: memory stays flat in N.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
import zipfile
from dataclasses import dataclass, fields
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
    linear_block,
    linear_delta_losses,
    losses,
    own_rise,
    preconditioner,
    reference_directions,
    self_influence,
    squared_gradients,
)
from sepclean.field_docs import setting
from sepclean.files import atomic_write_stream, locked, read_json
from sepclean.manifest import Manifest
from sepclean.scores import UNIFIED, ScoreTable

FORMAT = "sepclean.attribution"
VERSION = 1
MODES = ("exact", "linear")
SPLITS = {"exact": "references", "linear": "songs"}
"""What a mode's shards split."""
SONGS_PER_PIECE = 16
"""Linear mode: songs per piece, the most a killed shard loses (and how often it saves its partial sum)."""
OUTPUTS = ("run.json", "delta_loss.npz", "relative", "loss")
"""What a finished run's folder holds for its users beside the paper's table (the layout above)."""


CALIBRATION_REFERENCES = 8
"""References (the first of the reference set) whose own-loss rise calibrates the step α."""


@dataclass(frozen=True)
class Settings:
    """How a run unlearns: the one declaration of these settings. The ``attribute`` scoring method
    inherits them, so its command line, its config and its docs read them from here."""

    mode: str = "exact"
    """exact: re-score every song after each unlearning step (the paper); linear: a first-order estimate,
    one gradient per song."""
    strength: float = 0.2
    """Relative rise of a reference's own loss that unlearning it causes; sets α."""
    alpha: float | None = None
    """The paper's α, used as given (overrides strength, which is then only reported)."""
    steps: int = 1
    """Unlearning steps per reference."""
    damping: float = 0.0
    """λ relative to the mean of the Fisher (0: the paper's F⁻¹)."""
    parameters: str | None = None
    """A regular expression: attribute only the parameters whose name matches (None: all)."""
    segment: float | None = None
    """Excerpt seconds (None: the toolkit's deterministic default; Open-Unmix: whole tracks)."""
    batch_size: int = setting(4, identity=False)
    """Examples per forward pass."""
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


def settings_record(settings: Settings) -> dict:
    """What a run records of its settings (in its fingerprint): ``settings`` may be an ``attribute``
    scorer, of which only the unlearning settings count. per_stem is recorded only when on and the
    calibration size always: runs made before either changed keep their fingerprint."""
    record = {f.name: getattr(settings, f.name) for f in fields(Settings)}
    if not record["per_stem"]:
        del record["per_stem"]
    return {**record, "calibration_references": CALIBRATION_REFERENCES}


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

    def songs(self, count: int, per_piece: int) -> list[tuple[int, int]]:
        """Linear mode: this shard's pieces ``(start, stop)`` of consecutive songs. The pieces are the
        same whatever K is (songs ``[b·per_piece, (b+1)·per_piece)``); shard i takes the i-th of K
        runs of them."""
        pieces = [(a, min(a + per_piece, count)) for a in range(0, count, per_piece)]
        return pieces[self.index * len(pieces) // self.count:(self.index + 1) * len(pieces) // self.count]


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


def _part(out: Path, unit: str, j: int) -> Path:
    return out / "parts" / unit / f"ref_{j:05d}.npz"


def _piece(out: Path, unit: str, start: int, stop: int) -> Path:
    return out / "parts" / unit / f"songs_{start:06d}_{stop:06d}.npz"


def _fisher_part(out: Path, unit: str, shard: Shard) -> Path:
    return out / "parts" / unit / f"fisher_{shard.index:04d}of{shard.count:04d}.npz"


_IDENTITY_LABELS = {"model": "model (weights hash)", "train": "training manifest (hash)",
                    "reference": "reference manifest (hash)", "tracks": "number of training songs"}


def _identity(value: dict) -> np.ndarray:
    """An identity as an npz entry: a JSON string, loadable without pickle."""
    return np.array(json.dumps(value, sort_keys=True))


def _checked(path: Path, expected: dict) -> dict[str, np.ndarray]:
    """The arrays of a shared linear-mode artifact, refused when its identity is not ``expected``
    (another model, manifest or setting), naming what differs."""
    if not path.is_file():
        raise AttributionError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
        held = json.loads(str(arrays.pop("identity")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise AttributionError(f"{path}: unreadable or not a sepclean attribution artifact ({e}); "
                               "remove it to compute it again") from None
    differs = [k for k in sorted(set(held) | set(expected)) if held.get(k) != expected.get(k)]
    if differs:
        def shown(value):
            return f"{value[:12]}…" if isinstance(value, str) and len(value) > 16 else repr(value)
        what = "; ".join(f"{_IDENTITY_LABELS.get(k, k)}: {shown(held.get(k))}, this run's {shown(expected.get(k))}"
                         for k in differs)
        raise AttributionError(f"{path}: a {held.get('kind', 'file')} made for another run ({what}): refusing it; "
                               "remove it to compute this run's own")
    return arrays


def _unflatten(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """A flat vector back into tensors shaped (and placed) as ``like``."""
    sizes = [p.numel() for p in like]
    if flat.numel() != sum(sizes):
        raise AttributionError(f"a flat vector of {flat.numel()} values for {sum(sizes)} parameters")
    return [chunk.view_as(p).to(p.device) for chunk, p in zip(flat.split(sizes), like)]


class Run:
    """One attribution run in ``out``; see the module docstring for what it writes."""

    def __init__(self, toolkit: str, checkpoint, train: Manifest, reference: Manifest, out,
                 targets: list[str] | None = None, settings: Settings = Settings(), device: str = "cpu",
                 progress: bool = True, songs_per_piece: int = SONGS_PER_PIECE):
        if not len(train) or not len(reference):
            raise AttributionError("empty manifest: attribution needs training tracks and reference tracks")
        self.kit = toolkits.get(toolkit)
        self.train, self.reference, self.out = train, reference, Path(out)
        self.settings, self.device, self.progress = settings, device, progress
        if songs_per_piece < 1:
            raise AttributionError(f"songs_per_piece must be at least 1, got {songs_per_piece}")
        self.songs_per_piece = songs_per_piece
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
            "settings": settings_record(settings),
        }
        digest = json.dumps({k: v for k, v in self.description.items() if k != "checkpoint"}, sort_keys=True)
        self.description["fingerprint"] = hashlib.sha256(digest.encode()).hexdigest()
        # Outside the fingerprint: how shards split the work does not change ΔL, and runs made before
        # it was recorded keep theirs. _claim and merge check it by name.
        self.description["split"] = SPLITS[settings.mode]

    def _claim(self) -> None:
        path = self.out / "run.json"
        if path.is_file():
            held = read_json(path, AttributionError, hint="; it was not written by sepclean (its writes are "
                             "atomic): remove the output directory to start again")
            if not isinstance(held, dict):
                raise AttributionError(f"{path}: not a run description (a JSON {type(held).__name__})")
            if held.get("fingerprint") != self.description["fingerprint"]:
                raise AttributionError(
                    f"{self.out} holds another attribution run (different models, manifests or settings); "
                    "use another output directory"
                )
            split = held.get("split", "references")
            if split != self.description["split"]:
                raise AttributionError(
                    f"{self.out} holds this run with its shards split by {split}, and this version splits "
                    f"{self.settings.mode} mode by {self.description['split']} (a linear run begun before linear "
                    "shards split the songs): use another output directory, or finish it with that version"
                )
            return
        atomic_write_stream(path, lambda f: f.write(json.dumps(self.description, indent=2).encode()))

    def missing(self, shard: Shard = Shard()) -> dict[str, list]:
        """Per unit, this shard's pieces not computed yet: reference indices (exact mode) or
        ``(start, stop)`` runs of songs (linear mode)."""
        if self.settings.mode == "linear":
            return {u: [p for p in shard.songs(len(self.train), self.songs_per_piece)
                        if not _piece(self.out, u, *p).is_file()] for u in self.units}
        return {u: [j for j in shard.references(len(self.reference)) if not _part(self.out, u, j).is_file()]
                for u in self.units}

    def compute(self, shard: Shard = Shard()) -> bool:
        """Compute this shard's missing references; write the outputs when none is missing. Returns
        whether the outputs were written."""
        self._claim()
        # cuDNN's RNN backward refuses eval mode; gradients here come from eval-mode models.
        with torch.backends.cudnn.flags(enabled=False):
            for unit, todo in self.missing(shard).items():
                if todo and self.settings.mode == "linear":
                    self._compute_songs(unit, todo, shard)
                elif todo:
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
                    if self.settings.mode == "linear":  # the run's own (made here if it has none yet)
                        if not self._preconditioner_ready(unit, engine_unit):
                            self._add_fisher_part(unit, engine_unit, Shard())
                        inverse = self._inverse(unit, engine_unit)
                    else:
                        inverse = self._fisher_inverse(unit, engine_unit, train)
                    per_track = [[self_influence(engine_unit, track, inverse, k,
                                                 f"training track {self.train.ids[i]!r}") for k in range(width)]
                                 for i, track in enumerate(train)]
                    refs = load_tracks(self.kit, self.reference, unit, self.settings)
                    per_stem = self.settings.per_stem and width > 1
                    per_ref = [[self_influence(engine_unit, ref, inverse, k if per_stem else None, self._name(j, unit))
                                for k in range(width if per_stem else 1)] for j, ref in enumerate(refs)]
                atomic_write_stream(path, lambda f: np.savez(f, train=np.array(per_track), reference=np.array(per_ref)))
            with np.load(path, allow_pickle=False) as saved:
                train_norm[:, column:column + width] = saved["train"]
                reference_norm[:, column:column + width] = saved["reference"]  # (M, 1) broadcasts
            column += width
        return train_norm, reference_norm

    def _prepare(self, unit: str, reference_indices: list[int]):
        s = self.settings
        engine_unit = self._engine_unit(unit)
        train = load_tracks(self.kit, self.train, unit, s)
        calibration = list(range(min(CALIBRATION_REFERENCES, len(self.reference))))
        wanted = sorted(set(reference_indices) | set(calibration))
        loaded = dict(zip(wanted, load_tracks(self.kit, self.reference.subset(
            [self.reference.ids[j] for j in wanted]), unit, s)))
        baseline = losses(engine_unit, train)
        inverse = self._fisher_inverse(unit, engine_unit, train)
        step, rise = self._calibrate(engine_unit, [loaded[j] for j in calibration],
                                     [self._name(j, unit) for j in calibration], inverse)
        return engine_unit, train, loaded, baseline, inverse, step, rise

    def _calibrate(self, engine_unit: Unit, references: list, names: list[str],
                   inverse: list[torch.Tensor]) -> tuple[float, float]:
        """The step α/N (from --alpha, or calibrated to --strength) and the median own-loss rise."""
        s = self.settings
        if s.alpha is not None:
            step = s.alpha / len(self.train)
            return step, float(np.median([own_rise(engine_unit, r, inverse, step, s.steps, n)
                                          for r, n in zip(references, names)]))
        return calibrate_step(engine_unit, references, inverse, s.strength, s.steps, names=names)

    def _name(self, j: int, unit: str) -> str:
        return f"reference {self.reference.ids[j]!r} ({unit})"

    def _compute_unit(self, unit: str, todo: list[int]) -> None:
        s = self.settings
        engine_unit, train, refs, baseline, inverse, step, rise = self._prepare(unit, todo)
        atomic_write_stream(self.out / "parts" / unit / "baseline.npy", lambda f: np.save(f, baseline.numpy()))
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
            atomic_write_stream(_part(self.out, unit, j), lambda f: np.savez(
                f, delta=delta.numpy(), step=step, rise=rise, reference=self.reference.ids[j]))

    # --- linear mode, split by songs -------------------------------------------------------------

    def _preconditioner_identity(self, unit: str) -> dict:
        s = self.settings
        return {"kind": "preconditioner", "unit": unit, "model": self.description["models"][unit],
                "train": self.train.hash, "tracks": len(self.train), "parameters": s.parameters,
                "segment": s.segment, "batch_size": s.batch_size, "damping": s.damping}

    def _references_identity(self, unit: str) -> dict:
        s = self.settings
        return {**self._preconditioner_identity(unit), "kind": "references", "reference": self.reference.hash,
                "strength": s.strength, "alpha": s.alpha, "steps": s.steps, "per_stem": s.per_stem,
                "calibration_references": CALIBRATION_REFERENCES}

    def _compute_songs(self, unit: str, todo: list[tuple[int, int]], shard: Shard) -> None:
        """Linear mode, one shard: its part of the preconditioner in round 1, its songs' ΔL piece by
        piece in round 2 (both at once when unsharded)."""
        engine_unit = self._engine_unit(unit)
        if not self._preconditioner_ready(unit, engine_unit):
            if not self._add_fisher_part(unit, engine_unit, shard):
                return  # other shards' partial sums are still missing
            if shard.count > 1:  # this shard completed them: the songs wait for round 2 (module docstring)
                self._references(unit, engine_unit)
                return
        directions, step, rise = self._references(unit, engine_unit)
        targets = len(self.kit.unit_targets(unit))
        bar = tqdm(total=sum(b - a for a, b in todo), desc=f"{unit}: song gradients", unit="song",
                   disable=not self.progress)
        for start, stop in todo:
            songs = self.train.subset(self.train.ids[start:stop])
            tracks = load_tracks(self.kit, songs, unit, self.settings)
            baseline = losses(engine_unit, tracks)
            delta = linear_block(engine_unit, tracks, directions, step, targets, bar,
                                 [f"training track {t!r} ({unit})" for t in songs.ids])
            atomic_write_stream(_piece(self.out, unit, start, stop), lambda f: np.savez(
                f, delta=delta.numpy(), baseline=baseline.cpu().numpy(), step=step, rise=rise,
                train=np.array(songs.ids)))
        bar.close()

    def _preconditioner_ready(self, unit: str, engine_unit: Unit) -> bool:
        """Whether the unit's preconditioner exists (written now if every partial sum is there)."""
        return (self.out / "parts" / unit / "preconditioner.npz").is_file() or self._assemble(unit, engine_unit)

    def _add_fisher_part(self, unit: str, engine_unit: Unit, shard: Shard) -> bool:
        """Add this shard's partial sum (resumed where a killed attempt stopped) and write the
        preconditioner if it was the last one missing. Returns whether the preconditioner exists."""
        path = _fisher_part(self.out, unit, shard)
        pieces = shard.songs(len(self.train), self.songs_per_piece)
        identity = {**self._preconditioner_identity(unit), "kind": "Fisher partial sum",
                    "shard": f"{shard.index}/{shard.count}", "pieces": len(pieces)}
        total, done = torch.zeros(sum(p.numel() for p in engine_unit.tensors), dtype=torch.float64), 0
        if path.is_file():
            held = _checked(path, identity)
            total, done = torch.from_numpy(held["sum"]), int(held["done"])
        bar = tqdm(total=sum(b - a for a, b in pieces[done:]), desc=f"{unit}: Fisher", unit="song",
                   disable=not self.progress, leave=False)
        for k, (start, stop) in enumerate(pieces[done:], done):
            songs = self.train.subset(self.train.ids[start:stop])
            part = squared_gradients(engine_unit, load_tracks(self.kit, songs, unit, self.settings), bar,
                                     [f"training track {t!r} ({unit})" for t in songs.ids])
            total += torch.cat([x.flatten() for x in part]).cpu()
            atomic_write_stream(path, lambda f: np.savez(f, sum=total.numpy(), done=k + 1, identity=_identity(identity)))
        bar.close()
        return self._assemble(unit, engine_unit)

    def _assemble(self, unit: str, engine_unit: Unit) -> bool:
        """Write the preconditioner from a complete set of partial sums, if there is one (under the
        unit's lock: one shard writes it). Returns whether the preconditioner exists."""
        folder = self.out / "parts" / unit
        path = folder / "preconditioner.npz"
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder):
            if path.is_file():
                return True
            counts = sorted({int(m[2]) for m in (re.fullmatch(r"fisher_(\d+)of(\d+)\.npz", p.name)
                                                 for p in folder.glob("fisher_*of*.npz")) if m})
            total = next((t for t in (self._partial_sums(unit, count) for count in counts) if t is not None), None)
            if total is None:
                return False
            fisher = [(chunk / len(self.train)).to(p.dtype)  # as diagonal_fisher: the mean, in the model's dtype
                      for chunk, p in zip(total.split([p.numel() for p in engine_unit.tensors]), engine_unit.tensors)]
            inverse = torch.cat([x.flatten() for x in preconditioner(fisher, self.settings.damping)])
            atomic_write_stream(path, lambda f: np.savez(f, inverse=inverse.numpy(),
                                                  identity=_identity(self._preconditioner_identity(unit))))
            for part in folder.glob("fisher_*of*.npz"):
                part.unlink()
        return True

    def _partial_sums(self, unit: str, count: int) -> torch.Tensor | None:
        """The sum of the K = ``count`` shards' partial sums, or None while one is missing or unfinished."""
        total = None
        for i in range(count):
            shard = Shard(i, count)
            pieces = len(shard.songs(len(self.train), self.songs_per_piece))
            if not pieces:  # more shards than pieces of songs: this one has none to sum
                continue
            path = _fisher_part(self.out, unit, shard)
            if not path.is_file():
                return None
            held = _checked(path, {**self._preconditioner_identity(unit), "kind": "Fisher partial sum",
                                   "shard": f"{i}/{count}", "pieces": pieces})
            if int(held["done"]) < pieces:
                return None
            part = torch.from_numpy(held["sum"])
            total = part if total is None else total + part
        return total

    def _inverse(self, unit: str, engine_unit: Unit) -> list[torch.Tensor]:
        """The unit's preconditioner (F + λ·mean F)⁻¹, per parameter, on the model's device."""
        held = _checked(self.out / "parts" / unit / "preconditioner.npz", self._preconditioner_identity(unit))
        return _unflatten(torch.from_numpy(held["inverse"]), engine_unit.tensors)

    def _references(self, unit: str, engine_unit: Unit) -> tuple[torch.Tensor, float, float]:
        """The references' directions (F + λ)⁻¹g_j, the step and the own-loss rise, computed by the
        first shard that needs them (under the unit's lock) and read by the others."""
        path = self.out / "parts" / unit / "references.npz"
        identity = self._references_identity(unit)
        if not path.is_file():
            with locked(path.parent):
                if not path.is_file():
                    s = self.settings
                    inverse = self._inverse(unit, engine_unit)
                    refs = load_tracks(self.kit, self.reference, unit, s)
                    names = [self._name(j, unit) for j in range(len(refs))]
                    calibration = min(CALIBRATION_REFERENCES, len(refs))
                    step, rise = self._calibrate(engine_unit, refs[:calibration], names[:calibration], inverse)
                    targets = len(self.kit.unit_targets(unit))
                    per_stem = s.per_stem and targets > 1
                    bar = tqdm(total=len(refs) * (targets if per_stem else 1), desc=f"{unit}: reference gradients",
                               disable=not self.progress, leave=False)
                    directions = reference_directions(engine_unit, refs, inverse, targets, per_stem, bar, names)
                    bar.close()
                    atomic_write_stream(path, lambda f: np.savez(f, directions=directions.cpu().numpy(), step=step,
                                                          rise=rise, identity=_identity(identity)))
        held = _checked(path, identity)
        device = engine_unit.tensors[0].device
        return torch.from_numpy(held["directions"]).to(device), float(held["step"]), float(held["rise"])


def holds_work(directory) -> bool:
    """Whether ``directory`` holds a run's work (its description and ``parts/``), not only its outputs
    (copied from a run made elsewhere, as ``sepclean score`` copies a run made in the artifact store)."""
    directory = Path(directory)
    return (directory / "run.json").is_file() and (directory / "parts").is_dir()


def _read_run(directory: Path) -> dict:
    path = directory / "run.json"
    if not path.is_file():
        raise AttributionError(f"{directory}: no attribution run here (no run.json)")
    run = read_json(path, AttributionError)
    if not isinstance(run, dict) or run.get("format") != FORMAT or "fingerprint" not in run:
        raise AttributionError(f"{path}: not a sepclean attribution run")
    return run


def merge(out, others) -> ScoreTable:
    """Gather the parts of shards computed in other directories into ``out`` and write the outputs
    (returns the paper's table, as :func:`finalize`).

    ``out`` may be one of the shards' directories or a new one (it then takes their run.json).
    Refuses shards of a different run (another model, manifest or settings).
    """
    out = Path(out)
    shards = {Path(other): _read_run(Path(other)) for other in others}
    run = _read_run(out) if (out / "run.json").exists() else next(iter(shards.values()))
    split = run.get("split", "references")
    for other, other_run in shards.items():
        if other_run.get("split", "references") != split:
            raise AttributionError(f"{other}: its shards split the {other_run.get('split', 'references')}, {out}'s "
                                   f"split the {split}: pieces of the two cannot be merged into one run")
        if other_run["fingerprint"] != run["fingerprint"]:
            raise AttributionError(f"{other} holds a different attribution run than {out}: refusing to merge")
    if not (out / "run.json").exists():
        atomic_write_stream(out / "run.json", lambda f: f.write(json.dumps(run, indent=2).encode()))
    for other in shards:
        for part in sorted((other / "parts").glob("*/*")):
            target = out / "parts" / part.parent.name / part.name
            if not part.name.startswith(".") and not target.exists():  # not locks, not unfinished writes
                data = part.read_bytes()
                atomic_write_stream(target, lambda f: f.write(data))
    return finalize(out)


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
        if run.get("split", "references") == "songs":
            unit_steps, rises[unit] = _gather_songs(out, unit, train, delta[:, :, column:column + width],
                                                    baseline[:, column:column + width])
        else:
            baseline[:, column:column + width] = np.load(out / "parts" / unit / "baseline.npy")
            unit_steps = []
            for j in range(len(reference)):
                path = _part(out, unit, j)
                if not path.is_file():
                    raise AttributionError(f"{out}: reference {reference[j]!r} ({unit}) not computed yet; "
                                           "run its shard")
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
    atomic_write_stream(out / "delta_loss.npz", lambda f: np.savez(
        f, delta=delta, baseline=baseline, train=np.array(train), reference=np.array(reference),
        targets=np.array(targets), step=np.array([steps[t] for t in targets])))
    return absolute


def _gather_songs(out: Path, unit: str, train: list[str], delta: np.ndarray,
                  baseline: np.ndarray) -> tuple[list[float], float]:
    """Fill one unit's columns of ΔL and L_i from its pieces of songs; returns the pieces' steps and
    the own-loss rise. A song no piece holds is an error naming it."""
    covered = np.zeros(len(train), dtype=bool)
    steps, rise = [], math.nan
    for path in sorted((out / "parts" / unit).glob("songs_*_*.npz")):
        match = re.fullmatch(r"songs_(\d+)_(\d+)\.npz", path.name)
        if not match:
            continue
        start, stop = int(match[1]), int(match[2])
        with np.load(path, allow_pickle=False) as piece:
            if piece["train"].tolist() != train[start:stop]:
                raise AttributionError(f"{path}: holds other songs than this run's {start} to {stop - 1}: "
                                       "not a piece of this run")
            delta[start:stop] = piece["delta"]
            baseline[start:stop] = piece["baseline"]
            steps.append(float(piece["step"]))
            rise = float(piece["rise"])
        covered[start:stop] = True
    if not covered.all():
        left = [train[i] for i in np.flatnonzero(~covered)]
        raise AttributionError(f"{out}: {len(left)} training song(s) of {unit!r} not computed yet (e.g. "
                               f"{', '.join(map(repr, left[:3]))}); run their shards")
    return steps, rise


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
