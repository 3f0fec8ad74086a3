"""The paper's experiment, for Open-Unmix and HDemucs under identical cleaning, at GPU scale.

Synthetic mixed23 (the bench profile: 200 songs, 50 references, 50 test songs; heavy severity) by
default; real data with ``data.roots.*`` (e.g. MUSDB18-HQ train + SDXDB23 label noise and
bleeding as train, MUSDB18-HQ test as reference). ``mixed23_cpu`` is the same grid sized for CPUs.
"""

from ._explorers import CleaningExplorer, launch_auto, launch_conditions

ARCHS = ["openunmix", "hdemucs"]
METHODS = [("oracle", "unified"), ("random", "unified"), ("fad", "per-target"), ("mlp", "per-target"),
           ("attribute", "unified"), ("attribute", "per-target"), ("loss", "per-target")]
PER_STEM = [("attribute", "per-stem"), ("fad", "per-stem")]
"""Per-stem against per-target cleaning of the joint model, for the methods that helped SDR most
(Open-Unmix's per-target models train per stem already: its per-stem XPs would repeat per-target)."""
AUTO = [("fad", "per-target"), ("mlp", "per-target"), ("attribute", "per-target")]
"""At ``--ratio auto``, each beside the oracle and random controls at the size it chose."""
RATIOS = [0.5, 0.75, 0.9]
SEEDS = [0, 1, 2]


def conditions(launcher, size: str) -> None:
    launcher.bind_(size=size)
    launch_conditions(launcher, ARCHS, METHODS, RATIOS, SEEDS)
    launch_conditions(launcher, ["hdemucs"], PER_STEM, RATIOS, SEEDS, controls=())
    launch_auto(launcher, ARCHS, AUTO, SEEDS)


@CleaningExplorer
def explorer(launcher):
    conditions(launcher, "gpu")
