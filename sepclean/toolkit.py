"""What sepclean needs from a separation toolkit, and how it finds one.

The core never imports a toolkit. It talks to an adapter: a ``Toolkit`` subclass registered under
the ``sepclean.toolkits`` entry-point group (see pyproject.toml), so a third toolkit is added by
installing a package, without touching the core. An adapter is small: the toolkit already has the
model, the loss and the dataset classes, and the adapter reuses them.

Vocabulary:

unit
    One trainable model. Open-Unmix trains one unit per target (unit name = target name); Demucs
    trains one joint unit for all its sources. ``unit_targets(unit)`` says which targets a unit
    produces, in the order of the loss vector ``loss`` returns.
example
    One item of the toolkit's own dataset object, exactly as its dataloader would yield it
    (before batching).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import torch

from sepclean.clean_manifest import CleanManifest
from sepclean.errors import SepcleanError
from sepclean.manifest import Manifest
from sepclean.robust import RobustLoss

ENTRY_POINT_GROUP = "sepclean.toolkits"


class ToolkitError(SepcleanError, ValueError):
    """A problem a user can fix: wrong checkpoint, wrong target, unusable manifest."""


@dataclass(frozen=True)
class TrainSpec:
    """One training run, in terms every toolkit understands.

    Comparisons between cleaning methods are fair only when every condition gets the same number of
    optimizer updates: ``epoch_updates`` fixes the updates of an epoch whatever the number of kept
    tracks (examples are drawn evenly from the kept tracks), so ``epochs`` x ``epoch_updates`` is
    the same for every condition. None keeps the toolkit's own epoch (one pass over the examples).
    """

    train: Path
    """Dataset manifest of the training tracks."""
    valid: Path
    """Dataset manifest of the validation tracks (best-epoch selection, early stopping)."""
    clean: Path | None = None
    """Clean manifest: train only on the tracks it keeps."""
    targets: tuple[str, ...] | None = None
    preset: str | None = None
    """The toolkit's named small-machine defaults (Open-Unmix ``--preset``, Demucs ``variant``)."""
    overrides: dict = field(default_factory=dict)
    """Toolkit-specific settings on top of the preset (Open-Unmix options, Demucs config keys)."""
    epochs: int | None = None
    epoch_updates: int | None = None
    seed: int = 0
    device: str | None = None
    """None: CUDA when available."""
    quiet: bool = False
    per_stem: bool = False
    """Joint models (Demucs): each source from the tracks a per-target clean manifest keeps for it,
    instead of the tracks kept for every target. Per-target models (Open-Unmix) always train so."""
    robust: RobustLoss | None = None
    """Robust training (loss truncation, loss masking: ``sepclean.robust``); None trains plainly."""
    workspace: Path | None = None
    """Where a toolkit keeps its own runs, when it has any beside the model (Demucs: dora's XP
    folders); None: the toolkit's default. Not part of what the model is."""


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    """What ``Toolkit.load`` takes."""
    tracks: dict[str, list[str]]
    """unit -> the track ids it really trained on (after the clean manifest); for a joint model
    trained ``per_stem``, source -> the track ids that source came from."""
    best_epoch: dict[str, int]
    epochs: dict[str, int]
    """unit -> epochs trained."""


class Toolkit(abc.ABC):
    name: str
    joint: bool
    """True when one model separates every target (Demucs); False for one model per target."""

    @abc.abstractmethod
    def train(self, spec: TrainSpec, output: Path) -> TrainResult:
        """Train every unit of ``spec.targets`` into ``output`` with the toolkit's own procedure.

        Running it again on the same ``output`` resumes an interrupted training (and returns at
        once when it is finished); an ``output`` holding a run of other settings is refused.
        """

    @abc.abstractmethod
    def units(self, targets: list[str] | None = None) -> list[str]:
        """The units that produce ``targets`` (all of the toolkit's default targets when None)."""

    @abc.abstractmethod
    def unit_targets(self, unit: str) -> list[str]:
        """Targets a unit produces, in the order of ``loss``'s output."""

    @abc.abstractmethod
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
        """The toolkit's own dataset class over the manifest's tracks, for one unit.

        ``clean`` keeps only its tracks (per-target lists are reduced for joint units, saying what
        was dropped). ``deterministic``: fixed excerpts, no augmentation, no random track mixing,
        so the same index always yields the same example.
        """

    @abc.abstractmethod
    def dataset_tracks(self, dataset) -> list[str]:
        """Track ids held by a dataset object built by ``dataset``, read off the object itself."""

    @abc.abstractmethod
    def examples(self, dataset, track_id: str) -> list[int]:
        """Indices of ``dataset`` whose examples come from one track (deterministic datasets)."""

    @abc.abstractmethod
    def load(self, checkpoint: str | Path, unit: str, device: str | torch.device = "cpu") -> torch.nn.Module:
        """A trained unit from a checkpoint (file or run folder), in eval mode."""

    def checkpoint_units(self, checkpoint: str | Path) -> list[str]:
        """The units a checkpoint holds a model for (all the toolkit's by default). Evaluation
        separates with every one of them, whichever targets are reported."""
        return self.units()

    def trained_units(self, checkpoint: str | Path) -> list[str]:
        """The units to use when no targets are asked for: the toolkit's units the checkpoint holds a
        model for, in the toolkit's order (an Open-Unmix run folder trained for vocals alone gives
        vocals; the rest of the mixture is then a residual). All of them when it holds none, so that
        loading says what is wrong with the checkpoint."""
        held = set(self.checkpoint_units(checkpoint))
        return [u for u in self.units() if u in held] or self.units()

    @abc.abstractmethod
    def loss(self, unit: str, model: torch.nn.Module, batch) -> torch.Tensor:
        """The toolkit's own training loss on a batch of examples: shape ``(batch, targets)``."""

    @abc.abstractmethod
    def separate(
        self, models: dict[str, torch.nn.Module], mixture: np.ndarray, sample_rate: int
    ) -> dict[str, np.ndarray]:
        """Separate a ``(channels, frames)`` mixture: target -> ``(channels, frames)`` estimate."""


def available() -> dict[str, str]:
    """Registered toolkit names -> the object reference they load."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get(name: str) -> Toolkit:
    """The adapter registered under ``name`` (instantiated)."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none (is sepclean installed with `pip install -e .`?)"
        raise ToolkitError(f"no toolkit named {name!r}; registered: {known}")
    return found[name].load()()
