"""Whether the ``efficacy_cpu`` figures hold for converged controls. There, dirty and the clean twin
still improve at their last epoch (1,500 updates per target: "NO (best epoch = last)") while the
cleaned rows stop early, so the gap and the share of it closed compare partly unconverged models.
Here every condition gets twice the updates (3,000 per target), equal across conditions: the two
controls, the exact per-(song, stem) drop oracle and mlp at ``auto``, 3 seeds (12 XPs, each about
twice an ``efficacy_cpu`` XP).
"""

from ._cpu import EPOCHS, SETTING, seed_controls
from ._explorers import CleaningExplorer

SEEDS = [0, 1, 2]


@CleaningExplorer
def explorer(launcher):
    launcher.bind_({**SETTING, "archs.openunmix.epochs": 2 * EPOCHS})
    for seed in SEEDS:
        _, cleaned = seed_controls(launcher, seed)
        cleaned(method="oracle")
        cleaned(method="mlp")
