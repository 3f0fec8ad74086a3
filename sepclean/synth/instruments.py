"""The named instrument parts a song's stems are made of.

An :class:`Instrument` pairs a note pattern (from :mod:`.music`) with a renderer and says which stem
it belongs to. Label noise moves whole named parts between stems, so a wrong stem holds a real,
recognisable instrument (the guitar of ``other`` filed as ``vocals``), as in mislabelled datasets.

Tonal instruments are per-note voices: a voice factory draws a timbre for the song and returns a
function rendering one note, ``voice(frequency_hz, gate_frames, velocity) -> mono``; the note's
release tail may run past the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import drums, dsp, music
from .music import Notes, Score
from .singing import sing

Voice = Callable[[float, int, float], np.ndarray]
Pattern = Callable[[Score, np.random.Generator], Notes]
Renderer = Callable[[Notes, Score, np.random.Generator, int, int], np.ndarray]


@dataclass(frozen=True)
class Instrument:
    stem: str
    pattern: Pattern
    render: Renderer
    pan: float  # the part is panned uniformly within +-pan
    level_db: tuple[float, float]  # its level range against the other parts of its stem


def per_note(make_voice: Callable[[np.random.Generator, int], Voice]) -> Renderer:
    """A renderer playing each note with one voice whose timbre is drawn once per song."""

    def render(notes: Notes, score: Score, rng: np.random.Generator, sample_rate: int, frames: int) -> np.ndarray:
        voice = make_voice(rng, sample_rate)
        out = np.zeros(frames)
        for onset, duration, pitch, velocity in zip(notes.onset, notes.duration, notes.pitch, notes.velocity):
            start = int(round(onset * sample_rate))
            if start < frames:
                gate = max(1, int(duration * sample_rate))
                drums.place(out, voice(float(dsp.midi_to_hz(pitch)), gate, float(velocity)), start)
        return out

    return render


def sub_bass(rng: np.random.Generator, sample_rate: int) -> Voice:
    """A sine, slightly saturated so it is heard on small speakers too."""
    drive = rng.uniform(1.0, 3.0)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.06 * sample_rate)
        tone = np.tanh(drive * dsp.oscillator("sine", freq, n, sample_rate)) / np.tanh(drive)
        return velocity * tone * dsp.envelope(n, gate, sample_rate, attack=0.004, release=0.06)

    return voice


def plucked(
    rng: np.random.Generator,
    sample_rate: int,
    *,
    shapes: tuple[str, ...],
    brightness: tuple[float, float],
    sustain: tuple[float, float],
) -> Voice:
    """A plucked string: the partials above ``brightness`` x f0 die out much faster than the body."""
    shape = str(rng.choice(shapes))
    bright = rng.uniform(*brightness)
    ring = rng.uniform(*sustain)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.08 * sample_rate)
        raw = dsp.oscillator(shape, freq, n, sample_rate)
        body = dsp.butter(raw, "lowpass", bright * freq, sample_rate)
        twang = dsp.butter(raw, "highpass", bright * freq, sample_rate)
        tone = body * dsp.decay(n, sample_rate, ring) + twang * dsp.decay(n, sample_rate, 0.15 * ring)
        return velocity * tone * dsp.envelope(n, gate, sample_rate, attack=0.002, release=0.08)

    return voice


def synth_bass(rng: np.random.Generator, sample_rate: int) -> Voice:
    """Two detuned saws and a square, through a resonant low-pass."""
    detune = rng.uniform(0.05, 0.2)  # semitones
    cutoff = rng.uniform(3.0, 10.0)  # x f0
    resonance = rng.uniform(0.8, 4.0)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.05 * sample_rate)
        tone = sum(dsp.oscillator("saw", freq * 2 ** (d / 12), n, sample_rate) for d in (-detune, detune))
        tone = tone + 0.5 * dsp.oscillator("square", freq, n, sample_rate)
        tone = dsp.resonant_lowpass(tone, cutoff * freq, resonance, sample_rate) / 2.5
        return velocity * tone * dsp.envelope(n, gate, sample_rate, attack=0.003, release=0.05)

    return voice


def pad(rng: np.random.Generator, sample_rate: int) -> Voice:
    """Three detuned oscillators, filtered dark, slow to rise and fall."""
    shape = str(rng.choice(["saw", "triangle", "square"]))
    cents = rng.uniform(4, 15) * np.array([-1.0, 0.0, 1.0])
    cutoff = rng.uniform(700, 2500)
    attack, release = rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.8)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(release * sample_rate)
        tone = sum(dsp.oscillator(shape, freq * 2 ** (c / 1200), n, sample_rate, phase=rng.random()) for c in cents)
        tone = dsp.butter(tone, "lowpass", cutoff, sample_rate)
        return velocity * tone * dsp.envelope(n, gate, sample_rate, attack, release)

    return voice


def electric_piano(rng: np.random.Generator, sample_rate: int) -> Voice:
    """Two-operator FM: a bright, fast-fading attack over a mellow decaying tone, plus a tine ping."""
    index = rng.uniform(1.0, 3.5)
    ratio = float(rng.choice([1.0, 2.0]))
    ring = rng.uniform(0.8, 2.0)
    tine = rng.uniform(0.0, 0.25)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.25 * sample_rate)
        t = np.arange(n) / sample_rate
        modulation = index * velocity * dsp.decay(n, sample_rate, 0.6) * np.sin(2 * np.pi * ratio * freq * t)
        tone = np.sin(2 * np.pi * freq * t + modulation) * dsp.decay(n, sample_rate, ring)
        if 7 * freq < 0.45 * sample_rate:
            tone += tine * np.sin(2 * np.pi * 7 * freq * t) * dsp.decay(n, sample_rate, 0.08)
        return velocity * tone * dsp.envelope(n, gate, sample_rate, attack=0.002, release=0.2)

    return voice


# Drawbar footages 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1' as harmonic numbers of the 8' pitch.
DRAWBAR_HARMONICS = (1, 2, 3, 4, 5, 6, 8)


def organ(rng: np.random.Generator, sample_rate: int) -> Voice:
    """Additive drawbar organ with a rotary-speaker tremolo and a key click."""
    levels = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=len(DRAWBAR_HARMONICS))
    levels[0] = 1.0
    spectrum = np.zeros(max(DRAWBAR_HARMONICS))
    spectrum[np.array(DRAWBAR_HARMONICS) - 1] = levels
    spectrum = tuple(spectrum)
    rotor = rng.uniform(0.8, 6.5)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.05 * sample_rate)
        t = np.arange(n) / sample_rate
        tone = dsp.oscillator(spectrum, freq, n, sample_rate) * (1 + 0.15 * np.sin(2 * np.pi * rotor * t))
        click = 0.2 * rng.standard_normal(n) * dsp.decay(n, sample_rate, 0.005)
        return 0.8 * (tone + click) * dsp.envelope(n, gate, sample_rate, attack=0.004, release=0.05)

    return voice


def distorted_guitar(rng: np.random.Generator, sample_rate: int) -> Voice:
    """A power chord (root, fifth, octave) of decaying saws, overdriven, through a speaker cabinet."""
    drive = rng.uniform(6.0, 30.0)
    cabinet = rng.uniform(2500, 5000)
    ring = rng.uniform(0.8, 2.5)

    def voice(freq: float, gate: int, velocity: float) -> np.ndarray:
        n = gate + int(0.08 * sample_rate)
        strings = sum(
            dsp.oscillator("saw", freq * ratio * 2 ** (rng.normal(0, 0.05) / 12), n, sample_rate, phase=rng.random())
            for ratio in (1.0, 1.5, 2.0)
        )
        tone = np.tanh(drive * velocity * strings * dsp.decay(n, sample_rate, ring) / 3)
        tone = dsp.butter(tone, "bandpass", (90.0, cabinet), sample_rate)
        return tone * dsp.envelope(n, gate, sample_rate, attack=0.003, release=0.08)

    return voice


ALL_SECTIONS = ("intro",) + music.PLAYING

INSTRUMENTS: dict[str, Instrument] = {
    "lead_vocal": Instrument(
        "vocals", music.melody, partial(sing, vowels=("a", "e", "i", "o", "u"), vowels_per_song=3), 0.1, (0, 0)
    ),
    "backing_vocals": Instrument(
        "vocals", music.backing, partial(sing, vowels=("o", "u"), vowels_per_song=1), 0.4, (-9, -4)
    ),
    "sub_bass": Instrument("bass", music.bassline, per_note(sub_bass), 0.0, (0, 0)),
    "pluck_bass": Instrument(
        "bass",
        music.bassline,
        per_note(partial(plucked, shapes=("saw", "square"), brightness=(3.0, 8.0), sustain=(0.5, 1.5))),
        0.05,
        (0, 0),
    ),
    "synth_bass": Instrument("bass", music.bassline, per_note(synth_bass), 0.05, (0, 0)),
    "kick": Instrument("drums", music.kick, drums.drum(drums.kick_sounds), 0.0, (0, 0)),
    "snare": Instrument("drums", music.snare, drums.drum(drums.snare_sounds), 0.15, (-4, 0)),
    "hihat": Instrument("drums", music.hihat, drums.drum(drums.hihat_sounds), 0.5, (-14, -7)),
    "crash": Instrument("drums", music.crash, drums.drum(drums.crash_sounds), 0.6, (-14, -8)),
    "pad": Instrument(
        "other",
        partial(music.chords, rhythms=("sustain", "halves"), centre=64, size=4, sections=ALL_SECTIONS),
        per_note(pad),
        0.3,
        (-6, 0),
    ),
    "pluck": Instrument(
        "other",
        partial(music.arpeggio, centre=76),
        per_note(partial(plucked, shapes=("saw", "square", "triangle"), brightness=(4.0, 16.0), sustain=(0.2, 0.8))),
        0.6,
        (-6, 0),
    ),
    "keys": Instrument(
        "other",
        partial(music.chords, rhythms=("stabs", "offbeats", "halves"), centre=62, size=4, sections=ALL_SECTIONS),
        per_note(electric_piano),
        0.4,
        (-6, 0),
    ),
    "organ": Instrument(
        "other", partial(music.chords, rhythms=("sustain", "halves"), centre=60), per_note(organ), 0.4, (-6, 0)
    ),
    "guitar": Instrument(
        "other",
        partial(music.chords, rhythms=("eighths", "halves", "sustain"), centre=45, roots_only=True),
        per_note(distorted_guitar),
        0.7,
        (-6, 0),
    ),
}


def instruments_of(stem: str) -> list[str]:
    return [name for name, instrument in INSTRUMENTS.items() if instrument.stem == stem]
