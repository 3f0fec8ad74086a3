"""Make the toolkits' own audio readers work on torchaudio >= 2.9.

torchaudio 2.9 removed ``torchaudio.info``, ``get_audio_backend`` and ``set_audio_backend``, and its
``load``/``save`` now require torchcodec. Open-Unmix 1.3.0 reads every dataset through
``openunmix.data.load_info``/``load_audio`` (which call all three), and demucs 4.1.0's ``demucs.wav``
calls ``ta.info``, ``ta.load`` and ``ta.save``. Both toolkits therefore fail on the tested stack
before reading a single sample.

This module replaces exactly those calls, and nothing else, with soundfile-based equivalents that keep
the original signatures and return types. ``install()`` is idempotent and is called by every sepclean
code path that hands data to a toolkit; ``uninstall()`` restores the originals (tests).
torchaudio itself is touched only when a caller asks for ``backend_selection``.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
import torchaudio

from sepclean import audio

_originals: dict[tuple[object, str], object] = {}


def _to_tensor(data):
    return torch.from_numpy(data)


# --- openunmix.data ------------------------------------------------------------------------------

def openunmix_load_info(path) -> dict:
    """``openunmix.data.load_info``: samplerate, samples, channels, duration."""
    i = audio.info(path)
    return {"samplerate": i.sample_rate, "samples": i.frames, "channels": i.channels, "duration": i.duration}


def openunmix_load_audio(path, start: float = 0.0, dur: float | None = None, info: dict | None = None):
    """``openunmix.data.load_audio``: ``(tensor[channels, frames], rate)``; full file when dur is None."""
    if dur is None:
        data, rate = audio.read(path)
        return _to_tensor(data), rate
    if info is None:
        info = openunmix_load_info(path)
    rate = info["samplerate"]
    data, rate = audio.read(path, start=int(start * rate), frames=int(dur * rate))
    return _to_tensor(data), rate


# --- demucs.wav's `ta` -----------------------------------------------------------------------------

class _TorchaudioInfo(types.SimpleNamespace):
    """The fields of torchaudio's removed ``AudioMetaData`` that demucs reads."""


def _ta_info(path) -> _TorchaudioInfo:
    i = audio.info(path)
    return _TorchaudioInfo(sample_rate=i.sample_rate, num_frames=i.frames, num_channels=i.channels)


def _ta_load(path, frame_offset: int = 0, num_frames: int = -1, **_):
    data, rate = audio.read(path, start=frame_offset, frames=num_frames)
    return _to_tensor(data), rate


def _ta_save(path, wav: torch.Tensor, sample_rate: int, encoding: str | None = None, **_):
    # demucs saves resampled/remixed sources with encoding="PCM_F": 32-bit float.
    subtype = "FLOAT" if encoding in (None, "PCM_F") else "PCM_16"
    audio.write(Path(path), wav.detach().cpu().numpy(), sample_rate, subtype=subtype)


demucs_torchaudio = types.SimpleNamespace(info=_ta_info, load=_ta_load, save=_ta_save)
"""What ``demucs.wav`` sees as ``ta``: the three torchaudio calls it makes, on soundfile."""


# --- installation ----------------------------------------------------------------------------------

def _patches():
    import demucs.wav
    import openunmix.data

    return [
        (openunmix.data, "load_info", openunmix_load_info),
        (openunmix.data, "load_audio", openunmix_load_audio),
        (demucs.wav, "ta", demucs_torchaudio),
    ]


_ABSENT = object()


def _no_backend_selection(backend=None) -> None:
    """``torchaudio.set_audio_backend``: every read goes through soundfile, nothing to select."""


def _soundfile_backend() -> str:
    return "soundfile"


def install(backend_selection: bool = False) -> None:
    """Route the toolkits' audio reads through soundfile (idempotent).

    ``backend_selection`` also gives torchaudio back ``set_audio_backend``/``get_audio_backend`` as
    no-ops, for scripts that still call them (upstream open-unmix ``scripts/train.py``): the one
    case where torchaudio itself is touched, undone by ``uninstall``.
    """
    patches = _patches()
    if backend_selection:
        patches += [(torchaudio, "set_audio_backend", _no_backend_selection),
                    (torchaudio, "get_audio_backend", _soundfile_backend)]
    for module, name, replacement in patches:
        key = (module, name)
        if key not in _originals:
            _originals[key] = getattr(module, name, _ABSENT)
        setattr(module, name, replacement)


def uninstall() -> None:
    for (module, name), original in _originals.items():
        if original is _ABSENT:
            delattr(module, name)
        else:
            setattr(module, name, original)
    _originals.clear()
