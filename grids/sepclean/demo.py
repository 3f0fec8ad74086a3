"""What ``make demo`` runs: both architectures (tiny presets) on the small synthetic mixed23 with
8 s songs, trained on the dirty pool, on its clean twin, and on what the oracle, per-song FAD and
unlearning attribution keep of it at one ratio, one seed; sized to finish within 20 minutes on two
cores. Too short a training to rank the methods: ``sepclean.mixed23_cpu`` is the experiment."""

from ._explorers import CleaningExplorer, launch_conditions


@CleaningExplorer
def explorer(launcher):
    launcher.bind_({"size": "cpu", "data.synth.sizes.duration": 8.0, "archs.openunmix.epochs": 20,
                    "archs.hdemucs.epochs": 3})
    launch_conditions(launcher, ["openunmix", "hdemucs"], [("oracle", "unified"), ("fad", "per-target"),
                                                           ("attribute", "per-target")],
                      ratios=[0.75], seeds=[0], controls=("dirty", "clean_twin"))
