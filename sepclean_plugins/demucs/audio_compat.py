"""Make demucs read and write audio on torchaudio >= 2.9.

torchaudio 2.9 removed ``torchaudio.info``, and its ``load``/``save`` now require torchcodec.
demucs 4.1.0's ``demucs.wav`` (its ``Wavset`` dataset and the metadata it builds) calls ``ta.info``,
``ta.load`` and ``ta.save``, so demucs' own dataset class fails on the tested stack before reading
a single sample.

``install()`` replaces exactly what ``demucs.wav`` sees as ``ta`` with a namespace holding those
three calls on soundfile, with the signatures and return types demucs uses; torchaudio itself is
untouched. ``install()`` is idempotent and is called by every plugin code path that hands data to
demucs; ``uninstall()`` restores the original (tests).
"""

from __future__ import annotations

import types
from pathlib import Path

import demucs.wav
import torch

from sepclean import audio
from sepclean_plugins.patching import Patches

_patches = Patches()


class AudioMetaData(types.SimpleNamespace):
    """The fields of torchaudio's removed ``AudioMetaData`` that demucs reads."""


def info(path) -> AudioMetaData:
    i = audio.info(path)
    return AudioMetaData(sample_rate=i.sample_rate, num_frames=i.frames, num_channels=i.channels)


def load(path, frame_offset: int = 0, num_frames: int = -1, **_):
    data, rate = audio.read(path, start=frame_offset, frames=num_frames)
    return torch.from_numpy(data), rate


def save(path, wav: torch.Tensor, sample_rate: int, encoding: str | None = None, **_):
    # demucs saves resampled/remixed sources with encoding="PCM_F": 32-bit float.
    subtype = "FLOAT" if encoding in (None, "PCM_F") else "PCM_16"
    audio.write(Path(path), wav.detach().cpu().numpy(), sample_rate, subtype=subtype)


demucs_torchaudio = types.SimpleNamespace(info=info, load=load, save=save)
"""What ``demucs.wav`` sees as ``ta``: the three torchaudio calls it makes, on soundfile."""


def install() -> None:
    """Route ``demucs.wav``'s audio reads and writes through soundfile (idempotent)."""
    _patches.install([(demucs.wav, "ta", demucs_torchaudio)])


def uninstall() -> None:
    _patches.uninstall()
