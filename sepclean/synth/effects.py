"""Audio effects that contaminate stems: those of the paper's EffectsDB and the leak path of bleeding.

Two backends apply the same three effects with the same parameters (the names are pedalboard's):

- ``numpy`` (default): distortion = ``tanh`` after ``drive_db`` of gain; low-pass = a first-order
  Butterworth (6 dB/octave, like pedalboard's LowpassFilter); reverb = Freeverb, the algorithm of
  pedalboard's Reverb (JUCE's), applied exactly as a linear filter: its impulse response is
  computed once per parameter set from the comb and all-pass transfer functions and convolved by FFT.
- ``pedalboard`` (GPL-3, optional, imported only when asked for): Spotify's pedalboard plugins.

Arrays are float64 ``(channels, frames)``.
"""

from __future__ import annotations

import functools
import importlib
from typing import Protocol

import numpy as np
from scipy import signal

from sepclean.errors import SepcleanError

from . import dsp

# Freeverb's delay lengths in samples at 44.1 kHz; the right channel's are longer by the spread.
COMB_TUNINGS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_TUNINGS = (556, 441, 341, 225)
STEREO_SPREAD = 23
INPUT_GAIN, WET_SCALE, DRY_SCALE = 0.015, 3.0, 2.0


class EffectsBackendError(SepcleanError, RuntimeError):
    """The requested effects backend cannot be used here."""


class EffectsBackend(Protocol):
    name: str

    def distortion(self, audio: np.ndarray, sample_rate: int, *, drive_db: float) -> np.ndarray: ...

    def reverb(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        room_size: float,
        damping: float,
        wet_level: float,
        dry_level: float,
        width: float,
    ) -> np.ndarray: ...

    def lowpass(self, audio: np.ndarray, sample_rate: int, *, cutoff_hz: float) -> np.ndarray: ...


class NumpyEffects:
    name = "numpy"

    def distortion(self, audio: np.ndarray, sample_rate: int, *, drive_db: float) -> np.ndarray:
        return np.tanh(dsp.db_to_gain(drive_db) * audio)

    def reverb(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        room_size: float,
        damping: float,
        wet_level: float,
        dry_level: float,
        width: float,
    ) -> np.ndarray:
        """Freeverb: both channels' tanks are fed the mono sum; ``width`` crossfeeds them."""
        response = freeverb_response(room_size, damping, sample_rate)
        tanks = signal.oaconvolve(audio.sum(axis=0)[None, :], response, axes=-1)[:, : audio.shape[-1]]
        wet = WET_SCALE * wet_level
        direct, cross = 0.5 * wet * (1 + width), 0.5 * wet * (1 - width)
        return direct * tanks + cross * tanks[::-1] + DRY_SCALE * dry_level * audio

    def lowpass(self, audio: np.ndarray, sample_rate: int, *, cutoff_hz: float) -> np.ndarray:
        return dsp.butter(audio, "lowpass", cutoff_hz, sample_rate, order=1)


class PedalboardEffects:
    name = "pedalboard"

    def __init__(self) -> None:
        try:
            self._pedalboard = importlib.import_module("pedalboard")
        except ImportError as e:
            raise EffectsBackendError(
                "the pedalboard effects backend needs the optional package pedalboard (GPL-3), which is not "
                "installed: `pip install 'sepclean[pedalboard]'`, or use the default numpy backend"
            ) from e

    def _apply(self, plugin, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return plugin(audio.astype(np.float32), float(sample_rate)).astype(np.float64)

    def distortion(self, audio: np.ndarray, sample_rate: int, *, drive_db: float) -> np.ndarray:
        return self._apply(self._pedalboard.Distortion(drive_db=drive_db), audio, sample_rate)

    def reverb(self, audio: np.ndarray, sample_rate: int, **params: float) -> np.ndarray:
        return self._apply(self._pedalboard.Reverb(**params), audio, sample_rate)

    def lowpass(self, audio: np.ndarray, sample_rate: int, *, cutoff_hz: float) -> np.ndarray:
        return self._apply(self._pedalboard.LowpassFilter(cutoff_frequency_hz=cutoff_hz), audio, sample_rate)


BACKENDS = {"numpy": NumpyEffects, "pedalboard": PedalboardEffects}


def get_backend(name: str) -> EffectsBackend:
    """The backend called ``name``; raises :class:`EffectsBackendError` when it cannot be used."""
    if name not in BACKENDS:
        raise EffectsBackendError(f"unknown effects backend {name!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]()


def apply_effect(backend: EffectsBackend, effect: str, audio: np.ndarray, sample_rate: int, params: dict) -> np.ndarray:
    """Apply ``effect`` (distortion, reverb or lowpass), then restore the input's RMS loudness."""
    out = getattr(backend, effect)(audio, sample_rate, **params)
    level = dsp.rms(out)
    return out * (dsp.rms(audio) / level) if level > 0 else out


@functools.lru_cache(maxsize=8)
def freeverb_response(room_size: float, damping: float, sample_rate: int) -> np.ndarray:
    """Impulse responses ``(2, frames)`` of Freeverb's left and right tanks (input gain included).

    Each tank is eight feedback combs, with a one-pole low-pass (the damping) in their loops, in
    parallel, then four Schroeder all-passes in series. Their transfer functions are evaluated on
    an FFT grid long enough for the tail to decay by 100 dB, so the time aliasing is negligible.
    """
    feedback = 0.7 + 0.28 * room_size
    damp = 0.4 * damping
    scale = sample_rate / 44100
    longest = (max(COMB_TUNINGS) + STEREO_SPREAD) * scale
    frames = 1 << int(np.ceil(np.log2(longest * np.log(1e-5) / np.log(feedback))))
    cycles = np.fft.rfftfreq(frames)

    def delay(samples: float) -> np.ndarray:  # z^-samples on the unit circle
        return np.exp(-2j * np.pi * cycles * int(samples))

    one = delay(1)
    responses = []
    for spread in (0, STEREO_SPREAD):
        combs = 0.0
        for tuning in COMB_TUNINGS:
            z = delay((tuning + spread) * scale)
            combs = combs + z * (1 - damp * one) / (1 - damp * one - feedback * (1 - damp) * z)
        for tuning in ALLPASS_TUNINGS:
            z = delay((tuning + spread) * scale)
            combs = combs * (1.5 * z - 1) / (1 - 0.5 * z)
        responses.append(np.fft.irfft(INPUT_GAIN * combs, frames))
    return np.stack(responses)


def bleed(
    source: np.ndarray,
    sample_rate: int,
    *,
    gain_db: float,
    delay_ms: float,
    filter: str | None,
    cutoff_hz: float | None,
) -> np.ndarray:
    """What of ``source`` leaks into another stem: delayed, attenuated, optionally filtered
    (``lowpass``/``highpass``, second order), as a microphone a little further away would hear it."""
    shift = int(round(delay_ms * sample_rate / 1000))
    leak = np.zeros_like(source)
    leak[..., shift:] = source[..., : source.shape[-1] - shift]
    if filter is not None:
        leak = dsp.butter(leak, filter, cutoff_hz, sample_rate)
    return dsp.db_to_gain(gain_db) * leak
