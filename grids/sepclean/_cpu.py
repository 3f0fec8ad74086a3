"""The setting of the ``*_cpu`` grids, shared so that a condition two grids launch is one XP (one
signature), run once: Open-Unmix tiny on the small mixed23 heavy pool (40 songs, half contaminated),
40 test songs, 1,500 optimizer updates per target (150 epochs of 10)."""

EPOCHS = 150
SETTING = {"size": "cpu", "data.synth.sizes.test": 40, "archs.openunmix.epochs": EPOCHS}


def seed_controls(launcher, seed: int, **bound):
    """Launch one seed's dirty and clean-twin XPs; return that seed's launcher and its launcher of
    per-target cleanings at ``ratio=auto``."""
    sub = launcher.bind(bound, arch="openunmix", seed=seed)
    sub(method="dirty")
    sub(method="clean_twin")
    return sub, sub.bind(ratio="auto", mode="per-target")
