"""``sepclean grid NAME``: run a dora grid of experiments on this machine, then table it.

The same grid as ``dora grid NAME`` on a SLURM cluster (same XPs, signatures and folders); XPs run
controls first, ``--jobs N`` of them side by side. Run it again to resume an interrupted grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sepclean.errors import PipelineError

INTERMIXED = True  # `sepclean grid NAME --jobs 2 SIG SIG`: the patterns may follow the options


@dataclass
class Args:
    """What ``configure`` parses, for callers that run a grid without a command line (the demo)."""

    grid: str
    patterns: list[str] = field(default_factory=list)
    table: bool = False
    jobs: int = 1


def configure(parser) -> None:
    parser.add_argument("grid", help="grid name as dora takes it, e.g. sepclean.mixed23_cpu (grids/sepclean/*.py)")
    parser.add_argument("patterns", nargs="*", help="only XPs whose name contains one of these (or signatures)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="XPs run side by side, each with cores/N torch threads and its own run.log in its "
                             "folder (default 1: one XP with every core, its output here)")
    parser.add_argument("--table", action="store_true", help="only print the tables of what has run")


def run(args) -> int:
    from sepclean.cli import CommandError
    from sepclean.experiments import local_grid

    try:
        if args.table:
            local_grid.show(args.grid)
            print()
            print(local_grid.table(args.grid))
            return 0
        grid = local_grid.run(args.grid, args.patterns, args.jobs)
    except PipelineError as e:
        raise CommandError(str(e)) from None
    print()
    local_grid.show(args.grid)
    print()
    folder = grid.summary
    print((folder / "summary.md").read_text())
    print(f"{len(grid.sheeps)} XPs in {grid.seconds / 60:.1f} min; XP folders: "
          f"{local_grid._main().dora.dir / 'xps'}; condition table: {folder}/summary.md (and .json)")
    if grid.failed:
        print(f"{len(grid.failed)} XP(s) failed: {', '.join(grid.failed)}")
        return 1
    return 0
