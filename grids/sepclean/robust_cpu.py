"""Robust training against cleaning, in the ``sdr_cpu`` setting: Open-Unmix tiny on the small
mixed23 heavy pool (40 songs, half contaminated), 40 test songs, 1,500 updates per target, 3 seeds.

Robust training needs no scoring, so it is the comparator every cleaning must beat, and a partner
for each. The rows: the two controls that bound the gap (dirty, clean twin); robust training alone
(loss truncation of 1 example in each batch of 4, as CCOM trained; loss masking of a fifth of the
(example, frame) cells, as KUIELab trained); the exact drop oracle (ratio ``auto`` per target drops
exactly the (song, target) pairs whose stem was contaminated); the best detector at ``auto``, plain
and with truncation.

Truncation and masking as first run ranked the plain loss and lost 0.6 and 3 dB: a squared error
of magnitudes is largest where the target is loudest. The ``relative`` rows rank the loss against
the target's energy instead (``sepclean.robust``), the same fractions.
"""

from ._cpu import SETTING, seed_controls
from ._explorers import CleaningExplorer

SEEDS = [0, 1, 2]
TRUNCATE = {"robust.truncate": 0.25}
MASK = {"robust.mask": 0.2}
RELATIVE = {"robust.relative": True}


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(SETTING)
    for seed in SEEDS:
        sub, cleaned = seed_controls(launcher, seed)
        sub({"method": "dirty", **TRUNCATE})
        sub({"method": "dirty", **MASK})
        cleaned(method="oracle")
        cleaned(method="mlp")
        cleaned({"method": "mlp", **TRUNCATE})
        sub({"method": "dirty", **TRUNCATE, **RELATIVE})
        sub({"method": "dirty", **MASK, **RELATIVE})
