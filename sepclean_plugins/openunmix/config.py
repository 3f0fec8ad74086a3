"""The settings of one Open-Unmix target's training, each declared once with its default and meaning.

The trainer reads a :class:`TrainingConfig`; the adapter builds one from a ``TrainSpec``; the
command line (``python -m sepclean_plugins.openunmix.train``) is made from its fields, under the
option names of upstream's ``scripts/train.py`` and sepclean's own (``seq_dur``: ``--seq-dur``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field

from sepclean.field_docs import field_docs
from sepclean.toolkit import ToolkitError
from sepclean_plugins.openunmix import presets


@dataclass(frozen=True)
class TrainingConfig:
    """One target's training: upstream's settings and defaults, then sepclean's. ``<target>.json``
    records them by these names (its ``args``)."""

    target: str = "vocals"
    """target source (will be passed to the dataset)"""
    dataset: str | None = field(default=None, metadata={"choices": (
        "musdb", "aligned", "sourcefolder", "trackfolder_var", "trackfolder_fix")})
    """upstream's dataset class, with --root (None: musdb)"""
    root: str | None = None
    """root path of upstream's dataset"""
    manifest: str | None = None
    """train on the tracks of this sepclean dataset manifest (instead of --root)"""
    valid_manifest: str | None = None
    """validation tracks, with --manifest"""
    clean_manifest: str | None = None
    """train only on the tracks this sepclean clean manifest keeps (for --target)"""
    allow_other_dataset: bool = False
    """apply a clean manifest made for another dataset manifest"""
    output: str = "open-unmix"
    """the run folder"""
    model: str | None = None
    """name or path of a pretrained model to fine-tune"""
    checkpoint: str | None = None
    """run folder to resume training from (<target>.chkpnt)"""
    audio_backend: str = "soundfile"
    """ignored: audio is read with soundfile (torchaudio >= 2.9 has no backends)"""
    preset: str | None = field(default=None, metadata={"choices": tuple(presets.PRESETS)})
    """small-machine defaults (settings given explicitly still win)"""
    epochs: int = 1000
    """total number of epochs"""
    epoch_updates: int | None = None
    """optimizer updates per epoch, drawn evenly from the tracks whatever their number, so that runs
    on different kept sets train equally long (None: one pass over the tracks, as upstream)"""
    save_every: int | None = None
    """also keep every K-th epoch's weights as a run folder OUTPUT/epochs/e<epoch:04d>"""
    batch_size: int = 16
    """examples per batch"""
    lr: float = 0.001
    """learning rate"""
    patience: int = 140
    """early stopping patience in epochs"""
    lr_decay_patience: int = 80
    """lr decay patience for plateau scheduler"""
    lr_decay_gamma: float = 0.3
    """gamma of learning rate scheduler decay"""
    weight_decay: float = 0.00001
    """weight decay"""
    seed: int = 42
    """random seed"""
    loss_truncation: float | None = None
    """robust training: the fraction of each batch's examples with the highest loss that gets no
    gradient (loss truncation, as CCOM trained on MDX23's label noise)"""
    loss_masking: float | None = None
    """robust training: the fraction of each batch's (example, STFT frame) cells with the highest loss
    that gets no gradient (loss masking, as KUIELab trained on MDX23's bleeding)"""
    robust_warmup: int | None = None
    """epochs of plain training before truncation and masking start (None: 0)"""
    robust_relative: bool = False
    """truncation and masking rank the loss relative to the target's energy (an error-to-signal
    ratio), so the loudest examples are not dropped for being loud"""
    seq_dur: float = 6.0
    """sequence duration in seconds; <= 0 uses whole tracks (with --manifest)"""
    unidirectional: bool = False
    """use a unidirectional LSTM"""
    nfft: int = 4096
    """STFT fft size and window size"""
    nhop: int = 1024
    """STFT hop size"""
    hidden_size: int = 512
    """hidden size parameter of bottleneck layers"""
    bandwidth: int = 16000
    """maximum model bandwidth in herz"""
    nb_channels: int = 2
    """number of channels of the model (1, 2)"""
    nb_workers: int = 0
    """number of workers of the data loaders"""
    debug: bool = False
    """speed up training init for dev purposes (skips the dataset statistics)"""
    quiet: bool = False
    """less verbose during training"""
    no_cuda: bool = False
    """disables CUDA training"""
    source_augmentations: list[str] | None = None
    """augmentations of the manifest's training excerpts (openunmix.data's names, e.g. gain channelswap)"""
    random_track_mix: bool = False
    """mix the manifest's training excerpts from stems of random tracks"""
    dataset_options: dict = field(default_factory=dict, metadata={"option": False})
    """upstream's dataset options (--root), as its ``load_datasets`` read them: recorded, not used here"""

    def __post_init__(self):
        for name in AT_LEAST_ONE:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ToolkitError(f"{option(name)} must be at least 1; got {value}")
        if self.manifest and self.root:
            raise ToolkitError("--manifest and --root are alternatives")
        if self.manifest and not self.valid_manifest:
            raise ToolkitError("--manifest needs --valid-manifest (the tracks early stopping is measured on)")
        if not self.manifest and (self.valid_manifest or self.allow_other_dataset):
            raise ToolkitError("--valid-manifest and --allow-other-dataset go with --manifest")

    @classmethod
    def of(cls, preset: str | None = None, **given) -> TrainingConfig:
        """The settings ``given`` (typed as the command line would read them), the others from
        ``preset``, then the defaults declared here."""
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise ToolkitError(f"unknown Open-Unmix training setting(s): {', '.join(unknown)} "
                               f"(known: {', '.join(OPTIONS)})")
        typed = {name: _typed(name, value) for name, value in given.items()}
        return cls(preset=preset, **{**presets.values(preset), **typed})

    def recorded(self) -> dict:
        """Every setting by name, as ``<target>.json``'s ``args`` holds them: upstream's dataset
        (``--root``) has its own options instead of the manifest dataset's."""
        settings = {name: getattr(self, name) for name in OPTIONS}
        if self.manifest is None:
            settings = {k: v for k, v in settings.items() if k not in MANIFEST_DATASET}
        return {**settings, **self.dataset_options}


OPTIONS = tuple(f.name for f in dataclasses.fields(TrainingConfig) if f.metadata.get("option", True))
"""The settings the command line sets, in their order."""

SETTING_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainingConfig)
                    if f.name in OPTIONS and f.default is not dataclasses.MISSING}
"""Each setting's default, before any preset (what a setting added later stands for in older runs)."""

MANIFEST_DATASET = ("source_augmentations", "random_track_mix")
"""The options of the manifest's dataset (upstream's ``trackfolder_fix`` options, by their names)."""

AT_LEAST_ONE = ("epochs", "epoch_updates", "save_every", "batch_size", "patience", "hidden_size", "nfft", "nhop")
"""Counts of at least one (None: not given, where that is allowed)."""


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kind(hint) -> type:
    """bool, int, float, str or list: the type a setting holds when it is not None."""
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return typing.get_origin(kinds[0]) or kinds[0]


KINDS = {name: _kind(hint) for name, hint in typing.get_type_hints(TrainingConfig).items() if name in OPTIONS}


def _typed(name: str, value):
    """``value`` as the command line would read it (``lr=1``: 1.0, a Path: its text)."""
    kind = KINDS[name]
    if value is None:
        return None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is list and isinstance(value, (list, tuple, str)):
        return [value] if isinstance(value, str) else [str(v) for v in value]
    if kind not in (bool, list):
        try:
            return kind(str(value))
        except ValueError:
            pass
    raise ToolkitError(f"Open-Unmix training setting {name}: expected {kind.__name__}, got {value!r}")


def add_options(parser: argparse.ArgumentParser, defaults: TrainingConfig, leave_out=()) -> None:
    """One option per setting, defaulting to ``defaults``' value, its help the setting's docstring."""
    docs = field_docs(TrainingConfig)
    for f in dataclasses.fields(TrainingConfig):
        if f.name not in OPTIONS or f.name in leave_out:
            continue
        kind, default, help_text = KINDS[f.name], getattr(defaults, f.name), docs[f.name].replace("%", "%%")
        if kind is bool:
            parser.add_argument(option(f.name), action="store_true", default=default, help=help_text)
        elif kind is list:
            parser.add_argument(option(f.name), nargs="+", default=default, help=help_text)
        else:
            shown = "" if default is None else " (default: %(default)s)"
            parser.add_argument(option(f.name), type=kind, default=default, choices=f.metadata.get("choices"),
                                help=help_text + shown)
