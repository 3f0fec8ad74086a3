"""The ci grid's smallest part, submitted to a real SLURM cluster by tests/test_slurm_grid.py: both
architectures' dirty models and one cleaning (``loss``, which reuses Open-Unmix's dirty model)."""

from ._explorers import CleaningExplorer
from .ci import TINY


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(TINY, seed=0)
    launcher(arch="openunmix", method="dirty")
    launcher(arch="hdemucs", method="dirty")
    launcher(arch="openunmix", method="loss", ratio=0.75, mode="per-target")
