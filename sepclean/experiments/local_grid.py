"""Run a dora grid on this machine, without SLURM: ``sepclean grid sepclean.mixed23_cpu``.

dora 0.1.13 has no local launcher (``dora grid`` needs ``srun``). This evaluates the grid with
dora's own machinery (``dora.grid.run_grid`` in dry-run mode: the same XPs, signatures and folders
as on a cluster), then runs each XP that has no result yet as ``dora run -f SIG`` in a fresh
process, controls first (their trainings are what the other XPs reuse). ``jobs`` XPs run side by
side, each with ``cores // jobs`` torch threads and its output in ``<xp folder>/run.log``: the
small models of these grids use two threads badly, so on two cores two one-thread XPs finish more
XPs per hour than one two-thread XP (``benchmarks/bench_jobs.py``). Stages are shared artifacts
under the store's locks, so two XPs that need the same stage make it once, an interrupted grid
resumes where it stopped when run again, and ``dora grid NAME --dry_run`` afterwards tables the
same XPs with their metrics.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dora.grid import RunGridArgs, run_grid

from sepclean.cpus import machine_cpus
from sepclean.errors import OutputError, PipelineError, writing
from sepclean.experiments import results
from sepclean.files import atomic_write, write_json
from sepclean.pipeline.checks import check
from sepclean.pipeline.experiment import CONTROLS

logger = logging.getLogger(__name__)


@dataclass
class GridRun:
    name: str
    sheeps: list
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1
    summary: Path | None = None
    """The folder of the summary ``run`` wrote."""

    def runs(self) -> list[tuple[dict, dict]]:
        from omegaconf import OmegaConf

        out = []
        for sheep in self.sheeps:
            history = xp_history(sheep.xp)
            if history:
                out.append((OmegaConf.to_container(sheep.xp.cfg, resolve=True), history[-1]))
        return out


def xp_history(xp) -> list[dict]:
    """An XP's metrics history (``history.json`` in its folder; empty when it has none yet). dora
    reads it with ``json.load`` unguarded: a damaged file is a traceback that names no file."""
    try:
        xp.link.load()
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PipelineError(f"{xp.history}: damaged XP history ({e}); delete it to run the XP again") from None
    history = xp.link.history
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise PipelineError(f"{xp.history}: damaged XP history (not a list of metrics); delete it to run the XP "
                            "again")
    problem = results.run_problem(dict(xp.cfg), history[-1]) if history else None
    if problem:
        raise PipelineError(f"{xp.history}: damaged XP history ({problem}); delete it to run the XP again")
    return history


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


UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}
"""What a folder that cannot be written raises."""


def xps(name: str) -> list:
    """The grid's XPs (dora's sheeps), as ``dora grid NAME --dry_run`` lists them."""
    main = _main()
    try:
        with unasked_without_cluster():
            return run_grid(main, explorer(name), name, args=RunGridArgs(dry_run=True, silent=True, monitor=False))
    except OSError as e:  # dora makes <dora.dir>/grids/<name> even to list a grid
        if e.errno not in UNWRITABLE:
            raise
        raise OutputError(f"cannot write {e.filename or main.dora.dir}: {e.strerror or e} "
                          f"(dora's folder dora.dir={main.dora.dir})") from None
    except ValueError as e:  # dora reads every XP's history.json with json.load, unguarded
        for path in sorted((main.dora.dir / main.dora.xps).glob(f"*/{main.dora.history}")):
            try:
                json.loads(path.read_text())
            except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise PipelineError(f"{path}: damaged XP history ({e}); delete it to run the XP again") from None
        raise


SLURM_CONFIG_FILES = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf")
"""Where slurm's commands find their cluster without ``$SLURM_CONF`` (the last: a configless node's copy)."""


def slurm_configured() -> bool:
    """Whether slurm's commands have a cluster to ask here: sacct is installed and has a configuration."""
    if shutil.which("sacct") is None:
        return False
    return bool(os.environ.get("SLURM_CONF") or os.environ.get("SLURM_JOB_ID")) or any(
        Path(path).is_file() for path in SLURM_CONFIG_FILES)


@contextmanager
def unasked_without_cluster():
    """Reading a grid's table where no SLURM cluster is configured, its XPs that a ``dora grid``
    submitted somewhere are not asked about: dora asks submitit for their jobs' states, every
    ``sacct`` call fails (four lines of sacct's errors and submitit's "Bypassing sacct error"
    warning, per call, several calls a table), and the states stay UNKNOWN, which is what the table
    shows without asking. Where a cluster is configured, nothing changes."""
    if slurm_configured():
        yield
        return
    from submitit import SlurmJob

    watcher = SlurmJob.watcher
    watcher.update = lambda: None  # submitit's one call to sacct
    try:
        yield
    finally:
        del watcher.update


def without_result(name: str, sheeps) -> str | None:
    """A line on the XPs of grid ``name`` that have no metrics, with their SLURM job's state where a
    job ran them: a cancelled, failed or timed-out job stays so when ``dora grid`` runs again."""
    missing: dict[str, list[str]] = {}
    with unasked_without_cluster():
        for sheep in sheeps:
            if not xp_history(sheep.xp):
                state = "not run" if sheep.job is None else f"SLURM job {sheep.state()}"
                missing.setdefault(state, []).append(sheep.xp.sig)
    if not missing:
        return None
    states = "; ".join(f"{state}: {', '.join(sigs)}" for state, sigs in sorted(missing.items()))
    count = sum(map(len, missing.values()))
    line = f"{count} of {len(sheeps)} XPs have no result ({states})."
    if any(state.startswith("SLURM job") for state in missing):
        line += (f" `dora grid {name} --retry` submits cancelled and failed XPs again (a plain rerun leaves "
                 "them as they are).")
        if not slurm_configured():
            line += " (No SLURM cluster is configured here to ask for their jobs' states.)"
    return line


def _order(sheep) -> tuple:
    """Seed by seed, controls first: a grid stopped part-way (they run for sessions) leaves whole
    seeds, each method with the dirty XP it is paired with."""
    method = sheep.xp.cfg.method
    return (int(sheep.xp.cfg.seed), method not in CONTROLS, method != "dirty")


def check_xp(sheep) -> None:
    """``checks.check`` on one XP of the grid, its error naming the XP."""
    from omegaconf import OmegaConf

    try:
        check(OmegaConf.to_container(sheep.xp.cfg, resolve=True))
    except PipelineError as e:
        raise PipelineError(f"XP {sheep.xp.sig} ({' '.join(sheep.xp.argv) or 'the defaults'}): {e}") from None


def describe(sheep) -> str:
    cfg = sheep.xp.cfg
    name = results.Condition.of(cfg).name
    what = name if cfg.method in CONTROLS else f"{name} {cfg.ratio} {cfg.mode}"
    return f"{cfg.arch} {what} seed {cfg.seed} ({sheep.xp.sig})"


def run(name: str, patterns: list[str] | None = None, jobs: int = 1) -> GridRun:
    """Run every XP of grid ``name`` lacking a result, ``jobs`` at a time; failed XPs are reported,
    the others still run."""
    if not isinstance(jobs, int) or jobs < 1:
        raise PipelineError(f"jobs must be a positive number of XPs run side by side, not {jobs!r}")
    main = _main()
    start = time.time()
    grid = GridRun(name, xps(name), jobs=jobs)
    chosen = grid.sheeps
    if patterns:
        chosen = [s for s in chosen if any(p in main.get_name(s.xp) or p == s.xp.sig for p in patterns)]
    todo = [s for s in sorted(chosen, key=_order) if not xp_history(s.xp)]
    for sheep in todo:  # every XP's settings, before the first one starts any work
        check_xp(sheep)
    threads = max(1, machine_cpus() // jobs)
    logger.info(f"grid {name}: {len(grid.sheeps)} XPs, {len(chosen)} chosen, {len(chosen) - len(todo)} of them done, "
                f"{len(todo)} to run" + (f", {jobs} at a time with {threads} thread(s) each" if jobs > 1 else ""))
    env = os.environ.copy()
    if jobs > 1:
        env.update(SEPCLEAN_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    queue, running = list(enumerate(todo, 1)), {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                index, sheep = queue.pop(0)
                if _has_result(sheep):  # run meanwhile by another runner, or its results copied in
                    logger.info(f"[{index}/{len(todo)}] has a result already, not run: {describe(sheep)}")
                    continue
                running[_launch(main, sheep, env, jobs > 1, f"[{index}/{len(todo)}]")] = (index, sheep)
            if not running:  # the rest of the queue had results already
                break
            finished = [p for p in running if p.poll() is not None] or [_wait_any(running)]
            for process in finished:
                index, sheep = running.pop(process)
                if process.returncode or not _has_result(sheep):
                    grid.failed.append(sheep.xp.sig)
                    logger.info(f"[{index}/{len(todo)}] FAILED (exit status {process.returncode}): "
                                f"{describe(sheep)}; its log: {sheep.xp.folder}" + ("/run.log" if jobs > 1 else ""))
                elif jobs > 1:
                    logger.info(f"[{index}/{len(todo)}] done: {describe(sheep)}")
    except KeyboardInterrupt:
        # Ctrl-C reaches the XPs too (same process group); a kill of this process alone does not
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in running:
            process.wait()
        raise
    grid.seconds = time.time() - start
    grid.summary = write_summary(grid)
    return grid


def _has_result(sheep) -> bool:
    """Whether a finished XP wrote its metrics; a damaged history is logged, naming the file, and
    counts as a failure (the other XPs still run)."""
    try:
        return bool(xp_history(sheep.xp))
    except PipelineError as e:
        logger.info(str(e))
        return False


def _launch(main, sheep, env: dict, own_log: bool, tag: str) -> subprocess.Popen:
    main.init_xp(sheep.xp)
    command = [sys.executable, "-m", "dora", "-P", main.package, "run", "-f", sheep.xp.sig]
    if not own_log:
        logger.info(f"{tag} {describe(sheep)}")
        return subprocess.Popen(command, env=env)
    path = Path(sheep.xp.folder) / "run.log"
    logger.info(f"{tag} {describe(sheep)}: log in {path}")
    with writing(path):
        out = open(path, "a")  # appended: a resumed XP keeps the log of its interrupted attempt
    with out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_any(running: dict) -> subprocess.Popen:
    while True:
        for process in running:
            if process.poll() is not None:
                return process
        time.sleep(0.5)


def write_summary(grid: GridRun) -> Path:
    """``<dora.dir>/grid_results/<name>/summary.{md,json}``: the condition table and every XP's metrics."""
    main = _main()
    folder = main.dora.dir / "grid_results" / grid.name
    runs = grid.runs()
    summary = results.summarise(runs)
    try:
        atomic_write(folder / "summary.md", f"# grid {grid.name}\n\n" + results.markdown(summary) + "\n")
        write_json(folder / "summary.json", {"grid": grid.name, "conditions": summary,
                                             "xps": [{"config": cfg, "metrics": m} for cfg, m in runs]})
    except OutputError as e:
        raise OutputError(f"{e}; the XPs' results are in their folders: run `sepclean grid {grid.name}` again "
                          "once it can be written (nothing runs again), or read them with --table") from None
    return folder


def table(name: str) -> str:
    """The condition table, then which XPs have no result and why, when some have none."""
    sheeps = xps(name)
    missing = without_result(name, sheeps)
    return results.markdown(results.summarise(GridRun(name, sheeps).runs())) + (f"\n\n{missing}" if missing else "")


def show(name: str) -> None:
    """dora's own grid table (one row per XP), as ``dora grid NAME --dry_run`` prints it."""
    for sheep in xps(name):
        xp_history(sheep.xp)  # dora reads the histories unguarded: a damaged one is named first
    with unasked_without_cluster():
        run_grid(_main(), explorer(name), name, args=RunGridArgs(dry_run=True, monitor=False))

