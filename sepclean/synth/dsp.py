"""Signal building blocks shared by the instruments and effects: oscillators, envelopes, filters.

Everything works on float64 numpy arrays at audio rate; a mono signal is ``(frames,)``, a stereo
one ``(2, frames)``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

TABLE_SIZE = 4096

# Amplitude of harmonic k (1-based) of each named waveform.
_SPECTRA = {
    "sine": lambda k: (k == 1).astype(float),
    "saw": lambda k: 1.0 / k,
    "square": lambda k: (k % 2 == 1) / k,
    "triangle": lambda k: (k % 2 == 1) * (-1.0) ** ((k - 1) // 2) / k**2,
}


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch) - 69.0) / 12.0)


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    return 10.0 ** (np.asarray(db) / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


@functools.lru_cache(maxsize=512)
def _wavetable(spectrum: str | tuple[float, ...], harmonics: int) -> np.ndarray:
    k = np.arange(1, harmonics + 1)
    if isinstance(spectrum, str):
        amplitudes = _SPECTRA[spectrum](k)
    else:
        amplitudes = np.zeros(harmonics)
        n = min(harmonics, len(spectrum))
        amplitudes[:n] = spectrum[:n]
    bins = np.zeros(TABLE_SIZE // 2 + 1, dtype=complex)
    bins[1 : harmonics + 1] = -0.5j * TABLE_SIZE * amplitudes  # irfft of this is sum_k a_k sin(2 pi k t)
    table = np.fft.irfft(bins, TABLE_SIZE)
    table /= max(np.abs(table).max(), 1e-12)
    return np.append(table, table[0])  # a guard sample: linear interpolation never wraps the index


def oscillator(
    spectrum: str | tuple[float, ...],
    freq: float | np.ndarray,
    frames: int,
    sample_rate: int,
    phase: float = 0.0,
) -> np.ndarray:
    """A band-limited periodic wave at ``freq`` Hz (a constant or one value per frame).

    ``spectrum`` names a waveform (sine, saw, square, triangle) or gives harmonic amplitudes.
    Harmonics above Nyquist at the highest frequency reached are left out, so nothing aliases.
    """
    if np.ndim(freq) == 0:
        cycles = phase + float(freq) / sample_rate * np.arange(frames)
        top = float(freq)
    else:
        cycles = phase + np.cumsum(freq) / sample_rate
        top = float(np.max(freq)) if frames else 1.0
    harmonics = int(np.clip(sample_rate / 2 / max(top, 1.0), 1, TABLE_SIZE // 2 - 1))
    table = _wavetable(spectrum, harmonics)
    position = (cycles - np.floor(cycles)) * TABLE_SIZE
    index = position.astype(np.int64)
    frac = position - index
    return table[index] + frac * (table[index + 1] - table[index])


def envelope(frames: int, gate: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, sustain until ``gate`` frames, then exponential release (-60 dB at ``release`` s)."""
    n = np.arange(frames)
    attack_frames = max(1, int(attack * sample_rate))
    rise = np.minimum(1.0, (n + 1) / attack_frames)
    after = np.maximum(0, n - gate) / (max(release, 1e-4) * sample_rate)
    return rise * np.exp(-6.9 * after)


def decay(frames: int, sample_rate: int, time: float) -> np.ndarray:
    """Exponential decay reaching -60 dB after ``time`` seconds."""
    return np.exp(-6.9 * np.arange(frames) / (time * sample_rate))


def smooth(x: np.ndarray, time: float, sample_rate: int) -> np.ndarray:
    """One-pole low-pass with time constant ``time`` seconds, started at ``x[0]``."""
    a = np.exp(-1.0 / max(time * sample_rate, 1.0))
    y, _ = signal.lfilter([1 - a], [1, -a], x, zi=[a * x[0]] if len(x) else [0.0])
    return y


def butter(
    x: np.ndarray, kind: str, cutoff: float | tuple[float, float], sample_rate: int, order: int = 2
) -> np.ndarray:
    """Butterworth ``lowpass``/``highpass``/``bandpass`` along the last axis; cutoffs clipped below Nyquist."""
    nyquist = sample_rate / 2
    cutoff = np.clip(cutoff, 1.0, 0.95 * nyquist)
    sos = signal.butter(order, cutoff, btype=kind, fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def resonant_lowpass(x: np.ndarray, cutoff: float, q: float, sample_rate: int) -> np.ndarray:
    """Second-order low-pass with resonance ``q`` (0.707 = no peak)."""
    w = 2 * np.pi * min(cutoff, 0.45 * sample_rate) / sample_rate
    alpha = np.sin(w) / (2 * q)
    cos = np.cos(w)
    b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return signal.lfilter(b / a[0], a / a[0], x)


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan: ``position`` -1 (left) .. 1 (right); the centre keeps unit power per side."""
    angle = (position + 1) * np.pi / 4
    return np.sqrt(2) * np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def active_rms(x: np.ndarray, sample_rate: int, block: float = 0.05, floor_db: float = -40.0) -> float:
    """RMS of a mono signal over the blocks that sound (within ``floor_db`` of the loudest), so that
    sparse parts are not rated quieter than they sound."""
    size = max(1, int(block * sample_rate))
    power = np.mean(np.square(x[: len(x) // size * size].reshape(-1, size)), axis=1)
    if not power.size or power.max() <= 0:
        return 0.0
    return float(np.sqrt(power[power >= power.max() * 10 ** (floor_db / 10)].mean()))


def fade(x: np.ndarray, sample_rate: int, fade_in: float = 0.005, fade_out: float = 0.05) -> np.ndarray:
    """Short raised-cosine fades at both ends, so a part cut at the song's edges does not click."""
    n = x.shape[-1]
    ramp_in = min(n, int(fade_in * sample_rate))
    ramp_out = min(n, int(fade_out * sample_rate))
    gain = np.ones(n)
    gain[:ramp_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_in) / ramp_in)
    if ramp_out:
        gain[n - ramp_out :] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, ramp_out + 1) / ramp_out)
    return x * gain
