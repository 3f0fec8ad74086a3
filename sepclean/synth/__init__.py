"""Synthetic multitrack songs with known contamination, in MUSDB18-HQ layout.

Real datasets cannot be shipped, so sepclean makes its own: songs whose four stems are sums of
named instrument parts playing one shared score (:mod:`.music`, :mod:`.instruments`), and a
training pool in which chosen songs carry label noise, bleeding or effects
(:mod:`.contamination`), recorded in ``contamination.json`` (:mod:`.dataset`). Pure numpy/scipy,
deterministic from a seed.

    from sepclean.synth import generate_dataset
    summary = generate_dataset("data/synth", preset="mixed23", profile="small", seed=0)
"""

from .contamination import KINDS, PRESETS, SEVERITIES
from .dataset import (
    CLEAN_TWIN,
    CONTAMINATION_FILE,
    GENERATOR_VERSION,
    PROFILES,
    SPLITS,
    Profile,
    Summary,
    generate_dataset,
    mixture_of,
    read_contamination,
)
from .effects import EffectsBackendError
from .song import Song, render_song

__all__ = [
    "CLEAN_TWIN",
    "CONTAMINATION_FILE",
    "EffectsBackendError",
    "GENERATOR_VERSION",
    "KINDS",
    "PRESETS",
    "PROFILES",
    "Profile",
    "SEVERITIES",
    "SPLITS",
    "Song",
    "Summary",
    "generate_dataset",
    "mixture_of",
    "read_contamination",
    "render_song",
]
