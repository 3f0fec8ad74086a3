"""Run a dora grid on this machine, without SLURM: ``sepclean grid sepclean.mixed23_cpu``.

dora 0.1.13 has no local launcher (``dora grid`` needs ``srun``). This evaluates the grid with
dora's own machinery (``dora.grid.run_grid`` in dry-run mode: the same XPs, signatures and folders
as on a cluster), then runs each XP that has no result yet as ``dora run -f SIG`` in a fresh
process, one at a time, controls first (their trainings are what the other XPs reuse). Stages are
shared artifacts, so an interrupted grid resumes where it stopped when run again, and
``dora grid NAME --dry_run`` afterwards tables the same XPs with their metrics.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dora.grid import RunGridArgs, run_grid

from sepclean.errors import PipelineError
from sepclean.pipeline import results
from sepclean.pipeline.artifacts import atomic_write_text, write_json
from sepclean.pipeline.experiment import CONTROLS


@dataclass
class GridRun:
    name: str
    sheeps: list
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def runs(self) -> list[tuple[dict, dict]]:
        from omegaconf import OmegaConf

        out = []
        for sheep in self.sheeps:
            sheep.xp.link.load()
            if sheep.xp.link.history:
                out.append((OmegaConf.to_container(sheep.xp.cfg, resolve=True), sheep.xp.link.history[-1]))
        return out


def _main():
    from sepclean.train import main

    return main


def explorer(name: str):
    main = _main()
    module = f"{main.dora.grid_package}.{name}"
    try:
        grid = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            package = Path(importlib.import_module(main.dora.grid_package).__file__).parent
            known = sorted(str(p.relative_to(package).with_suffix("")).replace("/", ".")
                           for p in package.rglob("*.py") if not p.name.startswith("_"))
            raise PipelineError(f"no grid {name!r} (known: {', '.join(known)})") from None
        raise
    return grid.explorer


def xps(name: str) -> list:
    """The grid's XPs (dora's sheeps), as ``dora grid NAME --dry_run`` lists them."""
    return run_grid(_main(), explorer(name), name, args=RunGridArgs(dry_run=True, silent=True, monitor=False))


def _order(sheep) -> tuple:
    method = sheep.xp.cfg.method
    return (method not in CONTROLS, method != "dirty")


def describe(sheep) -> str:
    cfg = sheep.xp.cfg
    name = results.Condition.of(cfg).name
    what = name if cfg.method in CONTROLS else f"{name} {cfg.ratio} {cfg.mode}"
    return f"{cfg.arch} {what} seed {cfg.seed} ({sheep.xp.sig})"


def run(name: str, patterns: list[str] | None = None, log=print) -> GridRun:
    """Run every XP of grid ``name`` lacking a result; failed XPs are reported, the others still run."""
    main = _main()
    start = time.time()
    grid = GridRun(name, xps(name))
    chosen = grid.sheeps
    if patterns:
        chosen = [s for s in chosen if any(p in main.get_name(s.xp) or p == s.xp.sig for p in patterns)]
    todo = [s for s in sorted(chosen, key=_order) if not main.get_xp_history(s.xp)]
    log(f"grid {name}: {len(grid.sheeps)} XPs, {len(chosen)} chosen, {len(chosen) - len(todo)} of them done, "
        f"{len(todo)} to run")
    for index, sheep in enumerate(todo, 1):
        log(f"[{index}/{len(todo)}] {describe(sheep)}")
        main.init_xp(sheep.xp)
        command = [sys.executable, "-m", "dora", "-P", main.package, "run", "-f", sheep.xp.sig]
        status = subprocess.run(command, env=os.environ.copy()).returncode
        if status or not main.get_xp_history(sheep.xp):
            grid.failed.append(sheep.xp.sig)
            log(f"[{index}/{len(todo)}] FAILED (exit status {status}): {describe(sheep)}; "
                f"its log: {sheep.xp.folder}")
    grid.seconds = time.time() - start
    write_summary(grid)
    return grid


def write_summary(grid: GridRun) -> Path:
    """``<dora.dir>/grid_results/<name>/summary.{md,json}``: the condition table and every XP's metrics."""
    main = _main()
    folder = main.dora.dir / "grid_results" / grid.name
    runs = grid.runs()
    summary = results.summarise(runs)
    atomic_write_text(folder / "summary.md", f"# grid {grid.name}\n\n" + results.markdown(summary) + "\n")
    write_json(folder / "summary.json", {"grid": grid.name, "conditions": summary,
                                         "xps": [{"config": cfg, "metrics": m} for cfg, m in runs]})
    return folder


def table(name: str) -> str:
    return results.markdown(results.summarise(GridRun(name, xps(name)).runs()))


def show(name: str) -> None:
    """dora's own grid table (one row per XP), as ``dora grid NAME --dry_run`` prints it."""
    run_grid(_main(), explorer(name), name, args=RunGridArgs(dry_run=True, monitor=False))

