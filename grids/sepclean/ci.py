"""The smallest whole grid, for the test suite: both architectures, two methods, one seed, on the
tiny synthetic profile with the fewest updates that still train. ``loss`` scores with Open-Unmix's
dirty model, which the Open-Unmix ``dirty`` XP trains too: the grid trains it once."""

from ._explorers import CleaningExplorer, launch_conditions

TINY = {"size": "cpu", "data.synth.profile": "tiny", "archs.openunmix.epochs": 2,
        "archs.openunmix.targets": ["vocals", "bass"], "archs.hdemucs.epochs": 1, "archs.hdemucs.epoch_updates": 2,
        "evaluate.workers": 1}
"""The ci grids' settings: tiny data, two Open-Unmix targets, a few updates."""


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(TINY)
    launch_conditions(launcher, ["openunmix", "hdemucs"], [("loss", "per-target"), ("fad", "per-target")],
                      ratios=[0.75], seeds=[0], controls=("dirty",))
