"""The Demucs adapter: one joint model for all sources, demucs' Wavset, loss and apply_model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from demucs.apply import apply_model
from demucs.audio import convert_audio

from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest
from sepclean.robust import RobustLoss
from sepclean.toolkit import Toolkit, ToolkitError, TrainResult, TrainSpec

from . import data
from .models import load_model

UNIT = "all"
"""Demucs trains one model producing every source: the adapter's single unit."""


XP_RECORD = "SEPCLEAN_DEMUCS_XP_RECORD"
"""Environment variable: a file where the plugin's dora main records its XP (signature, folder)."""

TRACKS = "tracks.json"
"""Written into the XP folder: the track ids the model trains on (after the clean manifest), or
with ``dset.per_stem`` source -> the track ids that source comes from."""


def demucs_argv(spec: TrainSpec, overrides: dict) -> list[str]:
    """The plugin's dora main overrides for ``spec``."""
    if spec.targets and sorted(spec.targets) != sorted(DemucsToolkit.sources):
        raise ToolkitError(f"demucs trains one model for all of {', '.join(DemucsToolkit.sources)}; "
                           f"targets {list(spec.targets)} cannot be trained alone")
    settings = {"dset.manifest": str(spec.train), "dset.valid_manifest": str(spec.valid),
                "dset.clean_manifest": str(spec.clean) if spec.clean else None, "seed": spec.seed,
                "epochs": spec.epochs, "epoch_updates": spec.epoch_updates, "test.enabled": False,
                "dset.per_stem": True if spec.per_stem else None, **robust_overrides(spec.robust), **overrides}
    # variant is a config group: its value is a name, not a string literal.
    argv = [f"variant={spec.preset}"] if spec.preset else []
    return argv + [f"{key}={json.dumps(value)}" for key, value in settings.items() if value is not None]


def robust_overrides(robust: RobustLoss | None) -> dict:
    """The plugin's ``robust.*`` config keys for ``TrainSpec.robust`` (only those set: XPs trained
    plainly keep their signatures)."""
    if robust is None:
        return {}
    return {f"robust.{key}": value for key, value in robust.to_dict().items() if value}


def source_losses(estimate: torch.Tensor, reference: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """The solver's reconstruction loss per example and source, ``(batch, sources)``: what
    ``demucs.solver.Solver`` averages over the batch and weights over sources."""
    if kind == "l1":
        error = (estimate - reference).abs()
    elif kind == "mse":
        error = (estimate - reference).square()
    else:
        raise ToolkitError(f"unknown demucs loss {kind!r} (demucs trains with l1 or mse)")
    return error.flatten(2).mean(-1)


def _error_line(log: Path, start: int) -> str | None:
    """The last ``... error: ...`` line the plugin's dora main wrote into ``log`` after byte ``start``
    (``exit_on_user_error``: an error the user can act on), so the XP's error names the problem."""
    with open(log, "rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    return next((line for line in reversed(lines) if ": error: " in line), None)


@dataclass
class DemucsToolkit(Toolkit):
    """Demucs (HDemucs, HTDemucs) for sepclean.

    Dataset settings default to demucs' training defaults; sources are in demucs' order, with
    sepclean's names (the same words).
    """

    name = "demucs"
    joint = True

    sources: tuple[str, ...] = ("drums", "bass", "other", "vocals")
    segment: float = 11.0
    shift: float = 1.0
    samplerate: int = 44100
    channels: int = 2
    normalize: bool = True
    # apply_model's random time shifts: 0 keeps separation deterministic. demucs evaluates with
    # one, which is a single random offset of the input, not an average.
    shifts: int = 0
    overlap: float = 0.25

    def train(self, spec: TrainSpec, output: Path) -> TrainResult:
        """One XP of the plugin's dora main (``dora -P sepclean_plugins.demucs run ...``) in a fresh
        process, so it is an ordinary demucs XP: its folder, ``checkpoint.th`` (running it again
        resumes it), history and ``dora info`` are demucs' own. ``spec.preset`` is a variant and
        ``spec.overrides`` are config keys (``{"hdemucs.channels": 16, "dora.dir": "/xps"}``; dora.dir
        defaults to ``spec.workspace``, then ``$SEPCLEAN_DEMUCS_DIR`` or ``./outputs``; its XPs are the
        folders of ``<dora.dir>/xps``, ``SEPCLEAN_DEMUCS_DIR=<dora.dir> dora -P sepclean_plugins.demucs
        info -f SIG`` shows one). The solver's own
        test on ``dset.musdb`` is off (``test.enabled=false``): ``sepclean evaluate`` scores the
        model. ``output`` receives ``xp.json`` (the XP's signature and folder) and, when
        ``spec.quiet``, ``train.log``."""
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        overrides = dict(spec.overrides)
        if spec.workspace is not None:
            overrides.setdefault("dora.dir", str(spec.workspace))
        env = dict(os.environ)
        # dora fixes a main's XP root when the main is imported: it travels by environment.
        if "dora.dir" in overrides:
            env["SEPCLEAN_DEMUCS_DIR"] = str(Path(overrides.pop("dora.dir")).absolute())
        env[XP_RECORD] = str(output / "xp.json")
        if spec.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # demucs' solver moves the model to CUDA whenever it can
        command = [sys.executable, "-m", "dora", "-P", "sepclean_plugins.demucs", "run", *demucs_argv(spec, overrides)]
        with open(output / "train.log", "a") as log:
            start = log.tell()
            stream = log if spec.quiet else None
            status = subprocess.run(command, env=env, stdout=stream, stderr=stream).returncode
        where = f" (log: {output / 'train.log'})" if spec.quiet else ""
        if status:
            reason = _error_line(output / "train.log", start) if spec.quiet else None
            raise ToolkitError(f"demucs training failed with exit status {status}"
                               + (f": {reason}" if reason else "") + where)
        folder = Path(json.loads((output / "xp.json").read_text())["folder"])
        history = json.loads((folder / "history.json").read_text())
        metric = spec.overrides.get("test.metric", "loss")
        values = [epoch["valid"][metric] for epoch in history]
        best = (max if metric.startswith("nsdr") else min)(range(len(values)), key=values.__getitem__)
        tracks = json.loads((folder / TRACKS).read_text())
        if not isinstance(tracks, dict):  # per-stem training records each source's tracks
            tracks = {UNIT: tracks}
        return TrainResult(folder, tracks, {UNIT: best + 1}, {UNIT: len(history)})

    def _check_unit(self, unit: str) -> None:
        if unit != UNIT:
            raise ToolkitError(f"demucs trains one joint model, unit {UNIT!r}; got {unit!r}")

    def units(self, targets: list[str] | None = None) -> list[str]:
        unknown = sorted(set(targets or ()) - set(self.sources))
        if unknown:
            raise ToolkitError(f"demucs separates {', '.join(self.sources)}; not {', '.join(unknown)}")
        return [UNIT]

    def unit_targets(self, unit: str) -> list[str]:
        self._check_unit(unit)
        return list(self.sources)

    def dataset(
        self,
        manifest: Manifest,
        unit: str,
        *,
        clean: CleanManifest | None = None,
        deterministic: bool = False,
        segment: float | None = None,
        allow_other_dataset: bool = False,
    ) -> torch.utils.data.Dataset:
        """Demucs' training dataset: examples are the sources ``(sources, channels, frames)``.

        demucs augments batches in its solver, not in its dataset, so every example is always
        the same excerpt; ``deterministic`` makes excerpts not overlap (shift = segment).
        An HTDemucs model takes excerpts no longer than those it was trained on.
        """
        self._check_unit(unit)
        if clean is not None:
            manifest = data.keep(manifest, clean, list(self.sources), allow_other_dataset)
        segment = segment or self.segment
        return data.wavset(
            manifest, list(self.sources), segment=segment, shift=segment if deterministic else self.shift,
            samplerate=self.samplerate, channels=self.channels, normalize=self.normalize,
        )

    def dataset_tracks(self, dataset) -> list[str]:
        return data.track_ids(dataset)

    def examples(self, dataset, track_id: str) -> list[int]:
        return data.example_indices(dataset, track_id)

    def load(self, checkpoint: str | Path, unit: str, device: str | torch.device = "cpu") -> torch.nn.Module:
        self._check_unit(unit)
        model = load_model(checkpoint)
        missing = sorted(set(self.sources) - set(model.sources))
        if missing:
            raise ToolkitError(f"{checkpoint}: the model does not separate {', '.join(missing)}")
        return model.to(device).eval()

    def loss(self, unit: str, model: torch.nn.Module, batch) -> torch.Tensor:
        """The solver's per-source loss on training examples: the model separates their sum."""
        self._check_unit(unit)
        sources = batch.to(next(model.parameters()).device)
        estimate = model(sources.sum(dim=1))
        estimate = estimate[:, [model.sources.index(s) for s in self.sources]]
        kind = getattr(model, "training_args", {}).get("optim", {}).get("loss", "l1")
        return source_losses(estimate, sources, kind)

    def separate(
        self, models: dict[str, torch.nn.Module], mixture: np.ndarray, sample_rate: int
    ) -> dict[str, np.ndarray]:
        """Separate as demucs does: normalise by the mono mixture, ``apply_model``, undo."""
        model = models[UNIT]
        device = next(model.parameters()).device
        mix = torch.as_tensor(np.asarray(mixture, dtype=np.float32), device=device)
        wav = convert_audio(mix, sample_rate, model.samplerate, model.audio_channels)
        mono = wav.mean(0)
        mean, std = mono.mean(), mono.std() + 1e-8
        with torch.no_grad():
            estimates = apply_model(model, ((wav - mean) / std)[None], shifts=self.shifts, overlap=self.overlap)[0]
        estimates = convert_audio(estimates * std + mean, model.samplerate, sample_rate, mix.shape[0])
        frames = mix.shape[-1]
        estimates = torch.nn.functional.pad(estimates[..., :frames], (0, max(0, frames - estimates.shape[-1])))
        return {source: estimates[i].cpu().numpy() for i, source in enumerate(model.sources)}
