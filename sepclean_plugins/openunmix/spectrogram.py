"""Open-Unmix's input representation and training loss.

Open-Unmix models map magnitude spectrograms to magnitude spectrograms; the STFT settings live
beside the weights (``separator.json``), not in the module. A model handed out by this package
carries them as its ``stft`` attribute (an :class:`StftConfig`), so the loss and the separator can
rebuild exactly the encoder it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from openunmix.transforms import ComplexNorm, make_filterbanks

from sepclean.toolkit import ToolkitError


@dataclass(frozen=True)
class StftConfig:
    """The contents of an Open-Unmix run's ``separator.json``."""

    nfft: int = 4096
    nhop: int = 1024
    sample_rate: float = 44100.0
    nb_channels: int = 2

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "StftConfig":
        return cls(nfft=int(d["nfft"]), nhop=int(d["nhop"]), sample_rate=float(d["sample_rate"]),
                   nb_channels=int(d["nb_channels"]))


def make_encoder(stft: StftConfig) -> torch.nn.Sequential:
    """Waveform -> magnitude spectrogram, as upstream's scripts/train.py builds it.

    Training uses an uncentred STFT (``make_filterbanks``' default); only the Separator centres.
    """
    transform, _ = make_filterbanks(n_fft=stft.nfft, n_hop=stft.nhop, sample_rate=stft.sample_rate)
    return torch.nn.Sequential(transform, ComplexNorm(mono=stft.nb_channels == 1))


def magnitude_mse(unmix: torch.nn.Module, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example training loss, shape ``(batch,)``.

    The MSE between the model's output on the mixture's magnitude spectrogram and the target's
    magnitude spectrogram; its mean over the batch is exactly scripts/train.py's
    ``mse_loss(unmix(encoder(x)), encoder(y))`` (every example has the same shape).
    """
    return magnitude_errors(unmix, encoder, x, y).flatten(1).mean(1)


def magnitude_errors(unmix: torch.nn.Module, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The squared errors ``magnitude_mse`` averages: ``(batch, channels, bins, frames)``."""
    return (unmix(encoder(x)) - encoder(y)).pow(2)


def attach(model: torch.nn.Module, stft: StftConfig) -> torch.nn.Module:
    model.stft = stft
    return model


def stft_of(model: torch.nn.Module) -> StftConfig:
    stft = getattr(model, "stft", None)
    if not isinstance(stft, StftConfig):
        raise ToolkitError(
            "this Open-Unmix model carries no STFT settings: load it with OpenUnmixToolkit.load "
            "(or attach them with sepclean_plugins.openunmix.spectrogram.attach)"
        )
    return stft
