"""The paper's EffectsDB experiment: half the pool with distortion, reverb or a low-pass."""

from ._explorers import CleaningExplorer, launch_conditions
from .mixed23 import ARCHS, METHODS, RATIOS, SEEDS


@CleaningExplorer
def explorer(launcher):
    launcher.bind_({"size": "gpu", "data.synth.preset": "effects"})
    launch_conditions(launcher, ARCHS, METHODS, RATIOS, SEEDS)
