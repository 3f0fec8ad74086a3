"""Make Open-Unmix read and write audio on torchaudio >= 2.9.

torchaudio 2.9 removed ``torchaudio.info``, ``get_audio_backend`` and ``set_audio_backend``, and its
``load``/``save`` now require torchcodec. Open-Unmix 1.3.0 reads every dataset through
``openunmix.data.load_info``/``load_audio`` (which call them), and its ``umx`` command
(``openunmix.cli.separate``) also calls ``torchaudio.set_audio_backend`` (``--audio-backend``) and
``torchaudio.save``: all fail on the tested stack before reading or writing a sample.

``install()`` replaces exactly those calls, and nothing else, with soundfile-based equivalents of
the same signatures and return types: ``openunmix.data``'s two readers, and the ``torchaudio`` that
``openunmix.cli`` sees (a namespace holding only ``save`` and a no-op ``set_audio_backend``).
torchaudio itself is touched only when a caller asks for ``backend_selection`` (upstream's
``scripts/train.py`` calls ``torchaudio.set_audio_backend``). ``install()`` is idempotent and is
called by every plugin code path that hands data to Open-Unmix; ``uninstall()`` restores the
originals (tests).
"""

from __future__ import annotations

import types
from pathlib import Path

import openunmix.cli
import openunmix.data
import torch
import torchaudio

from sepclean import audio
from sepclean_plugins.patching import Patches

_patches = Patches()


def load_info(path) -> dict:
    """``openunmix.data.load_info``: samplerate, samples, channels, duration."""
    i = audio.info(path)
    return {"samplerate": i.sample_rate, "samples": i.frames, "channels": i.channels, "duration": i.duration}


def load_audio(path, start: float = 0.0, dur: float | None = None, info: dict | None = None):
    """``openunmix.data.load_audio``: ``(tensor[channels, frames], rate)``; full file when dur is None."""
    if dur is None:
        data, rate = audio.read(path)
        return torch.from_numpy(data), rate
    if info is None:
        info = load_info(path)
    rate = info["samplerate"]
    data, rate = audio.read(path, start=int(start * rate), frames=int(dur * rate))
    return torch.from_numpy(data), rate


def set_audio_backend(backend=None) -> None:
    """``torchaudio.set_audio_backend``: every read goes through soundfile, nothing to select."""


def get_audio_backend() -> str:
    return "soundfile"


def save(path, wav: torch.Tensor, sample_rate: int, **_) -> None:
    """``torchaudio.save`` as ``umx`` calls it: 32-bit float WAV (torchaudio's choice for float
    tensors), the format's default encoding for other extensions (``--ext .flac``)."""
    subtype = "FLOAT" if Path(path).suffix.lower() == ".wav" else None
    audio.write(path, torch.atleast_2d(wav).detach().cpu().numpy(), int(sample_rate), subtype=subtype)


cli_torchaudio = types.SimpleNamespace(save=save, set_audio_backend=set_audio_backend)
"""What ``openunmix.cli`` sees as ``torchaudio``: the two calls ``umx`` makes, on soundfile."""


def install(backend_selection: bool = False) -> None:
    """Route Open-Unmix's audio reads and ``umx``'s writes through soundfile (idempotent).

    ``backend_selection`` also gives torchaudio back ``set_audio_backend``/``get_audio_backend``
    as no-ops, for scripts that still call them (upstream open-unmix ``scripts/train.py``): the one
    case where torchaudio itself is touched, undone by ``uninstall``.
    """
    replacements = [
        (openunmix.data, "load_info", load_info),
        (openunmix.data, "load_audio", load_audio),
        (openunmix.cli, "torchaudio", cli_torchaudio),
    ]
    if backend_selection:
        replacements += [(torchaudio, "set_audio_backend", set_audio_backend),
                         (torchaudio, "get_audio_backend", get_audio_backend)]
    _patches.install(replacements)


def uninstall() -> None:
    _patches.uninstall()
