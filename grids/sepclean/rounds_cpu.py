"""Cleaning in rounds, in ``efficacy_cpu``'s setting (Open-Unmix tiny, mixed23 heavy, 40 songs, 40 test
songs, 1,500 updates per target), 3 seeds.

CCOM filtered MDX23's label noise in rounds: round 2 scores the whole pool again with the baseline
retrained on what round 1 kept, and keeps the same share (``rounds``). The paper's unlearning filter
(attribute, r = 0.75, per target) is the method: it scores with a model, so a cleaner model can
change its scores, and at one round it is ``efficacy_cpu``'s row (same signatures: run once). The
table pairs two rounds with one (``Δ plain drop``). mlp scores without a model, so rounds do not
apply to it (refused before any work).

Two rounds of attribution removed fewer contaminated pairs than one on every seed (docs/results.md).
CCOM filtered each stem with the round's model itself: ``refsdr`` with ``model=baseline`` scores a
stem by its SDR against the separation of the model the round before trained (iSeparate's
criterion at round 1), at the same ratio, one round and two.
"""

from ._cpu import SETTING, seed_controls
from ._explorers import CleaningExplorer

SEEDS = [0, 1, 2]
ATTRIBUTE = {"method": "attribute", "ratio": 0.75, "mode": "per-target"}
REFSDR = {"method": "refsdr", "scoring.refsdr.model": "baseline", "ratio": 0.75, "mode": "per-target"}


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(SETTING)
    for seed in SEEDS:
        sub, _ = seed_controls(launcher, seed)
        sub(ATTRIBUTE)
        sub({**ATTRIBUTE, "rounds": 2})
        sub(REFSDR)
        sub({**REFSDR, "rounds": 2})
