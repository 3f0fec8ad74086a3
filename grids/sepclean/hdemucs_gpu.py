"""HDemucs rows of the efficacy table, sized for one lent GPU and minutes, not hours: dirty, the clean
twin and the best blind cleaning (mlp at ``auto``), per stem, at 3 seeds.

The data of ``efficacy_cpu`` (mixed23 heavy, 40 songs, 40 test songs: the same data artifact), with
an HDemucs between the CPU preset and the paper's: ``tiny_hdemucs`` (depth 4, 1.5 s excerpts) at 32
channels and batches of 16, for 1,000 updates, its examples read by two loader processes. Per stem
because HDemucs trains one joint model: a (song, stem) pair flagged by the scores leaves only that
stem out of the song's examples, where per-target cleaning would have to drop the whole song from
the one model. Far from converged, and far from the paper's HDemucs (48 channels, depth 6, 108,000
updates); what it says is whether the cleaning that helps Open-Unmix also helps a joint
time-frequency model at equal updates.
``scripts/device/grid.sh`` runs it on a lent GPU machine, all 9 XPs side by side (under MPS), sized
to finish inside one call of the device tool (10 minutes). Two leases so far, neither finished an XP:
the first (1,500 updates, the loader in process, beside 7 Open-Unmix XPs, no MPS) trained at 1.4
updates a second; the second trained all 9 in 5 minutes (5.3 updates a second each, 48 together),
then ran out of time in evaluation, one museval process per XP (``--jobs 9`` allots each XP one of
the 16 cores, and museval takes the allotment). The GPU leaves the cores idle while it trains, so
each XP scores with 4 (``evaluate.workers``, outside the XP's signature).
"""

from ._explorers import CleaningExplorer

SEEDS = [0, 1, 2]
SETTING = {
    "size": "cpu",
    "data.synth.sizes.test": 40,
    "arch": "hdemucs",
    "archs.hdemucs.epochs": 20,
    "archs.hdemucs.epoch_updates": 50,
    "archs.hdemucs.overrides": ["dset.full_cv=false", "hdemucs.channels=32", "batch_size=16",
                                "misc.num_workers=2"],
    "evaluate.workers": 4,
}


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(SETTING)
    for seed in SEEDS:
        sub = launcher.bind(seed=seed)
        sub(method="dirty")
        sub(method="clean_twin")
        sub(method="mlp", ratio="auto", mode="per-stem")
