"""Whether a larger validation split steadies early stopping: ``efficacy_cpu``'s dirty and mlp-at-``auto``
rows again with 10 validation songs instead of 4, 8 seeds (16 XPs).

Four validation songs decide every early stop and every best epoch there. Songs are seeded by
(data seed, split, index), so the 10 hold the 4 and the training and test songs are the same: the
only change is the validation set. What to read against ``efficacy_cpu``: the seeds' spread of
mlp's SDR and of its paired difference with dirty (the half-width of the interval), and where mlp
stops. Dirty trains to its last epoch at this budget, so it is the control that the split should
not move; mlp stops early, so it is the row a steadier split could tighten.
"""

from ._cpu import SETTING
from ._explorers import CleaningExplorer

SEEDS = list(range(8))


@CleaningExplorer
def explorer(launcher):
    launcher.bind_({**SETTING, "data.synth.sizes.valid": 10})
    for seed in SEEDS:
        sub = launcher.bind(arch="openunmix", seed=seed)
        sub(method="dirty")
        sub(method="mlp", ratio="auto", mode="per-target")
