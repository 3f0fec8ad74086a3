"""The score of a song, shared by all its stems, and the note patterns its parts play.

A :class:`Score` fixes the tempo, key, mode, chord progression, song sections and drum groove; every
part's notes are written against it, so stems share one beat grid and one harmony, the way the
stems of a real song are correlated. Times are in seconds, pitches in MIDI numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

STEPS_PER_BAR = 16  # a 4/4 bar on a sixteenth-note grid
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}

# Chord roots as 0-based scale degrees, one chord a bar.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0), (0, 3, 4, 3)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)),
}

# Lowest and highest melody notes of each singer.
REGISTERS = {"female": (60, 79), "male": (50, 69)}

PLAYING = ("verse", "chorus")  # the sections where a full band plays


@dataclass(frozen=True)
class Groove:
    """Drum steps (sixteenths within a bar)."""

    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    open_hat: tuple[int, ...] = ()


GROOVES = (
    Groove(kick=(0, 8), snare=(4, 12), hat=tuple(range(0, 16, 2))),
    Groove(kick=(0, 6, 8), snare=(4, 12), hat=tuple(range(0, 14, 2)), open_hat=(14,)),
    Groove(kick=(0, 3, 8, 10), snare=(4, 12), hat=tuple(range(16))),
    Groove(kick=(0, 4, 8, 12), snare=(4, 12), hat=(0, 4, 8, 12), open_hat=(2, 6, 10, 14)),
    Groove(kick=(0, 10), snare=(8,), hat=tuple(range(0, 16, 2))),  # half time
)

# Melody rhythms: the sixteenth steps a bar's notes start on.
MELODY_RHYTHMS = (
    (0, 2, 4, 6, 8, 10, 12, 14),
    (0, 3, 6, 8, 10, 12),
    (0, 4, 6, 8, 12),
    (2, 4, 6, 10, 12, 14),
    (0, 2, 3, 6, 8, 11, 12),
    (0, 6, 8, 10, 14),
)


@dataclass(frozen=True)
class Notes:
    """Note events as parallel arrays; ``voice`` tells apart simultaneous lines (backing singers,
    open and closed hi-hats)."""

    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    voice: np.ndarray

    @classmethod
    def of(cls, events: Iterable[tuple[float, float, float, float, int]]) -> Notes:
        """From ``(onset, duration, pitch, velocity, voice)`` tuples, sorted by onset."""
        table = np.array(list(events), dtype=float).reshape(-1, 5)
        table = table[np.argsort(table[:, 0], kind="stable")]
        return cls(*table[:, :4].T, voice=table[:, 4].astype(int))

    def __len__(self) -> int:
        return len(self.onset)

    def select(self, mask: np.ndarray) -> Notes:
        return Notes(self.onset[mask], self.duration[mask], self.pitch[mask], self.velocity[mask], self.voice[mask])

    def humanized(self, rng: np.random.Generator, timing: float, dynamics: float) -> Notes:
        """Jitter onsets by ``timing`` s and velocities by ``dynamics`` (standard deviations)."""
        onset = np.maximum(0.0, self.onset + rng.normal(0.0, timing, len(self)))
        velocity = np.clip(self.velocity + rng.normal(0.0, dynamics, len(self)), 0.1, 1.0)
        return replace(self, onset=onset, velocity=velocity)


@dataclass(frozen=True)
class Score:
    tempo: float  # beats a minute
    tonic: int  # pitch class of the key, 0 = C
    mode: str  # "major" | "minor"
    progression: tuple[int, ...]  # chord root scale degrees, one a bar, cycled
    sections: tuple[str, ...]  # one label a bar: "intro", "verse" or "chorus"
    groove: Groove
    swing: float  # delay of off-beat sixteenths, as a fraction of a sixteenth
    singer: str  # a key of REGISTERS
    duration: float

    @property
    def step(self) -> float:
        return 15.0 / self.tempo

    @property
    def bar(self) -> float:
        return STEPS_PER_BAR * self.step

    @property
    def bars(self) -> int:
        return len(self.sections)

    def time(self, bar: int, step: float) -> float:
        swung = step + self.swing * (int(step) % 2)
        return (bar * STEPS_PER_BAR + swung) * self.step

    def bars_in(self, sections: Iterable[str]) -> list[int]:
        wanted = set(sections)
        return [b for b, section in enumerate(self.sections) if section in wanted]

    def section_starts(self) -> list[int]:
        return [b for b in range(self.bars) if b == 0 or self.sections[b] != self.sections[b - 1]]

    def pitch(self, degree: int, octave: int) -> int:
        """MIDI pitch of a scale degree (any integer, 0 = tonic) above C of ``octave``."""
        scale = SCALES[self.mode]
        return 12 * (octave + 1) + self.tonic + 12 * (degree // 7) + scale[degree % 7]

    def root(self, bar: int) -> int:
        return self.progression[bar % len(self.progression)]

    def chord(self, bar: int, octave: int, size: int = 3) -> list[int]:
        """Root-position chord of the bar, stacked in scale thirds."""
        root = self.root(bar)
        return [self.pitch(root + 2 * i, octave) for i in range(size)]

    def scale_pitches(self, low: int, high: int) -> np.ndarray:
        pitches = [self.pitch(d, -1) for d in range(7 * 11)]
        return np.array([p for p in pitches if low <= p <= high])


def compose(rng: np.random.Generator, duration: float) -> Score:
    """A random score of at least ``duration`` seconds."""
    tempo = float(np.round(rng.uniform(80.0, 140.0), 1))
    mode = str(rng.choice(list(SCALES)))
    bars = math.ceil(duration / (4 * 60.0 / tempo))
    intro = int(rng.integers(0, 3)) if bars >= 8 else 0
    sections = ["intro"] * intro
    kind = str(rng.choice(PLAYING))
    while len(sections) < bars:
        sections += [kind] * 4
        kind = "chorus" if kind == "verse" else "verse"
    progressions = PROGRESSIONS[mode]
    return Score(
        tempo=tempo,
        tonic=int(rng.integers(12)),
        mode=mode,
        progression=progressions[rng.integers(len(progressions))],
        sections=tuple(sections[:bars]),
        groove=GROOVES[rng.integers(len(GROOVES))],
        swing=float(rng.choice([0.0, 0.0, 0.15, 0.3])),
        singer=str(rng.choice(list(REGISTERS))),
        duration=duration,
    )


def melody(score: Score, rng: np.random.Generator) -> Notes:
    """The sung line: a scale random walk landing on chord tones on strong beats, in two-bar phrases
    whose second bar ends early, leaving a breath before the next phrase."""
    low, high = REGISTERS[score.singer]
    scale = score.scale_pitches(low, high)
    index = len(scale) // 2
    events = []
    for position, bar in enumerate(score.bars_in(PLAYING)):
        rhythm = MELODY_RHYTHMS[rng.integers(len(MELODY_RHYTHMS))]
        phrase_end = STEPS_PER_BAR if position % 2 == 0 else int(rng.choice([8, 10, 12]))
        steps = [s for s in rhythm if s < phrase_end - 1]
        chord = set(p % 12 for p in score.chord(bar, 4))
        lift = 2 if score.sections[bar] == "chorus" else 0
        for i, step in enumerate(steps):
            index = int(np.clip(index + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(scale) - 1))
            if step % 8 == 0:  # strong beat: the nearest chord tone
                tones = np.flatnonzero([p % 12 in chord for p in scale])
                index = int(tones[np.argmin(np.abs(tones - index - lift))])
            end = steps[i + 1] if i + 1 < len(steps) else phrase_end
            start = score.time(bar, step)
            velocity = rng.uniform(0.7, 1.0) if step % 4 == 0 else rng.uniform(0.55, 0.85)
            events.append((start, score.time(bar, end) - start, scale[index], velocity, 0))
    return Notes.of(events)


def backing(score: Score, rng: np.random.Generator) -> Notes:
    """Sustained three-part "oohs" on the chords of the choruses, one voice a chord tone."""
    low, high = REGISTERS[score.singer]
    events = []
    for bar in score.bars_in(["chorus"]):
        voicing = _voice_near(score.chord(bar, 4), (low + high) // 2 - 2)
        velocity = rng.uniform(0.5, 0.7)
        for voice, pitch in enumerate(voicing):
            events.append((score.time(bar, 0), 0.97 * score.bar, pitch, velocity, voice))
    return Notes.of(events)


def bassline(score: Score, rng: np.random.Generator) -> Notes:
    """Chord roots on the kick steps plus a few extra eighths, now and then a fifth or an octave."""
    legato = rng.uniform(0.45, 0.95)
    extra = [s for s in range(0, STEPS_PER_BAR, 2) if rng.random() < 0.3]
    steps = sorted(set(score.groove.kick) | set(extra))
    events = []
    for bar in score.bars_in(PLAYING):
        root = _into_range(score.pitch(score.root(bar), 1), 33, 45)
        for i, step in enumerate(steps):
            pitch = root
            if step % 8 and rng.random() < 0.25:
                pitch = root + int(rng.choice([7, 12]))
            end = steps[i + 1] if i + 1 < len(steps) else STEPS_PER_BAR
            start = score.time(bar, step)
            velocity = 1.0 if step == 0 else rng.uniform(0.7, 0.95)
            events.append((start, legato * (score.time(bar, end) - start), pitch, velocity, 0))
    return Notes.of(events)


# Chord rhythms: (onset step, length in steps) within a bar.
CHORD_RHYTHMS = {
    "sustain": ((0, 16),),
    "halves": ((0, 8), (8, 8)),
    "stabs": ((0, 2), (3, 2), (6, 2), (8, 2), (11, 2), (14, 2)),
    "offbeats": ((2, 1), (6, 1), (10, 1), (14, 1)),
    "eighths": tuple((s, 1.5) for s in range(0, 16, 2)),
}


def chords(
    score: Score,
    rng: np.random.Generator,
    *,
    rhythms: tuple[str, ...],
    centre: int,
    size: int = 3,
    sections: tuple[str, ...] = PLAYING,
    roots_only: bool = False,
) -> Notes:
    """Chords voiced near ``centre`` in one of ``rhythms``; ``roots_only`` for power-chord parts
    whose instrument adds the fifth and octave itself."""
    rhythm = CHORD_RHYTHMS[str(rng.choice(rhythms))]
    events = []
    for bar in score.bars_in(sections):
        if roots_only:
            voicing = [_into_range(score.pitch(score.root(bar), 2), centre - 6, centre + 5)]
        else:
            voicing = _voice_near(score.chord(bar, 4, size), centre)
        for step, length in rhythm:
            velocity = rng.uniform(0.6, 0.9)
            start = score.time(bar, step)
            for pitch in voicing:
                events.append((start, length * score.step, pitch, velocity, 0))
    return Notes.of(events)


def arpeggio(score: Score, rng: np.random.Generator, *, centre: int = 72) -> Notes:
    """Chord tones over two octaves, up, down or up and down, on eighths or sixteenths."""
    every = int(rng.choice([1, 2]))
    shape = str(rng.choice(["up", "down", "updown"]))
    length = every * rng.uniform(0.8, 2.0)
    events = []
    for bar in score.bars_in(PLAYING):
        tones = sorted(_voice_near(score.chord(bar, 4), centre - 6))
        tones = tones + [t + 12 for t in tones]
        order = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[shape]
        for i, step in enumerate(range(0, STEPS_PER_BAR, every)):
            velocity = rng.uniform(0.75, 1.0) if step % 4 == 0 else rng.uniform(0.5, 0.8)
            events.append((score.time(bar, step), length * score.step, order[i % len(order)], velocity, 0))
    return Notes.of(events)


def kick(score: Score, rng: np.random.Generator) -> Notes:
    return _humanized_drums(score, rng, _drum_events(score, score.groove.kick, PLAYING))


def snare(score: Score, rng: np.random.Generator) -> Notes:
    """The groove's backbeat and a three-note fill into every new section."""
    fills = [
        (score.time(bar, step), 0.0, 0.0, rng.uniform(0.4, 0.8), 0)
        for bar in range(score.bars - 1)
        if score.sections[bar + 1] != score.sections[bar] and score.sections[bar] in PLAYING
        for step in (13, 14, 15)
    ]
    return _humanized_drums(score, rng, _drum_events(score, score.groove.snare, PLAYING) + fills)


def hihat(score: Score, rng: np.random.Generator) -> Notes:
    """Closed (voice 0) and open (voice 1) hats, also in the intro."""
    sections = ("intro",) + PLAYING
    closed = _drum_events(score, score.groove.hat, sections, accent=0.35)
    opened = _drum_events(score, score.groove.open_hat, sections, accent=0.35, voice=1)
    return _humanized_drums(score, rng, closed + opened)


def crash(score: Score, rng: np.random.Generator) -> Notes:
    starts = [b for b in score.section_starts() if score.sections[b] in PLAYING]
    return Notes.of((score.time(b, 0), 0.0, 0.0, rng.uniform(0.7, 1.0), 0) for b in starts)


def _drum_events(
    score: Score,
    steps: tuple[int, ...],
    sections: tuple[str, ...],
    accent: float = 0.15,
    voice: int = 0,
) -> list[tuple[float, float, float, float, int]]:
    """Hits on ``steps`` in every bar of ``sections``, softer off the beat."""
    return [
        (score.time(bar, step), 0.0, 0.0, 1.0 if step % 4 == 0 else 1.0 - accent, voice)
        for bar in score.bars_in(sections)
        for step in steps
    ]


def _humanized_drums(score: Score, rng: np.random.Generator, events: list) -> Notes:
    timing = 0.004 + 0.004 * score.swing  # seconds of spread; swung grooves are looser
    return Notes.of(events).humanized(rng, timing, 0.08)


def _into_range(pitch: int, low: int, high: int) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _voice_near(chord: list[int], centre: int) -> list[int]:
    """Move each chord tone by octaves to within a fifth or so of ``centre`` (a close voicing)."""
    return sorted(_into_range(p, centre - 6, centre + 5) for p in chord)
