"""Known contamination of training songs: the kinds, the presets that mix them, their severities.

Kinds, as in the paper's datasets:

- ``label_noise`` (SDXDB23 label noise): instrument parts filed under a wrong stem (the guitar of
  ``other`` in ``vocals``), or two whole stems swapped. The mixture does not change.
- ``bleeding`` (SDXDB23 bleeding): attenuated, slightly delayed, sometimes filtered copies of other
  stems leak into a stem, as between microphones; the mixture is re-summed, so it holds the leak too.
- ``distortion``, ``reverb``, ``lowpass`` (EffectsDB): one effect with the paper's parameters on
  one or more stems, their RMS loudness restored afterwards.

The ``heldout`` preset draws from another family (:mod:`.heldout`: ``wrong_song``, ``bitcrush``,
``codec``), kept for reporting only: no scorer is developed or tuned against it.

A contamination never changes the song's mixture peak beyond 0.98: when it would, the changed
stems (only those) are turned down together, and the gain is recorded as ``headroom_gain_db``.

What a contaminated track records (the ``params`` of its entry in ``contamination.json``):

- label_noise: ``{"moves": [{"part", "from", "to"}...], "swaps": [[stem, stem]...]}``; moves are
  applied first, then the swaps in order.
- bleeding: ``{"leaks": [{"source", "destination", "gain_db", "delay_ms", "filter", "cutoff_hz"}...]}``,
  ``filter`` one of ``lowpass``/``highpass``/null (second-order Butterworth); every leak is taken
  from the clean source stem.
- distortion / reverb / lowpass: ``{"backend", <effect parameters>}``: ``drive_db``; ``room_size``,
  ``damping``, ``wet_level``, ``dry_level``, ``width``; ``cutoff_hz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import STEMS
from .effects import EffectsBackend, apply_effect, bleed
from .heldout import HELDOUT
from .song import Song

EFFECT_PARAMS = {
    "distortion": {"drive_db": 25.0},
    "reverb": {"room_size": 0.8, "damping": 0.8, "wet_level": 0.5, "dry_level": 0.4, "width": 1.0},
    "lowpass": {"cutoff_hz": 3000.0},
}
KINDS = ("label_noise", "bleeding", *EFFECT_PARAMS)
HELDOUT_KINDS = tuple(HELDOUT)
PRESETS = {"clean": (), "mixed23": ("label_noise", "bleeding"), "effects": tuple(EFFECT_PARAMS),
           "heldout": HELDOUT_KINDS}
DEFAULT_FRACTION = {"clean": 0.0, "mixed23": 0.5, "effects": 0.5, "heldout": 0.5}
HEADROOM = 0.98  # the highest mixture peak a contamination may produce


@dataclass(frozen=True)
class Severity:
    label_noise_operations: tuple[int, int]  # parts moved or stem pairs swapped (inclusive range)
    swap_share: float  # chance that an operation is a swap rather than a move
    bleed_destinations: tuple[int, int]  # stems receiving leaks
    bleed_sources: tuple[int, int]  # stems leaking into each of them
    bleed_gain_db: tuple[float, float]
    bleed_delay_ms: tuple[float, float]
    effect_stems: tuple[int, int]  # stems an effect is applied to


SEVERITIES = {
    "paper": Severity(
        label_noise_operations=(1, 1),
        swap_share=1 / 3,
        bleed_destinations=(1, 1),
        bleed_sources=(1, 2),
        bleed_gain_db=(-20.0, -6.0),
        bleed_delay_ms=(0.5, 5.0),
        effect_stems=(1, 2),
    ),
    "heavy": Severity(
        label_noise_operations=(2, 3),
        swap_share=1 / 3,
        bleed_destinations=(1, 3),
        bleed_sources=(2, 3),
        bleed_gain_db=(-10.0, -2.0),
        bleed_delay_ms=(0.5, 10.0),
        effect_stems=(2, 4),
    ),
}

Stems = dict[str, np.ndarray]
# (song, its clean float64 stems (not to be modified in place), rng, severity, backend) -> (stems, params)
Contamination = Callable[[Song, Stems, np.random.Generator, Severity, EffectsBackend], tuple[Stems, dict]]


def label_noise(
    song: Song, clean: Stems, rng: np.random.Generator, severity: Severity, backend: EffectsBackend
) -> tuple[Stems, dict]:
    moves: dict[str, str] = {}
    swaps: list[list[str]] = []
    for _ in range(_count(rng, severity.label_noise_operations)):
        unswapped = [s for s in STEMS if not any(s in pair for pair in swaps)]
        unmoved = [p for p in song.parts if p not in moves]
        if (rng.random() < severity.swap_share and len(unswapped) >= 2) or not unmoved:
            swaps.append(sorted(map(str, rng.choice(unswapped, size=2, replace=False)), key=STEMS.index))
        else:
            part = str(rng.choice(unmoved))
            moves[part] = str(rng.choice([s for s in STEMS if s != song.parts[part].stem]))
    stems = song.stems(moves)
    for a, b in swaps:
        stems[a], stems[b] = stems[b], stems[a]
    params = {
        "moves": [{"part": p, "from": song.parts[p].stem, "to": to} for p, to in moves.items()],
        "swaps": swaps,
    }
    return stems, params


def bleeding(
    song: Song, clean: Stems, rng: np.random.Generator, severity: Severity, backend: EffectsBackend
) -> tuple[Stems, dict]:
    stems = dict(clean)
    leaks = []
    for destination in _pick_stems(rng, severity.bleed_destinations):
        sources = [s for s in STEMS if s != destination]
        for source in rng.choice(sources, size=min(_count(rng, severity.bleed_sources), len(sources)), replace=False):
            filter_type = [None, "lowpass", "highpass"][rng.integers(3)]
            cutoff_range = {None: None, "lowpass": (1000, 8000), "highpass": (60, 600)}[filter_type]
            leak = {
                "source": str(source),
                "destination": destination,
                "gain_db": round(rng.uniform(*severity.bleed_gain_db), 2),
                "delay_ms": round(rng.uniform(*severity.bleed_delay_ms), 2),
                "filter": filter_type,
                "cutoff_hz": None if filter_type is None else round(float(np.exp(rng.uniform(*np.log(cutoff_range))))),
            }
            stems[destination] = stems[destination] + bleed(
                clean[leak["source"]],
                song.sample_rate,
                gain_db=leak["gain_db"],
                delay_ms=leak["delay_ms"],
                filter=leak["filter"],
                cutoff_hz=leak["cutoff_hz"],
            )
            leaks.append(leak)
    return stems, {"leaks": leaks}


def effect(name: str) -> Contamination:
    def apply(song: Song, clean: Stems, rng: np.random.Generator, severity: Severity, backend: EffectsBackend):
        stems = dict(clean)
        for stem in _pick_stems(rng, severity.effect_stems):
            stems[stem] = apply_effect(backend, name, stems[stem], song.sample_rate, EFFECT_PARAMS[name])
        return stems, {"backend": backend.name, **EFFECT_PARAMS[name]}

    return apply


CONTAMINATIONS: dict[str, Contamination] = {
    "label_noise": label_noise,
    "bleeding": bleeding,
    **{name: effect(name) for name in EFFECT_PARAMS},
    **HELDOUT,
}


def contaminate(
    song: Song, clean: Stems, kind: str, rng: np.random.Generator, severity: Severity, backend: EffectsBackend
) -> tuple[Stems, dict]:
    """The contaminated float32 stems of ``song`` (whose float64 stems are ``clean``) and their
    record ``{"kind", "stems", "params"}``.

    ``stems`` lists exactly the stems whose float32 audio differs from the clean song's; a draw
    that changes nothing (operations that undo each other) is drawn again.
    """
    clean32 = as_float32(clean)
    for _ in range(100):
        stems, params = CONTAMINATIONS[kind](song, clean, rng, severity, backend)
        changed = [s for s in STEMS if not np.array_equal(stems[s], clean[s])]
        gain = headroom_gain(stems, changed)
        if gain < 1.0:
            stems = {s: gain * a if s in changed else a for s, a in stems.items()}
            params["headroom_gain_db"] = round(float(20 * np.log10(gain)), 3)
        stems = as_float32(stems)
        affected = [s for s in STEMS if not np.array_equal(stems[s], clean32[s])]
        if affected:
            return stems, {"kind": kind, "stems": affected, "params": params}
    raise RuntimeError(f"could not draw a {kind} contamination that changes {sorted(song.parts)}")


def as_float32(stems: Stems) -> Stems:
    return {stem: stems[stem].astype(np.float32) for stem in STEMS}


def assign_kinds(count: int, preset: str, fraction: float, rng: np.random.Generator) -> list[str | None]:
    """The contamination kind of each of ``count`` songs: ``round(fraction * count)`` random songs,
    their kinds taking turns so the preset's kinds are as even as possible."""
    kinds = PRESETS[preset]
    contaminated = round(fraction * count) if kinds else 0
    assigned: list[str | None] = [None] * count
    for rank, song in enumerate(rng.permutation(count)[:contaminated]):
        assigned[song] = kinds[rank % len(kinds)]
    return assigned


def headroom_gain(stems: Stems, changed: list[str]) -> float:
    """The largest gain <= 1 of the changed stems that keeps the mixture peak within HEADROOM."""
    mixture = sum(stems.values())
    if not changed or np.abs(mixture).max() <= HEADROOM:
        return 1.0
    moving = sum(stems[s] for s in changed)
    fixed = mixture - moving
    # |fixed + g * moving| <= HEADROOM, for every sample where moving != 0
    sounding = moving != 0
    bounds = (HEADROOM - fixed[sounding] * np.sign(moving[sounding])) / np.abs(moving[sounding])
    return float(np.clip(bounds.min(), 0.0, 1.0)) * 0.999


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _pick_stems(rng: np.random.Generator, bounds: tuple[int, int]) -> list[str]:
    """Between ``bounds`` distinct stems, in STEMS order."""
    chosen = set(rng.choice(STEMS, size=min(_count(rng, bounds), len(STEMS)), replace=False))
    return [s for s in STEMS if s in chosen]
