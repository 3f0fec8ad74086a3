"""``sepclean demo``: the main job on the embedded default, the whole experiment on synthetic data.

Runs the grid ``sepclean.demo`` on this machine (``grids/sepclean/demo.py``): a small synthetic
mixed23 pool with known contamination; Open-Unmix and HDemucs (tiny presets) trained on the dirty
pool and on its clean twin, and retrained on what the oracle, per-song FAD and unlearning
attribution keep of it; every model evaluated with museval on the test songs. Prints dora's table of
the XPs and the condition table (SDR, what was removed, detection AUROC). Run it again to resume an
interrupted demo or to print the tables of a finished one.
"""

from __future__ import annotations

import os

GRID = "sepclean.demo"


def configure(parser) -> None:
    parser.add_argument("--out", help="dora folder of the XPs and artifacts (default: $SEPCLEAN_DORA_DIR or outputs)")


def run(args) -> int:
    if args.out:
        os.environ["SEPCLEAN_DORA_DIR"] = os.path.abspath(args.out)  # read by the dora main when imported
    from sepclean.commands import grid

    return grid.run(grid.Args(GRID))
