"""The held-out contamination family: kinds no scorer is developed or tuned against.

    sepclean synth data/heldout --preset heldout --profile small --seed 0

A detector tuned on the kinds of :mod:`.contamination` (label noise, bleeding, the paper's effects)
may only have learnt those kinds. These three kinds, each a fault real multitrack collections
have, were fixed before any scorer was tuned and are used for one thing only: reporting how a
method does on corruption it was not built against (``benchmarks/bench_detection.py`` reports them
apart from the tuned datasets). Do not tune a scorer, a setting or a default on this preset; a
result on it that was looked at while tuning is no longer a held-out result.

- ``wrong_song``: stems replaced by the same stems of another song (another tempo, key and
  arrangement), as when an archive files a stem under the wrong session; the replacement is set to
  the loudness of the stem it replaces, the mixture re-summed. At most three stems, so the song
  keeps at least one of its own.
- ``bitcrush``: a damaged export: hard clipping ``clip_db`` below the stem's peak, then quantisation
  to ``bits`` bits of the clipped range and a sample-and-hold by ``hold`` samples (aliasing), the
  stem's RMS loudness restored.
- ``codec``: a low-bitrate lossy source: band-limited to ``cutoff_hz`` and, frame by frame, every
  STFT bin more than ``floor_db`` below the frame's loudest bin zeroed (the "spectral holes" and
  warbling of a starved MP3 encoder), the stem's RMS loudness restored.

Each has the signature of :data:`sepclean.synth.contamination.Contamination`; the number of stems
affected comes from the severity's ``effect_stems``, the strengths are drawn from the fixed ranges
below.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .. import STEMS
from . import dsp
from .song import Song, render_song

WRONG_SONG_MAX_STEMS = 3
BITCRUSH = {"clip_db": (12.0, 20.0), "bits": (4, 6), "hold": (2, 4)}
CODEC = {"cutoff_hz": (6000.0, 11000.0), "floor_db": (22.0, 32.0)}
CODEC_FFT, CODEC_HOP = 2048, 512


def wrong_song(song: Song, clean, rng: np.random.Generator, severity, backend):
    count = min(_count(rng, severity.effect_stems), WRONG_SONG_MAX_STEMS)
    chosen = _choose(rng, count)
    donor = render_song(rng, song.frames / song.sample_rate, song.sample_rate)
    donor_stems = donor.stems()
    stems = dict(clean)
    for stem in chosen:
        level = dsp.rms(donor_stems[stem])
        stems[stem] = donor_stems[stem] * (dsp.rms(clean[stem]) / level) if level > 0 else donor_stems[stem]
    score = donor.score
    return stems, {"replaced": chosen, "donor": {"tempo": round(score.tempo, 2), "tonic": score.tonic,
                                                 "mode": score.mode, "parts": sorted(donor.parts)}}


def bitcrush(song: Song, clean, rng: np.random.Generator, severity, backend):
    params = {"clip_db": round(float(rng.uniform(*BITCRUSH["clip_db"])), 2),
              "bits": int(rng.integers(*BITCRUSH["bits"], endpoint=True)),
              "hold": int(rng.integers(*BITCRUSH["hold"], endpoint=True))}
    stems = dict(clean)
    for stem in _choose(rng, _count(rng, severity.effect_stems)):
        stems[stem] = _restore_rms(clean[stem], crush(clean[stem], **params))
    return stems, params


def codec(song: Song, clean, rng: np.random.Generator, severity, backend):
    params = {"cutoff_hz": round(float(rng.uniform(*CODEC["cutoff_hz"]))),
              "floor_db": round(float(rng.uniform(*CODEC["floor_db"])), 2)}
    stems = dict(clean)
    for stem in _choose(rng, _count(rng, severity.effect_stems)):
        stems[stem] = _restore_rms(clean[stem], starve(clean[stem], song.sample_rate, **params))
    return stems, params


def crush(audio: np.ndarray, *, clip_db: float, bits: int, hold: int) -> np.ndarray:
    peak = float(np.abs(audio).max())
    if peak == 0.0:
        return audio.copy()
    level = peak * dsp.db_to_gain(-clip_db)
    clipped = np.clip(audio, -level, level) / level
    steps = 2 ** (bits - 1)
    quantised = np.round(clipped * steps) / steps
    held = np.repeat(quantised[..., ::hold], hold, axis=-1)[..., : audio.shape[-1]]
    return held * level


def starve(audio: np.ndarray, sample_rate: int, *, cutoff_hz: float, floor_db: float) -> np.ndarray:
    frequencies, _, spectrum = signal.stft(audio, sample_rate, nperseg=CODEC_FFT, noverlap=CODEC_FFT - CODEC_HOP)
    spectrum[..., frequencies > cutoff_hz, :] = 0.0
    magnitude = np.abs(spectrum)
    loudest = magnitude.max(axis=-2, keepdims=True)
    spectrum[magnitude < loudest * dsp.db_to_gain(-floor_db)] = 0.0
    _, out = signal.istft(spectrum, sample_rate, nperseg=CODEC_FFT, noverlap=CODEC_FFT - CODEC_HOP)
    return out[..., : audio.shape[-1]]


def _restore_rms(reference: np.ndarray, out: np.ndarray) -> np.ndarray:
    level = dsp.rms(out)
    return out * (dsp.rms(reference) / level) if level > 0 else out


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _choose(rng: np.random.Generator, count: int) -> list[str]:
    chosen = set(rng.choice(STEMS, size=min(count, len(STEMS)), replace=False))
    return [s for s in STEMS if s in chosen]


HELDOUT = {"wrong_song": wrong_song, "bitcrush": bitcrush, "codec": codec}
