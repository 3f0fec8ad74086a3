"""HDemucs model sizes under the same cleaning: dirty, clean twin and the best cleaning.

Every size retrains on the very clean manifests the mixed23 grid uses (same scores, same filter
artifacts), so a scaling result goes through the same cleaning path. Set BEST from the mixed23
table.
"""

from ._explorers import CleaningExplorer, launch_conditions
from .mixed23 import SEEDS

BEST = [("attribute", "per-target")]
BEST_RATIO = [0.75]
CHANNELS = [24, 48, 64]


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(size="gpu")
    for channels in CHANNELS:
        sized = launcher.bind({"archs.hdemucs.overrides": [f"hdemucs.channels={channels}"]})
        launch_conditions(sized, ["hdemucs"], BEST, BEST_RATIO, SEEDS, controls=("dirty", "clean_twin"))
