"""Stem-level actions beyond drop, in the ``robust_cpu`` setting: Open-Unmix tiny on the small mixed23
heavy pool (40 songs, half contaminated), 40 test songs, 1,500 updates per target, 3 seeds.

Dropping a flagged (song, stem) pair throws its audio away; ``weight`` keeps every pair and weighs
its loss by the clean posterior of the ``auto`` fit; ``repair`` replaces a flagged label by the
reference model's separation of the song's own mixture (the ``reference_only`` control's model,
trained on the 8 trusted songs), checked, the rest dropped (``sepclean.actions``). The rows: the two
controls that bound the gap (dirty, clean twin); the exact drop oracle (ratio ``auto`` per target
drops exactly the contaminated pairs); the oracle repair (pseudo-labels on exactly those pairs: the
ceiling of repair with this model); the best detector (mlp) repairing and weighting what it flags.
The dirty, clean twin, oracle drop and mlp drop XPs are ``robust_cpu``'s own (same signatures: run
once); each action's table row is paired with its detector's drop (``Δ plain drop``).
``relabel`` (same model) swaps flagged labels back among a song's stems, the rest dropped: the oracle
relabel against the oracle drop is what swapped stems recovered with their own audio are worth.
``relabel+repair`` relabels first and repairs what no permutation fixes (the repair check measured
19 of the oracle's 20 swapped pairs changed that way, 10 restored exactly, against 16 repaired and 10
relabelled alone). The control of repair: random pairs, as many as mlp flags per target, repaired by the same check (a
check that refuses clean labels leaves it random dropping).
The receiver of the residual: the rows above hand it to the first unrepaired stem (``repair.receiver``
``order``, the config's); the oracle repair and relabel+repair again with ``split`` (shares by least
squares against the model's estimates, ``sepclean repair``'s default) say what the rule is worth in
SDR (bench_repair_check: same pairs repaired, the receivers closer to the mixture's truth).
Self-refining (Koo et al.): the oracle and mlp repairs again with the dirty baseline as the model
(``repair.model baseline``), trained on all 40 songs where the reference model saw 8. Seed 0's mlp
repair with the reference model kept 27 of its 39 flagged pairs repaired and gained less than
dropping them; whether a model trained on more (dirty) audio makes better pseudo-labels is the
question these rows ask.
"""

from ._cpu import SETTING, seed_controls
from ._explorers import CleaningExplorer

SEEDS = [0, 1, 2]
REPAIR = {"action": "repair", "repair.model": "reference"}
WEIGHT = {"action": "weight"}
RELABEL = {"action": "relabel", "repair.model": "reference"}
RELABEL_REPAIR = {"action": "relabel+repair", "repair.model": "reference"}
SPLIT = {"repair.receiver": "split"}
SELF = {"action": "repair", "repair.model": "baseline"}


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(SETTING)
    for seed in SEEDS:
        _, cleaned = seed_controls(launcher, seed)
        cleaned(method="oracle")
        cleaned(method="mlp")  # what mlp's actions are paired with: its drop, robust_cpu's XP
        cleaned({"method": "oracle", **REPAIR})
        cleaned({"method": "mlp", **REPAIR})
        cleaned({"method": "mlp", **WEIGHT})
        cleaned({"method": "oracle", **RELABEL})
        cleaned({"method": "mlp", **RELABEL})
        cleaned({"method": "random", "ratio": "mlp@auto", **REPAIR})
        cleaned({"method": "oracle", **RELABEL_REPAIR})
        cleaned({"method": "mlp", **RELABEL_REPAIR})
        cleaned({"method": "oracle", **REPAIR, **SPLIT})
        cleaned({"method": "oracle", **RELABEL_REPAIR, **SPLIT})
        cleaned({"method": "oracle", **SELF})
        cleaned({"method": "mlp", **SELF})
