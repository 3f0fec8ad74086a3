"""What ``make demo`` runs: both architectures, tiny presets, the small synthetic mixed23, dirty /
clean twin / oracle / fad / attribute at one ratio, one seed (about 15 minutes on 2 cores)."""

from ._explorers import CleaningExplorer, launch_conditions


@CleaningExplorer
def explorer(launcher):
    launcher.bind_(size="cpu")
    launch_conditions(launcher, ["openunmix", "hdemucs"], [("oracle", "unified"), ("fad", "per-target"),
                                                           ("attribute", "per-target")],
                      ratios=[0.75], seeds=[0], controls=("dirty", "clean_twin"))
