"""A synthetic drum kit: each piece is a few one-shot sounds, drawn per song, placed at its hits.

Several variants of a piece alternate at random, so repeated hits are not identical copies (the
round robin of a sampled kit). Hit loudness follows velocity.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import dsp
from .music import Notes, Score

# A piece's sounds: for each voice (closed / open hi-hat...) its variants.
Sounds = dict[int, list[np.ndarray]]

# Frequencies of the square waves in a TR-808 cymbal, Hz.
METALLIC = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0])


def place(out: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add ``gain * sound`` into ``out`` from frame ``start``, cut at its end."""
    if start >= len(out):
        return
    length = min(len(sound), len(out) - start)
    out[start : start + length] += gain * sound[:length]


def drum(make_sounds: Callable[[np.random.Generator, int], Sounds]):
    """A part renderer playing the sounds ``make_sounds`` draws for the song at each hit."""

    def render(notes: Notes, score: Score, rng: np.random.Generator, sample_rate: int, frames: int) -> np.ndarray:
        sounds = make_sounds(rng, sample_rate)
        out = np.zeros(frames)
        for onset, velocity, voice in zip(notes.onset, notes.velocity, notes.voice):
            options = sounds[int(voice)]
            place(out, options[rng.integers(len(options))], int(round(onset * sample_rate)), velocity**1.5)
        return out

    return render


def saturate(x: np.ndarray, drive: float) -> np.ndarray:
    """Soft-clip ``x`` scaled to unit peak: tames the random peaks of noise bursts, like a drum bus."""
    return np.tanh(drive * x / np.abs(x).max()) / np.tanh(drive)


def kick_sounds(rng: np.random.Generator, sample_rate: int) -> Sounds:
    """A sine whose pitch falls fast from a thump to a low boom, plus a beater click."""
    n = int(0.5 * sample_rate)
    t = np.arange(n) / sample_rate
    high, low = rng.uniform(110, 220), rng.uniform(42, 62)
    sweep = low + (high - low) * np.exp(-t / rng.uniform(0.015, 0.05))
    body = np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * dsp.decay(n, sample_rate, rng.uniform(0.2, 0.5))
    click = dsp.butter(rng.standard_normal(n), "highpass", 2500, sample_rate) * dsp.decay(n, sample_rate, 0.008)
    return {0: [saturate(body + rng.uniform(0.05, 0.3) * click, rng.uniform(1.0, 3.0))]}


def snare_sounds(rng: np.random.Generator, sample_rate: int, variants: int = 3) -> Sounds:
    """A two-mode drum-head tone and a longer burst of band-passed wire noise."""
    n = int(0.45 * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = rng.uniform(160, 240)
    head = (np.sin(2 * np.pi * pitch * t) + 0.5 * np.sin(2 * np.pi * 1.6 * pitch * t)) * dsp.decay(n, sample_rate, 0.12)
    wires, tone = rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.8)
    low, high = rng.uniform(800, 2000), rng.uniform(7000, 11000)
    drive = rng.uniform(2.0, 4.0)

    def one() -> np.ndarray:
        noise = dsp.butter(rng.standard_normal(n), "bandpass", (low, high), sample_rate)
        return saturate(tone * head + 2.0 * noise * dsp.decay(n, sample_rate, wires), drive)

    return {0: [one() for _ in range(variants)]}


def _metal(rng: np.random.Generator, sample_rate: int, frames: int, cutoff: float) -> np.ndarray:
    """Inharmonic metallic ring: detuned 808 square waves and noise, high-passed."""
    detune = rng.uniform(0.9, 1.3)
    squares = sum(dsp.oscillator("square", f * detune, frames, sample_rate, phase=rng.random()) for f in METALLIC)
    ring = dsp.butter(squares + 2.0 * rng.standard_normal(frames), "highpass", cutoff, sample_rate, order=4)
    return saturate(ring, 2.0)


def hihat_sounds(rng: np.random.Generator, sample_rate: int, variants: int = 3) -> Sounds:
    """Voice 0 closed (tens of ms), voice 1 open (a few hundred ms)."""
    closed, opened = rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.5)
    cutoff = rng.uniform(6000, 9000)
    n = int(0.6 * sample_rate)

    def one(time: float) -> np.ndarray:
        return _metal(rng, sample_rate, n, cutoff) * dsp.decay(n, sample_rate, time)

    return {0: [one(closed) for _ in range(variants)], 1: [one(opened) for _ in range(variants)]}


def crash_sounds(rng: np.random.Generator, sample_rate: int) -> Sounds:
    n = int(2.5 * sample_rate)
    swell = dsp.envelope(n, n, sample_rate, attack=0.002, release=1.0)
    shape = swell * dsp.decay(n, sample_rate, rng.uniform(1.5, 2.5))
    return {0: [_metal(rng, sample_rate, n, rng.uniform(3000, 5000)) * shape]}
