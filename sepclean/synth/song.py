"""One synthetic song: a score, the instrument parts chosen for it, rendered, panned and levelled.

The song keeps its parts apart (a stem is the sum of its parts) so that label noise can file a
part under the wrong stem. Levels: each part is set against the others of its stem, each stem to a
loudness drawn from a realistic range, then the whole song is scaled so that the mixture peaks
a few dB below full scale, which leaves headroom for contamination.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .. import STEMS
from . import dsp
from .instruments import INSTRUMENTS, instruments_of
from .music import Score, compose

# Stem loudness, RMS dBFS over the song, before the song is scaled to its peak.
STEM_RMS_DB = {"vocals": (-20.0, -14.0), "bass": (-22.0, -15.0), "drums": (-20.0, -14.0), "other": (-22.0, -15.0)}
MIXTURE_PEAK_DB = (-6.0, -3.0)


@dataclass(frozen=True)
class Part:
    stem: str
    audio: np.ndarray  # (2, frames) float64


@dataclass(frozen=True)
class Song:
    score: Score
    sample_rate: int
    parts: dict[str, Part]  # in mixing order

    @property
    def frames(self) -> int:
        return next(iter(self.parts.values())).audio.shape[-1]

    def parts_of(self, stem: str) -> list[str]:
        return [name for name, part in self.parts.items() if part.stem == stem]

    def stems(self, moved: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        """float64 stems, each the sum of its parts; ``moved`` files some parts under another stem."""
        moved = moved or {}
        stems = {stem: np.zeros((2, self.frames)) for stem in STEMS}
        for name, part in self.parts.items():
            stems[moved.get(name, part.stem)] += part.audio
        return stems


def choose_instruments(rng: np.random.Generator) -> list[str]:
    """Lead vocal (sometimes with backing oohs), one bass, a kit, and two to four other instruments."""
    chosen = ["lead_vocal"] + (["backing_vocals"] if rng.random() < 0.5 else [])
    chosen.append(str(rng.choice(instruments_of("bass"))))
    chosen += ["kick", "snare", "hihat"] + (["crash"] if rng.random() < 0.8 else [])
    others = instruments_of("other")
    chosen += [str(n) for n in rng.choice(others, size=rng.integers(2, 5), replace=False)]
    return chosen


def render_song(rng: np.random.Generator, duration: float, sample_rate: int) -> Song:
    frames = int(round(duration * sample_rate))
    score = compose(rng, duration)
    parts: dict[str, Part] = {}
    for name in choose_instruments(rng):
        instrument = INSTRUMENTS[name]
        mono = instrument.render(instrument.pattern(score, rng), score, rng, sample_rate, frames)
        mono = dsp.fade(mono, sample_rate)
        loudness = dsp.active_rms(mono, sample_rate)
        if loudness == 0.0:  # e.g. backing vocals in a song too short to reach a chorus
            continue
        gain = dsp.db_to_gain(rng.uniform(*instrument.level_db)) / loudness
        parts[name] = Part(instrument.stem, dsp.pan(gain * mono, rng.uniform(-instrument.pan, instrument.pan)))

    song = Song(score, sample_rate, parts)
    stems = song.stems()
    stem_gain = {stem: dsp.db_to_gain(rng.uniform(*STEM_RMS_DB[stem])) / dsp.rms(a) for stem, a in stems.items()}
    mixture = sum(stem_gain[stem] * a for stem, a in stems.items())
    peak_gain = dsp.db_to_gain(rng.uniform(*MIXTURE_PEAK_DB)) / np.abs(mixture).max()
    for part in parts.values():
        np.multiply(part.audio, peak_gain * stem_gain[part.stem], out=part.audio)  # in place: still our own arrays
    return song
