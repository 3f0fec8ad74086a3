"""The SDR table that two CPU cores can run in about two hours: Open-Unmix only, 3 seeds.

Open-Unmix tiny on the small mixed23 heavy pool (40 songs, half contaminated, 8 references), 40
test songs, all four targets, every condition 1,500 optimizer updates per target (150 epochs of 10:
``size=cpu`` gives 400, over whose last 10 epochs the dirty vocals model's validation loss still
fell 8%, so that runs stopped there compare unconverged models; its first 18 XPs took 105 minutes here).
The conditions are the ones that answer "does blind cleaning help the model": the two controls
that bound the gap (dirty, clean twin), the oracle and random controls at the paper's ratio (the
size the unlearning filter keeps too: 30 of 40 songs per target), the paper's unlearning
filter (per-target, r = 0.75), and the two best detectors at ``--ratio auto``. ``mixed23_cpu``
is the whole grid (216 XPs: HDemucs, every ratio, the controls matched to ``auto``) for machines
with the time.
"""

from ._cpu import SETTING
from ._explorers import CleaningExplorer, launch_conditions

METHODS = [("oracle", "unified"), ("random", "unified"), ("attribute", "per-target")]
AUTO = [("fad", "per-target"), ("mlp", "per-target")]
SEEDS = [0, 1, 2]


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(SETTING)
    launch_conditions(launcher, ["openunmix"], METHODS, [0.75], SEEDS, controls=("dirty", "clean_twin"))
    launch_conditions(launcher, ["openunmix"], AUTO, ["auto"], SEEDS, controls=())
