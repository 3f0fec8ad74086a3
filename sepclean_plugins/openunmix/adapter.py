"""The Open-Unmix adapter: one model (unit) per target, trained on magnitude spectrograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from openunmix.model import Separator

import sepclean
from sepclean.manifest import Manifest
from sepclean.robust import RobustLoss
from sepclean.toolkit import Toolkit, ToolkitError, TrainResult, TrainSpec
from sepclean_plugins.openunmix import checkpoint
from sepclean_plugins.openunmix.clean import track_ids
from sepclean_plugins.openunmix.config import TrainingConfig
from sepclean_plugins.openunmix.dataset import ManifestTrackFolderDataset, for_target
from sepclean_plugins.openunmix.spectrogram import StftConfig, magnitude_mse, make_encoder, stft_of


class OpenUnmixToolkit(Toolkit):
    """Open-Unmix 1.3 through its own classes: ``FixedSourcesTrackFolderDataset``, ``OpenUnmix``,
    the training script's magnitude-spectrogram MSE, and ``Separator`` for inference.

    ``niter``, ``wiener_win_len`` and ``softmask`` are the Separator's Wiener-filter settings, with
    the defaults of ``openunmix.utils.load_separator`` (and of the ``umx`` command).
    """

    name = "openunmix"
    joint = False
    targets = list(sepclean.STEMS)

    def __init__(self, niter: int = 1, wiener_win_len: int | None = 300, softmask: bool = False):
        self.niter = niter
        self.wiener_win_len = wiener_win_len
        self.softmask = softmask
        self._encoders: dict[tuple[StftConfig, torch.device], torch.nn.Module] = {}

    def train(self, spec: TrainSpec, output: Path) -> TrainResult:
        """One model per target, each by the training script's procedure, into one run folder (as
        upstream's ``umx`` models are laid out); a target already trained is not trained again."""
        # Not at module level: the package's __init__ imports this module, which would load train.py
        # before `python -m sepclean_plugins.openunmix.train` runs it (runpy warns on stderr).
        from sepclean_plugins.openunmix.train import Manifests, Training

        configs = [training_config(spec, target, Path(output))
                   for target in self.units(list(spec.targets) if spec.targets else None)]
        manifests = Manifests.load(configs[0]) if configs else None  # the same for every target
        tracks, best, epochs = {}, {}, {}
        for config in configs:
            target = config.target
            record = Training.from_config(config, manifests).run()
            tracks[target] = record["sepclean"]["train_tracks"]
            best[target], epochs[target] = record["best_epoch"], record["epochs_trained"]
        return TrainResult(Path(output), tracks, best, epochs)

    def units(self, targets: list[str] | None = None) -> list[str]:
        return list(self.targets if targets is None else targets)

    def unit_targets(self, unit: str) -> list[str]:
        return [unit]

    def dataset(self, manifest: Manifest, unit: str, **options) -> ManifestTrackFolderDataset:
        """Open-Unmix's ``trackfolder_fix`` dataset over the manifest's (kept) tracks for one target,
        with the training's dataset options too (``dataset.for_target``)."""
        return for_target(manifest, unit, **options)

    def dataset_tracks(self, dataset) -> list[str]:
        return track_ids(dataset)

    def examples(self, dataset, track_id: str) -> list[int]:
        indices = [i for i, t in enumerate(track_ids(dataset)) if t == track_id]
        if not indices:
            raise KeyError(f"track {track_id!r} is not in this dataset")
        return indices

    def load(self, checkpoint_path, unit: str, device="cpu") -> torch.nn.Module:
        """The model of target ``unit`` from a run folder (its best epoch) or a .pth/.chkpnt file.

        The model carries its STFT settings (``model.stft``), which ``loss`` and ``separate`` use.
        """
        return checkpoint.load_model(checkpoint_path, unit, device)

    def checkpoint_units(self, checkpoint_path) -> list[str]:
        """The targets a run folder holds a model for (a .pth/.chkpnt file: its own target)."""
        path = Path(checkpoint_path).expanduser()
        return [path.stem] if path.is_file() else checkpoint.targets_in(path)

    def loss(self, unit: str, model: torch.nn.Module, batch) -> torch.Tensor:
        """The training script's loss per example, shape ``(batch, 1)``. The model's train/eval mode
        is the caller's: in train mode batch normalisation mixes the examples of a batch."""
        x, y = batch
        device = next(model.parameters()).device
        encoder = self._encoder(stft_of(model), device)
        return magnitude_mse(model, encoder, x.to(device), y.to(device))[:, None]

    def separate(
        self, models: dict[str, torch.nn.Module], mixture: np.ndarray, sample_rate: int
    ) -> dict[str, np.ndarray]:
        """Separate with Open-Unmix's Separator (multichannel Wiener filter over all given targets).

        When the models do not cover every target (vocals, bass, drums, other), the rest of the
        mixture is modelled as a residual source, as ``umx --residual`` does, and not returned:
        without it the Wiener filter would share the whole mixture among the given targets.
        """
        stft = _common_stft(models)
        if sample_rate != stft.sample_rate:
            raise ToolkitError(
                f"mixture is at {sample_rate} Hz, the models at {stft.sample_rate:g} Hz: resample it first"
            )
        device = next(next(iter(models.values())).parameters()).device
        separator = Separator(
            models,
            niter=self.niter,
            softmask=self.softmask,
            residual=not set(self.targets) <= set(models),
            sample_rate=stft.sample_rate,
            n_fft=stft.nfft,
            n_hop=stft.nhop,
            nb_channels=stft.nb_channels,
            wiener_win_len=self.wiener_win_len,
        ).to(device)
        audio = torch.as_tensor(mixture, dtype=torch.float32, device=device)
        mono = audio.shape[0] == 1
        if mono:  # the Separator works on stereo, like openunmix.utils.preprocess
            audio = audio.repeat(2, 1)
        with torch.inference_mode():
            estimates = separator(audio[None])[0]  # (targets in the models' order [+ residual], channels, frames)
        if mono:
            estimates = estimates.mean(1, keepdim=True)
        return {target: estimates[i].cpu().numpy() for i, target in enumerate(models)}

    def _encoder(self, stft: StftConfig, device: torch.device) -> torch.nn.Module:
        key = (stft, device)
        if key not in self._encoders:
            self._encoders[key] = make_encoder(stft).to(device)
        return self._encoders[key]


def training_config(spec: TrainSpec, target: str, output: Path) -> TrainingConfig:
    """The training of one target of ``spec``; ``spec.overrides`` are settings of
    :class:`TrainingConfig` by name (``{"hidden_size": 128, "unidirectional": True}``)."""
    given = {"manifest": spec.train, "valid_manifest": spec.valid, "target": target, "output": output,
             "seed": spec.seed, "clean_manifest": spec.clean, "epochs": spec.epochs, "epoch_updates": spec.epoch_updates,
             "no_cuda": spec.device == "cpu", "quiet": spec.quiet, **robust_settings(spec.robust), **spec.overrides}
    return TrainingConfig.of(spec.preset, **{k: v for k, v in given.items() if v is not None})


def robust_settings(robust: RobustLoss | None) -> dict:
    """The training's settings for ``TrainSpec.robust`` (None: not set)."""
    if robust is None:
        return {}
    return {"loss_truncation": robust.truncate or None, "loss_masking": robust.mask or None,
            "robust_warmup": robust.warmup or None, "robust_relative": robust.relative}


def _common_stft(models: dict[str, torch.nn.Module]) -> StftConfig:
    if not models:
        raise ToolkitError("no model to separate with")
    settings = {target: stft_of(model) for target, model in models.items()}
    if len(set(settings.values())) > 1:
        raise ToolkitError(f"the models were trained with different STFT settings: {settings}")
    return next(iter(settings.values()))
