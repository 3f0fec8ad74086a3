"""Sung voices by formant synthesis.

A glottal pulse train follows the notes' pitch, gliding between notes (portamento), with a delayed
vibrato and a slow random drift; it goes through a cascade of vowel formant resonators, and the
vowel changes note by note with short crossfades. Simultaneous voices (backing singers) share the
vowel of their chord, so they are summed before the formant filters, which are the costly part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import dsp
from .music import Notes, Score

# Centre frequencies and bandwidths (Hz) of the first five formants of sung vowels, male voice.
VOWELS = {
    "a": ((800, 1150, 2800, 3500, 4950), (80, 90, 120, 130, 140)),
    "e": ((400, 1700, 2600, 3200, 3580), (70, 80, 100, 120, 120)),
    "i": ((290, 1870, 2800, 3250, 3540), (40, 90, 100, 120, 120)),
    "o": ((400, 800, 2600, 2800, 3000), (70, 80, 100, 130, 135)),
    "u": ((350, 600, 2700, 2900, 3300), (40, 80, 100, 120, 120)),
}
FORMANT_SCALE = {"male": 1.0, "female": 1.17}  # shorter vocal tract, higher resonances


@dataclass(frozen=True)
class Singer:
    formant_scale: float
    vibrato_rate: float  # Hz
    vibrato_depth: float  # semitones
    glide: float  # portamento time constant, s
    breath: float  # aspiration noise relative to the pulse
    open_quotient: float  # fraction of a glottal period the glottis is open

    @classmethod
    def random(cls, rng: np.random.Generator, singer: str) -> Singer:
        return cls(
            formant_scale=FORMANT_SCALE[singer] * rng.uniform(0.95, 1.05),
            vibrato_rate=rng.uniform(4.8, 6.5),
            vibrato_depth=rng.uniform(0.15, 0.5),
            glide=rng.uniform(0.015, 0.05),
            breath=rng.uniform(0.1, 0.6),
            open_quotient=rng.uniform(0.5, 0.7),
        )


def sing(
    notes: Notes,
    score: Score,
    rng: np.random.Generator,
    sample_rate: int,
    frames: int,
    *,
    vowels: tuple[str, ...],
    vowels_per_song: int,
) -> np.ndarray:
    """The sung notes (each ``voice`` a line) on vowels drawn from ``vowels``."""
    if not len(notes):
        return np.zeros(frames)
    singer = Singer.random(rng, score.singer)
    chosen = tuple(rng.choice(vowels, size=min(vowels_per_song, len(vowels)), replace=False))
    source = sum(
        _glottal_line(notes.select(notes.voice == voice), singer, rng, sample_rate, frames)
        for voice in np.unique(notes.voice)
    )
    weights = _vowel_weights(notes.onset, len(chosen), rng, sample_rate, frames)
    return sum(
        signal.sosfilt(_formant_filter(vowel, singer.formant_scale, sample_rate), source * weight)
        for vowel, weight in zip(chosen, weights)
    )


def _glottal_line(notes: Notes, singer: Singer, rng: np.random.Generator, sample_rate: int, frames: int) -> np.ndarray:
    """Glottal flow derivative of one monophonic line, with its loudness envelope applied."""
    t = np.arange(frames)
    onsets = np.round(notes.onset * sample_rate).astype(int)
    ends = onsets + np.round(notes.duration * sample_rate).astype(int)
    # The latest note started (or the first one, before it): pitch is held through rests so the
    # next phrase glides only from the last note sung.
    current = np.maximum(np.searchsorted(onsets, t, side="right") - 1, 0)
    sounding = (t >= onsets[current]) & (t < ends[current])

    since_onset = (t - onsets[current]) / sample_rate
    vibrato = singer.vibrato_depth * np.clip((since_onset - 0.15) / 0.3, 0.0, 1.0)
    vibrato *= np.sin(2 * np.pi * singer.vibrato_rate * t / sample_rate + rng.uniform(0, 2 * np.pi))
    pitch = dsp.smooth(notes.pitch[current], singer.glide, sample_rate) + vibrato + _drift(rng, frames, sample_rate)

    f0 = dsp.midi_to_hz(pitch)
    cycles = np.cumsum(f0) / sample_rate
    pulse = _rosenberg(cycles - np.floor(cycles), singer.open_quotient)
    breath = singer.breath * rng.standard_normal(frames) * (0.3 + pulse)
    # Slope per period rather than per second: the same loudness at every pitch.
    flow_derivative = np.diff(pulse, prepend=0.0) * sample_rate / f0 + breath

    loudness = dsp.smooth(sounding * notes.velocity[current], 0.025, sample_rate)
    return flow_derivative * loudness


def _rosenberg(phase: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg glottal flow pulse over one period (``phase`` in [0, 1)): a slow opening, a faster
    closing, then closed."""
    opening = 0.65 * open_quotient
    closing = open_quotient - opening
    rise = 0.5 * (1 - np.cos(np.pi * phase / opening))
    fall = np.cos(0.5 * np.pi * (phase - opening) / closing)
    return np.where(phase < opening, rise, np.where(phase < open_quotient, fall, 0.0))


def _drift(
    rng: np.random.Generator, frames: int, sample_rate: int, cents: float = 8.0, rate: float = 4.0
) -> np.ndarray:
    """Slow random pitch wander (semitones): control-rate noise interpolated to audio rate."""
    controls = max(2, int(frames / sample_rate * rate) + 2)
    knots = np.linspace(0, frames, controls)
    return np.interp(np.arange(frames), knots, rng.normal(0.0, cents / 100.0, controls))


def _vowel_weights(
    onsets: np.ndarray, count: int, rng: np.random.Generator, sample_rate: int, frames: int
) -> np.ndarray:
    """``(count, frames)`` crossfade weights: one random vowel per distinct onset, 30 ms transitions."""
    starts = np.unique(np.round(onsets * sample_rate).astype(int))
    vowel = rng.integers(count, size=len(starts))
    current = np.maximum(np.searchsorted(starts, np.arange(frames), side="right") - 1, 0)
    hard = vowel[current][None, :] == np.arange(count)[:, None]
    return np.stack([dsp.smooth(row.astype(float), 0.03, sample_rate) for row in hard])


def _formant_filter(vowel: str, scale: float, sample_rate: int) -> np.ndarray:
    """Cascade of two-pole resonators with unit gain at DC (Klatt's), as second-order sections."""
    centres, bandwidths = VOWELS[vowel]
    sections = []
    for centre, bandwidth in zip(centres, bandwidths):
        frequency = min(centre * scale, 0.45 * sample_rate)
        radius = np.exp(-np.pi * bandwidth * scale / sample_rate)
        b1 = 2 * radius * np.cos(2 * np.pi * frequency / sample_rate)
        b2 = -radius**2
        sections.append([1 - b1 - b2, 0.0, 0.0, 1.0, -b1, -b2])
    return np.array(sections)
