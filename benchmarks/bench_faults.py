"""Issue 19's planted faults, planted again and run as a user runs them: one table of outcomes.

    python benchmarks/bench_faults.py [--only NAME ...] [--list] [--keep]

Each fault is planted on the tiny synthetic profile in a temporary folder, then the command a user
would run (``sepclean ...``, ``dora -P sepclean ...``, ``dora -P sepclean_plugins.demucs ...``,
``python -m sepclean_plugins.openunmix.train|umx ...``) runs in a fresh process with
``SEPCLEAN_DORA_DIR`` / ``SEPCLEAN_DEMUCS_DIR`` pointing into that folder. Outcomes:

- ``OK``: a user error is one line on stderr naming the problem, exit status 2 (or the exit status
  the command documents), no traceback; a fault that is no error (a moved outputs/) behaves right;
- ``CODE-EXECUTION``: a planted pickle created its marker file;
- ``TRACEBACK``: a traceback reached the user;
- ``SILENT``: exit 0 without doing the thing, or without saying so;
- ``LOST-WORK``: finished work rebuilt, or not found, or another tree read;
- ``WRONG``: none of those, but not right either (wrong status, the message does not name the
  problem, the noise is still there);
- ``SKIPPED``: cannot run here (the reason is printed);
- ``NOT-PLANTED``: planting failed (what failed is printed).

The faults come from issue 19's items 1-7 (its "47" counts some twice; the text names the 45
first ones below), plus two found after it: a planted ``job.pkl``, a read-only outputs/ for ``sepclean
grid``. Planting reuses the test suite's helpers
(``tests/conftest.py`` and the test modules). The shared pieces (the tiny data, one finished
Open-Unmix XP of the ``sepclean.ci`` grid, a vocals-only Open-Unmix run, a tiny HDemucs XP) are
made once, when a fault first needs them. About 15 minutes on two busy cores. Exit status 1 when
any fault is not OK or SKIPPED.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout's sepclean, and the tests' helpers
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402  (conftest's full_disk and read_only skip with pytest.skip)

BIN = Path(sys.executable).parent
SEPCLEAN, DORA, PYTHON = str(BIN / "sepclean"), str(BIN / "dora"), sys.executable
UMX_TRAIN = [PYTHON, "-m", "sepclean_plugins.openunmix.train"]
UMX = [PYTHON, "-m", "sepclean_plugins.openunmix.umx"]
GRID = "sepclean.ci"
WORK: Path  # the temporary folder of this run (set in main)

CODE, LOST, SILENT, TRACE, AS_WRITTEN, SLURM, NOISE = (
    "1 code execution", "2 lost work", "3 silent", "4 traceback", "5 fails as written", "6 slurm", "7 noise")
OK, SKIPPED, CODE_EXECUTION, LOST_WORK, SILENCE, TRACEBACK, WRONG, NOT_PLANTED = (
    "OK", "SKIPPED", "CODE-EXECUTION", "LOST-WORK", "SILENT", "TRACEBACK", "WRONG", "NOT-PLANTED")


@dataclass
class Fault:
    name: str
    category: str
    setup: Callable[[Path], SimpleNamespace]
    """Plants the fault in a fresh folder; returns what the command and the check need: ``env``
    (extra environment), ``marker`` (a planted payload's marker file), ``wrap`` (conftest's
    ``full_disk``/``read_only`` around the command), ``proc`` (a command setup already ran)."""
    command: Callable[[SimpleNamespace], list[str]] | None
    check: Callable[[SimpleNamespace, subprocess.CompletedProcess], tuple[str, str]]
    """(outcome, why) once the runner has found no marker and no traceback."""
    skip: str = ""


# --- running commands ----------------------------------------------------------------------------------

@contextmanager
def environ(env: dict):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(argv: list[str], env: dict | None = None, cwd: Path | None = None, timeout: int = 900,
        wrap=None) -> subprocess.CompletedProcess:
    with environ(env or {}):
        if wrap:
            return wrap(argv)
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd or WORK, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def checked(argv, **kwargs) -> subprocess.CompletedProcess:
    """``run`` for a setup step that must succeed."""
    proc = run(argv, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def error_line(text: str) -> str:
    """The line of stderr that says what went wrong (the last line naming an error), else the first."""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1 if errors else 0]


# --- checks ----------------------------------------------------------------------------------------------

def one_line(*words: str, status: int = 2):
    """The command fails with exit ``status`` and an error line naming every one of ``words``."""
    def check(c, proc):
        line = error_line(proc.stderr)
        if proc.returncode == 0:
            return SILENCE, "exit 0"
        if proc.returncode != status:
            return WRONG, f"exit {proc.returncode}, not {status}"
        missing = [w for w in words if w not in line]
        return (WRONG, f"the error does not name {missing}") if missing else (OK, "")
    return check


def succeeds(then: Callable[[SimpleNamespace, subprocess.CompletedProcess], str] = lambda c, p: ""):
    """Exit 0, and ``then`` finds nothing wrong (it returns what is wrong, or an empty string)."""
    def check(c, proc):
        if proc.returncode != 0:
            return WRONG, f"exit {proc.returncode}: {error_line(proc.stderr)}"
        problem = then(c, proc)
        return (WRONG, problem) if problem else (OK, "")
    return check


# --- shared pieces, made once --------------------------------------------------------------------------

@cache
def tiny():
    from conftest import make_synth_data

    return make_synth_data(WORK / "tiny")


def dora_env(folder: Path) -> dict:
    return {"SEPCLEAN_DORA_DIR": str(folder)}


@cache
def ci_xps() -> dict[str, object]:
    """The ci grid's XPs by "arch method" (their signatures do not depend on the folder)."""
    from sepclean.experiments import local_grid
    from sepclean.train import main

    main.dora.dir = WORK / "ci-sigs"
    return {f"{s.xp.cfg.arch} {s.xp.cfg.method}": s for s in local_grid.xps(GRID)}


def sheeps_in(dora_dir: Path) -> list:
    """The ci grid's XPs with their folders in ``dora_dir`` (where test_local_grid's ``_submitted`` writes)."""
    from sepclean.experiments import local_grid
    from sepclean.train import main

    main.dora.dir = dora_dir
    return local_grid.xps(GRID)


def sig(name: str) -> str:
    return ci_xps()[name].xp.sig


@cache
def store() -> SimpleNamespace:
    """A dora folder where the ci grid's Open-Unmix dirty XP has run (data, training, evaluation)."""
    folder = WORK / "store"
    proc = checked([SEPCLEAN, "grid", GRID, sig("openunmix dirty")], env=dora_env(folder))
    return SimpleNamespace(folder=folder, proc=proc)


def copy_of_store(dest: Path) -> Path:
    shutil.copytree(store().folder, dest, symlinks=True)
    return dest


def dirty_model(folder: Path) -> Path:
    """The model folder of the dirty training in a copy of the store."""
    history = json.loads((folder / "xps" / sig("openunmix dirty") / "history.json").read_text())
    return folder / "artifacts" / history[-1]["artifacts"]["model"]  # recorded relative to the store


@cache
def umx_run() -> SimpleNamespace:
    """A vocals-only Open-Unmix run folder (one target of four), trained for one epoch."""
    from test_training_resume import command

    folder = WORK / "umx_run"
    proc = checked(command(tiny(), folder, "--epochs", "1"))
    return SimpleNamespace(folder=folder, proc=proc)


def copy_of_umx_run(dest: Path) -> Path:
    shutil.copytree(umx_run().folder, dest)
    return dest


def demucs_argv(*extra: str) -> list[str]:
    from test_demucs import DORA_RUN, tiny as tiny_hdemucs

    return [DORA, *DORA_RUN[3:], *tiny_hdemucs(tiny(), *extra)]


def demucs_folder(dora_dir: Path, argv: list[str]) -> Path:
    """The XP folder ``dora -P sepclean_plugins.demucs run ARGV`` uses in ``dora_dir``."""
    from sepclean_plugins.demucs import train

    train.main.dora.dir = dora_dir
    return train.main.get_xp(argv[4:]).folder


@cache
def demucs_xp() -> SimpleNamespace:
    """A tiny HDemucs XP trained for one epoch of two batches."""
    folder = WORK / "demucs"
    argv = demucs_argv("epochs=1", "max_batches=2")
    checked(argv, env={"SEPCLEAN_DEMUCS_DIR": str(folder)})
    return SimpleNamespace(folder=folder, xp=demucs_folder(folder, argv))


def marker(folder: Path) -> Path:
    return folder / "payload-ran"


# --- 1. code execution -----------------------------------------------------------------------------------

def plant_demucs_state(folder: Path) -> SimpleNamespace:
    from test_demucs import plant

    argv = demucs_argv("epochs=1", "seed=9435")
    xp = demucs_folder(folder / "demucs", argv)
    xp.mkdir(parents=True)
    plant(xp / "checkpoint.th", marker(folder))
    return SimpleNamespace(argv=argv, env={"SEPCLEAN_DEMUCS_DIR": str(folder / "demucs")}, marker=marker(folder),
                           file=xp / "checkpoint.th")


def plant_grid_hdemucs_state(folder: Path) -> SimpleNamespace:
    """The ci grid's HDemucs dirty XP, killed once its Demucs XP folder exists; a payload planted as
    that XP's solver state, for the grid's resume to read."""
    from test_demucs import plant

    dora_dir = copy_of_store(folder / "outputs")
    command = [SEPCLEAN, "grid", GRID, sig("hdemucs dirty")]
    with environ(dora_env(dora_dir)):
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder,
                                 start_new_session=True)
    deadline = time.time() + 600
    while not list(dora_dir.glob("demucs/xps/*/.argv.json")) and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    (xp,) = [p.parent for p in dora_dir.glob("demucs/xps/*/.argv.json")]
    plant(xp / "checkpoint.th", marker(folder))
    return SimpleNamespace(argv=command, env=dora_env(dora_dir), marker=marker(folder), file=xp / "checkpoint.th")


def plant_umx_pth(folder: Path) -> SimpleNamespace:
    import torch
    from conftest import Payload

    run_folder = copy_of_umx_run(folder / "run")
    torch.save({"note": Payload(marker(folder))}, run_folder / "vocals.pth")
    song = tiny().manifest("test").tracks[0].path("mixture")
    return SimpleNamespace(argv=[*UMX, str(song), "--model", str(run_folder), "--outdir", str(folder / "out")],
                           marker=marker(folder), file=run_folder / "vocals.pth")


def plant_job_pkl(folder: Path) -> SimpleNamespace:
    import pickle

    from test_local_grid import _Payload

    xp = folder / "outputs" / "xps" / sig("openunmix dirty")
    xp.mkdir(parents=True)
    (xp / "job.pkl").write_bytes(pickle.dumps((_Payload(marker(folder)), [], [])))
    return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID, "--table"], env=dora_env(folder / "outputs"),
                           marker=marker(folder), file=xp / "job.pkl")


def names_file(*words: str, status: int = 2):
    """``one_line`` naming the planted file and ``words``."""
    return lambda c, proc: one_line(str(c.file), *words, status=status)(c, proc)


GRID_FAILED = 1
"""``sepclean grid``'s exit status when an XP failed (each failed XP prints its error line; the
others still run)."""


# --- 2. lost work -------------------------------------------------------------------------------------

def finished(folder: Path) -> dict[str, int]:
    """done.json of every finished artifact -> its mtime."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.glob("artifacts/*/*/done.json")}


def plant_moved_store(folder: Path) -> SimpleNamespace:
    """The store, finished Open-Unmix dirty XP and all, moved elsewhere; the loss XP, which scores
    with that dirty model, run in the new place. (The store is copied, and the original hidden while
    the command runs: nothing may be read where the store was.)"""
    dora_dir = copy_of_store(folder / "elsewhere")
    hidden = store().folder.rename(store().folder.with_name("store-hidden"))
    return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID, sig("openunmix loss")], env=dora_env(dora_dir),
                           dora_dir=dora_dir, before=finished(dora_dir), cleanup=lambda: hidden.rename(store().folder))


def plant_copied_store(folder: Path) -> SimpleNamespace:
    """A copy of the store (the original left in place), the loss XP run in the copy."""
    from conftest import tree_state

    dora_dir = copy_of_store(folder / "copy")
    return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID, sig("openunmix loss")], env=dora_env(dora_dir),
                           dora_dir=dora_dir, before=finished(dora_dir), original=tree_state(store().folder),
                           started=time.time())


def nothing_rebuilt(c, proc) -> tuple[str, str]:
    after = finished(c.dora_dir)
    rebuilt = sorted(k for k, mtime in c.before.items() if after.get(k) != mtime)
    history = c.dora_dir / "xps" / sig("openunmix loss") / "history.json"
    if proc.returncode != 0:
        return LOST_WORK, f"exit {proc.returncode}: {error_line(proc.stderr)}"
    if rebuilt:
        return LOST_WORK, f"rebuilt: {', '.join(rebuilt)}"
    if not history.is_file() or not math.isfinite(json.loads(history.read_text())[-1]["sdr"]["avg"]):
        return WRONG, "the loss XP has no SDR"
    return OK, f"{len(after) - len(c.before)} new stage(s), none rebuilt"


def reads_only_itself(c, proc) -> tuple[str, str]:
    from conftest import tree_state

    outcome, why = nothing_rebuilt(c, proc)
    if outcome != OK:
        return outcome, why
    if tree_state(store().folder) != c.original:
        return LOST_WORK, "the original tree changed"
    written = [p for p in c.dora_dir.rglob("*") if p.is_file() and p.stat().st_mtime > c.started]
    named = [p.relative_to(c.dora_dir) for p in written if p.suffix in (".json", ".jsonl")
             and str(store().folder) + "/" in p.read_text()]
    if named:  # stages' records, and the XP metrics the report reads
        return LOST_WORK, f"files naming the original: {', '.join(map(str, named))}"
    return OK, why


# --- 3. silent ------------------------------------------------------------------------------------------

def umx_training(*extra: str):
    def setup(folder):
        from test_training_resume import command

        return SimpleNamespace(argv=command(tiny(), folder / "run", *extra), output=folder / "run")
    return setup


def demucs_training(*extra: str):
    def setup(folder):
        return SimpleNamespace(argv=demucs_argv(*extra), env={"SEPCLEAN_DEMUCS_DIR": str(folder / "demucs")})
    return setup


def xp_with(*overrides: str):
    """``dora -P sepclean run OVERRIDES`` in a fresh dora folder."""
    def setup(folder):
        return SimpleNamespace(argv=[DORA, "-P", "sepclean", "run", *overrides], env=dora_env(folder / "outputs"),
                               dora_dir=folder / "outputs", started=time.time())
    return setup


def no_data_stage(*words: str):
    """``one_line(words)``, with no artifact made (refused before the data stage)."""
    def check(c, proc):
        outcome, why = one_line(*words)(c, proc)
        if outcome == OK and (c.dora_dir / "artifacts").exists():
            return WRONG, "refused only after the data stage"
        return outcome, why
    return check


def summary_of_report(folder: Path, damage: Callable[[Path], None]) -> SimpleNamespace:
    from test_report import build_grid

    summary = build_grid(folder, archs=("openunmix",), ratios=(0.75,), seeds=(0,))
    damage(summary)
    return SimpleNamespace(argv=[SEPCLEAN, "report", str(summary), "-o", str(folder / "report")], summary=summary,
                           report=folder / "report")


def all_nan(folder):
    from test_report import _set_sdr

    return summary_of_report(folder, lambda summary: _set_sdr(summary, float("nan")))


def nan_listed(c, proc) -> tuple[str, str]:
    if proc.returncode == 0:
        return SILENCE, "exit 0"
    text = (c.report / "report.md").read_text() if (c.report / "report.md").exists() else ""
    if proc.returncode != 1 or "No XP has a finite SDR" not in text or "was not trained" in text:
        return WRONG, f"exit {proc.returncode}; report.md does not say every SDR is NaN"
    return OK, ""


def plant_replaced_stem(folder: Path) -> SimpleNamespace:
    """A stem replaced by other audio after a scoring filled the cache, its size and mtime restored."""
    from conftest import copy_splits

    from sepclean import audio

    data = copy_splits(tiny(), folder / "copy", "train", "reference")

    def score(out):
        return [SEPCLEAN, "score", "fad", "--train", str(data.manifests["train"]), "--reference",
                str(data.manifests["reference"]), "-o", str(out), "--cache", str(folder / "cache"),
                "--store", str(folder / "store"), "--stems", "vocals,bass", "--quiet"]

    checked(score(folder / "first"))
    stem = data.root / "train" / "song_0003" / "vocals.wav"
    before = stem.stat()
    samples, rate = audio.read(stem)
    audio.write(folder / "new.wav", samples * 0.5, rate)
    os.replace(folder / "new.wav", stem)
    os.utime(stem, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stem.stat().st_size == before.st_size
    return SimpleNamespace(argv=score(folder / "second"), file=stem)


# --- 4. tracebacks ----------------------------------------------------------------------------------------

def roots_with(train: str):
    """The XP on real-data roots (the tiny splits), its training root replaced by ``train``."""
    def setup(folder):
        (folder / "empty").mkdir()
        root = tiny().root
        train_root = {"empty": folder / "empty", "missing": folder / "nowhere"}[train]
        return xp_with(f"data.roots.train=[{train_root}]", f"data.roots.valid=[{root / 'valid'}]",
                       f"data.roots.reference=[{root / 'reference'}]", f"data.roots.test=[{root / 'test'}]",
                       "archs.openunmix.epochs=1", "archs.openunmix.targets=[vocals]")(folder)
    return setup


def stored_xp(damage: Callable[[Path], Path], xp: str = "openunmix loss"):
    """A copy of the store, damaged by ``damage`` (which returns the file it damaged), and the ci
    grid's XP ``xp`` run in it."""
    def setup(folder):
        dora_dir = copy_of_store(folder / "outputs")
        return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID, sig(xp)], env=dora_env(dora_dir), file=damage(dora_dir))
    return setup


def corrupt_done_json(dora_dir: Path) -> Path:
    (path,) = dora_dir.glob("artifacts/data/*/done.json")
    path.write_text('{"summary": {"manif')
    return path


def truncated_model(dora_dir: Path) -> Path:
    path = dirty_model(dora_dir) / "vocals.pth"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def garbage_clean_manifest(folder: Path) -> SimpleNamespace:
    path = folder / "clean.json"
    path.write_text("garbage, not JSON")
    return SimpleNamespace(argv=demucs_argv("epochs=1", f"dset.clean_manifest={path}"),
                           env={"SEPCLEAN_DEMUCS_DIR": str(folder / "demucs")}, file=path)


def xp_history(text: str, command: list[str]):
    """An XP of the ci grid whose ``history.json`` holds ``text``; ``command`` lists the grid."""
    def setup(folder):
        history = folder / "outputs" / "xps" / sig("openunmix dirty") / "history.json"
        history.parent.mkdir(parents=True)
        history.write_text(text)
        argv = [a.replace("{out}", str(folder / "report")) for a in command]
        return SimpleNamespace(argv=argv, env=dora_env(folder / "outputs"), file=history)
    return setup


CUT_SHORT = '[{"sdr": {"avg": 1.0}'
"""An XP history cut short."""


def sdr_not_a_number(folder):
    def damage(summary):
        grid = json.loads(summary.read_text())
        grid["xps"][2]["metrics"]["sdr"]["avg"] = "banana"
        summary.write_text(json.dumps(grid))
    return summary_of_report(folder, damage)


def read_only_umx_output(folder):
    from conftest import read_only
    from test_training_resume import command

    output = folder / "run"
    output.mkdir()
    return SimpleNamespace(argv=command(tiny(), output), wrap=lambda argv: read_only(output, argv), file=output)


def read_only_demucs_dir(folder):
    from conftest import read_only

    locked = folder / "locked"
    locked.mkdir()
    return SimpleNamespace(argv=demucs_argv("epochs=1"), env={"SEPCLEAN_DEMUCS_DIR": str(locked)},
                           wrap=lambda argv: read_only(locked, argv), file=locked)


def full_synth(folder):
    from conftest import full_disk

    out = folder / "full"
    return SimpleNamespace(argv=[SEPCLEAN, "synth", str(out / "synth"), "--profile", "tiny"],
                           wrap=lambda argv: full_disk(out, argv), file=out)


def full_demucs_dir(folder):
    """dora's folder of the Demucs plugin on a file system with room for the XP's folder and logs,
    not for its solver state."""
    from conftest import full_disk

    dora_dir = folder / "demucs"
    argv = demucs_argv("epochs=1", "max_batches=2")
    return SimpleNamespace(argv=argv, env={"SEPCLEAN_DEMUCS_DIR": str(dora_dir)},
                           wrap=lambda argv: full_disk(dora_dir, argv, room_kib=256),
                           file=demucs_folder(dora_dir, argv) / "checkpoint.th")


def full_grid_results(folder):
    """Every XP of the ci grid done (histories written), the summary's folder on a full disk."""
    from conftest import full_disk

    dora_dir = folder / "outputs"
    for s in ci_xps().values():
        history = dora_dir / "xps" / s.xp.sig / "history.json"
        history.parent.mkdir(parents=True)
        history.write_text(json.dumps([{"sdr": {"vocals": 1.0, "bass": 2.0, "avg": 1.5}, "kept": 8}]))
    results = dora_dir / "grid_results"
    return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID], env=dora_env(dora_dir),
                           wrap=lambda argv: full_disk(results, argv), file=results / GRID / "summary.md")


def read_only_grid_outputs(folder):
    """An outputs/ folder an earlier grid made (dora's folders, the XPs'), now read-only."""
    from conftest import read_only

    dora_dir = folder / "outputs"
    for f in ("by_id", "orphans", "arrays", f"grids/{GRID}", *(f"xps/{s.xp.sig}" for s in ci_xps().values())):
        (dora_dir / f).mkdir(parents=True)
    return SimpleNamespace(argv=[SEPCLEAN, "grid", GRID, "--jobs", "2"], env=dora_env(dora_dir),
                           wrap=lambda argv: read_only(dora_dir, argv), file=dora_dir)


# --- 5. commands that fail as written ----------------------------------------------------------------------

def umx_separate(folder):
    song = tiny().manifest("test").tracks[0].path("mixture")
    return SimpleNamespace(argv=[*UMX, str(song), "--model", str(umx_run().folder), "--outdir", str(folder / "out")],
                           out=folder / "out")


def separated(c, proc) -> str:
    found = sorted(p.name for p in c.out.rglob("*.wav"))
    return "" if "vocals.wav" in found else f"no vocals.wav written (found {found})"


def evaluate_one_target(folder):
    return SimpleNamespace(argv=[SEPCLEAN, "evaluate", "--toolkit", "openunmix", "--checkpoint", str(umx_run().folder),
                                 "--test", str(tiny().manifests["test"]), "-o", str(folder / "eval"), "--workers",
                                 "1", "--sdr-only", "--quiet"], out=folder / "eval")


def attribute_one_target(folder):
    return SimpleNamespace(argv=[SEPCLEAN, "attribute", "--toolkit", "openunmix", "--checkpoint",
                                 str(umx_run().folder), "--train", str(tiny().manifests["train"]), "--reference",
                                 str(tiny().manifests["reference"]), "-o", str(folder / "scores"), "--mode",
                                 "linear", "--quiet"], out=folder / "scores")


def wrote(name: str):
    return lambda c, proc: "" if (c.out / name).exists() else f"no {name} in {c.out}"


def demucs_info(folder):
    xp = demucs_xp()
    return SimpleNamespace(argv=[DORA, "-P", "sepclean_plugins.demucs", "info", "-f", xp.xp.name, "-m"],
                           env={"SEPCLEAN_DEMUCS_DIR": str(xp.folder)}, xp=xp.xp)


# --- 6. SLURM ------------------------------------------------------------------------------------------------

def submitted(command: list[str]):
    """Two XPs of the ci grid recorded as submitted to SLURM (no cluster here), one finished."""
    def setup(folder):
        from test_local_grid import _submitted

        dora_dir = folder / "outputs"
        sheeps = sheeps_in(dora_dir)
        _submitted(sheeps[:2])
        history = dora_dir / "xps" / sheeps[2].xp.sig / "history.json"
        history.parent.mkdir(parents=True)
        history.write_text(json.dumps([{"sdr": {"vocals": 1.0, "bass": 2.0, "avg": 1.5}, "kept": 8}]))
        argv = [a.replace("{out}", str(folder / "report")) for a in command]
        return SimpleNamespace(argv=argv, env={**dora_env(dora_dir), "SLURM_CONF": "", "SLURM_JOB_ID": ""})
    return setup


def no_sacct(c, proc) -> str:
    text = proc.stdout + proc.stderr
    said = text.count("sacct:") + text.count("sacct error")  # sacct's own errors, submitit's warnings
    if said:
        return f"{said} line(s) of sacct's errors or submitit's warnings"
    return "" if "no result" in text or proc.args[1] == "report" else "the XPs without a result are not named"


# --- 7. noise ------------------------------------------------------------------------------------------------

def log_of(piece: Callable[[], SimpleNamespace]):
    """A command a shared piece already ran, its output read as a log file would hold it."""
    return lambda folder: SimpleNamespace(proc=piece().proc)


def quiet_log(c, proc) -> str:
    text = proc.stdout + proc.stderr
    bars, escapes = text.count("\r"), text.count("\x1b[")
    if bars or escapes:
        return f"{bars} carriage return(s), {escapes} escape code(s) in {len(text.splitlines())} lines"
    return ""


def says(pattern: str):
    return lambda c, proc: "" if re.search(pattern, proc.stdout + proc.stderr) else f"no line matching {pattern!r}"


def grid_monitor(folder):
    """``dora grid sepclean.ci --dry_run -i 0.05`` (an update every 3 s) into a log file for 20 s,
    two XPs recorded as submitted to SLURM (so the monitor waits for them)."""
    from test_local_grid import _submitted

    _submitted(sheeps_in(folder / "outputs")[:2])
    log = folder / "monitor.log"
    env = {**os.environ, **dora_env(folder / "outputs"), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen([DORA, "grid", GRID, "--dry_run", "-i", "0.05"], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    return SimpleNamespace(proc=subprocess.CompletedProcess(process.args, 0, text, ""), updates=text.count("Monitoring")
                           + text.count("Base name"))


def countdown_once(c, proc) -> str:
    countdowns, tables = proc.stdout.count("Next update in"), proc.stdout.count("Base name")
    if countdowns > tables:
        return f"{countdowns} countdown lines for {tables} table(s)"
    return quiet_log(c, proc)


def report_test(name: str):
    """What the report draws is pinned by a test of tests/test_report.py: run it."""
    return lambda folder: SimpleNamespace(argv=[PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                str(ROOT / "tests" / "test_report.py"), "-k", name], cwd=ROOT)


def fad_units(folder):
    from test_report import build_grid

    summary = build_grid(folder)
    return SimpleNamespace(argv=[SEPCLEAN, "report", str(summary), "-o", str(folder / "report")],
                           report=folder / "report")


def names_fad_units(c, proc) -> str:
    text = (c.report / "report.md").read_text()
    paragraph = next((p for p in text.split("\n\n") if "FAD" in p and "histogram" in p.lower()), "")
    return "" if re.search(r"unit|embedding space|distance", paragraph) else "no word on the FAD histograms' units"


# --- the faults -------------------------------------------------------------------------------------------

NOT_HERE_SLURM = "needs a SLURM cluster to scancel a job (tests/test_local_grid.py stubs sacct's CANCELLED state)"
NOT_HERE_APT = ("needs root, apt and a SLURM install (scripts/slurm/cluster.sh; tests/test_slurm_cluster.py holds "
                "the dpkg lock)")

FAULTS = [
    # 1. code execution
    Fault("demucs-resume-payload", CODE, plant_demucs_state, lambda c: c.argv, names_file("refused to load")),
    Fault("grid-hdemucs-resume-payload", CODE, plant_grid_hdemucs_state, lambda c: c.argv,
          names_file("refused to load", status=GRID_FAILED)),
    # 2. lost work
    Fault("moved-outputs", LOST, plant_moved_store, lambda c: c.argv, nothing_rebuilt),
    Fault("copied-outputs", LOST, plant_copied_store, lambda c: c.argv, reads_only_itself),
    # 3. silent
    Fault("umx-epochs-0", SILENT, umx_training("--epochs", "0"), lambda c: c.argv, one_line("epochs", "0")),
    Fault("umx-epochs-negative", SILENT, umx_training("--epochs", "-1"), lambda c: c.argv, one_line("epochs", "-1")),
    Fault("demucs-epochs-0", SILENT, demucs_training("epochs=0"), lambda c: c.argv, one_line("epochs", "0")),
    Fault("demucs-epochs-negative", SILENT, demucs_training("epochs=-1"), lambda c: c.argv, one_line("epochs", "-1")),
    Fault("xp-umx-epochs-negative", SILENT, xp_with("archs.openunmix.epochs=-1"), lambda c: c.argv,
          no_data_stage("archs.openunmix.epochs=-1")),
    Fault("report-all-nan", SILENT, all_nan, lambda c: c.argv, nan_listed),
    Fault("cache-size-mtime-restored", SILENT, plant_replaced_stem, lambda c: c.argv,
          names_file("no longer holds the audio its manifest hashed")),
    # 4. tracebacks
    Fault("ratio-banana", TRACE, xp_with("method=fad", "ratio=banana"), lambda c: c.argv,
          no_data_stage("ratio=banana")),
    Fault("method-nope", TRACE, xp_with("method=nope"), lambda c: c.argv, no_data_stage("method=nope")),
    Fault("preset-nope", TRACE, xp_with("data.synth.preset=nope"), lambda c: c.argv,
          no_data_stage("data.synth.preset=nope")),
    Fault("arch-wavenet", TRACE, xp_with("arch=wavenet"), lambda c: c.argv, no_data_stage("arch=wavenet")),
    Fault("checked-before-data-stage", TRACE, xp_with("method=fad", "mode=sideways", "data.synth.profile=small"),
          lambda c: c.argv, no_data_stage("mode=sideways")),
    Fault("empty-data-root", TRACE, roots_with("empty"), lambda c: c.argv, one_line("empty")),
    Fault("missing-data-root", TRACE, roots_with("missing"), lambda c: c.argv, one_line("nowhere")),
    Fault("corrupt-done-json", TRACE, stored_xp(corrupt_done_json), lambda c: c.argv,
          names_file(status=GRID_FAILED)),
    Fault("truncated-checkpoint", TRACE, stored_xp(truncated_model), lambda c: c.argv,
          names_file(status=GRID_FAILED)),
    Fault("garbage-clean-manifest", TRACE, garbage_clean_manifest, lambda c: c.argv, names_file()),
    Fault("report-damaged-history", TRACE, xp_history(CUT_SHORT, [SEPCLEAN, "report", GRID, "-o", "{out}"]),
          lambda c: c.argv, names_file("damaged XP history")),
    Fault("table-damaged-history", TRACE, xp_history(CUT_SHORT, [SEPCLEAN, "grid", GRID, "--table"]),
          lambda c: c.argv, names_file("damaged XP history")),
    Fault("summary-sdr-not-a-number", TRACE, sdr_not_a_number, lambda c: c.argv,
          lambda c, proc: one_line(str(c.summary), "is not a number")(c, proc)),
    Fault("umx-read-only-output", TRACE, read_only_umx_output, lambda c: c.argv, names_file("Read-only")),
    Fault("demucs-read-only-dora-dir", TRACE, read_only_demucs_dir, lambda c: c.argv, names_file("Read-only")),
    Fault("full-disk-synth", TRACE, full_synth, lambda c: c.argv, names_file("No space left on device")),
    Fault("full-disk-demucs-state", TRACE, full_demucs_dir, lambda c: c.argv,
          names_file("No space left on device")),
    Fault("full-disk-grid-summary", TRACE, full_grid_results, lambda c: c.argv, names_file("No space left on device")),
    Fault("umx-planted-pth", TRACE, plant_umx_pth, lambda c: c.argv, names_file("refused to load")),
    # 5. commands that fail as written
    Fault("umx-targets-from-separator-json", AS_WRITTEN, umx_separate, lambda c: c.argv, succeeds(separated)),
    Fault("evaluate-one-target-run", AS_WRITTEN, evaluate_one_target, lambda c: c.argv,
          succeeds(wrote("summary.json"))),
    Fault("attribute-one-target-run", AS_WRITTEN, attribute_one_target, lambda c: c.argv,
          succeeds(wrote("scores.csv"))),
    Fault("demucs-info-shows-xp", AS_WRITTEN, demucs_info, lambda c: c.argv,
          succeeds(lambda c, proc: "" if f"Folder is {c.xp}" in proc.stdout + proc.stderr  # dora logs to stderr
                   else "the XP's folder is not shown")),
    # 6. SLURM
    Fault("scancel-then-rerun", SLURM, None, None, None, skip=NOT_HERE_SLURM),
    Fault("sacct-warnings-table", SLURM, submitted([SEPCLEAN, "grid", GRID, "--table"]), lambda c: c.argv,
          succeeds(no_sacct)),
    Fault("sacct-warnings-report", SLURM, submitted([SEPCLEAN, "report", GRID, "-o", "{out}"]), lambda c: c.argv,
          succeeds(no_sacct)),
    Fault("cluster-sh-apt-lock", SLURM, None, None, None, skip=NOT_HERE_APT),
    # 7. noise
    Fault("grid-log-bars-and-escapes", NOISE, log_of(store), None, succeeds(quiet_log)),
    Fault("umx-final-line", NOISE, log_of(umx_run), None,
          succeeds(says(r"epoch\(s\) trained; best epoch \d+ .*model: "))),
    Fault("data-stage-line", NOISE, log_of(store), None, succeeds(says(r"\[data\].*songs; manifests"))),
    Fault("grid-monitor-countdown", NOISE, grid_monitor, None, succeeds(countdown_once)),
    Fault("report-sdr-axes", NOISE, report_test("sdr_panels_span_half_a_db"), lambda c: c.argv, succeeds()),
    Fault("report-legend-lines", NOISE, report_test("single_points_get_no_legend_line"), lambda c: c.argv,
          succeeds()),
    Fault("report-fad-units", NOISE, fad_units, lambda c: c.argv, succeeds(names_fad_units)),
    # found after the issue: dora's job.pkl unpickled in full whenever a grid is listed
    Fault("dora-job-pkl-payload", CODE, plant_job_pkl, lambda c: c.argv, names_file("refused to load")),
    # found after the issue: `sepclean grid --jobs N` on a read-only outputs/
    Fault("grid-read-only-outputs", TRACE, read_only_grid_outputs, lambda c: c.argv, names_file("Read-only")),
]


# --- the runner -----------------------------------------------------------------------------------------

def attempt(fault: Fault) -> tuple[str, str, float]:
    """(outcome, the error line of stderr or why, seconds)."""
    if fault.skip:
        return SKIPPED, fault.skip, 0.0
    folder = WORK / "faults" / fault.name
    folder.mkdir(parents=True)
    start = time.time()
    try:
        c = fault.setup(folder)
    except pytest.skip.Exception as e:
        return SKIPPED, str(e), time.time() - start
    except Exception as e:  # the fault could not be planted: a bug here, or in what planting runs
        return NOT_PLANTED, f"{type(e).__name__}: {str(e)[-300:]}", time.time() - start
    try:
        proc = c.proc if fault.command is None else run(fault.command(c), env=getattr(c, "env", None),
                                                          cwd=getattr(c, "cwd", folder), wrap=getattr(c, "wrap", None))
        seconds = time.time() - start
        marker_file = getattr(c, "marker", None)
        if marker_file is not None and marker_file.exists():
            return CODE_EXECUTION, f"{marker_file} created", seconds
        line = error_line(proc.stderr)
        if "Traceback" in proc.stdout + proc.stderr:
            return TRACEBACK, line, seconds
        outcome, why = fault.check(c, proc)
        return outcome, "; ".join(filter(None, [why, line])), seconds
    finally:
        getattr(c, "cleanup", lambda: None)()


def main() -> int:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these faults")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    unknown = set(args.only or ()) - {f.name for f in FAULTS}
    if unknown:
        parser.error(f"no fault named {', '.join(sorted(unknown))} (see --list)")
    if args.list:
        for number, fault in enumerate(FAULTS, 1):
            skipped = f"  (skipped: {fault.skip})" if fault.skip else ""
            print(f"{number:2d}  {fault.category:18s}  {fault.name}{skipped}")
        return 0

    WORK = Path(tempfile.mkdtemp(prefix="sepclean-faults-"))
    os.environ["SEPCLEAN_CACHE"] = str(WORK / "cache")  # the embedding cache stays out of the user's
    rows = []
    try:
        for fault in faults:
            number = FAULTS.index(fault) + 1
            print(f"[{number}/{len(FAULTS)}] {fault.name} ...", file=sys.stderr, flush=True)
            outcome, line, seconds = attempt(fault)
            rows.append((number, fault, outcome, line, seconds))
            print(f"    {outcome} ({seconds:.0f} s) {line[:200]}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"kept {WORK}", file=sys.stderr)
        else:
            shutil.rmtree(WORK, ignore_errors=True)

    print("| # | fault | category | outcome | s | stderr (error line) / why |")
    print("|---:|---|---|---|---:|---|")
    for number, fault, outcome, line, seconds in rows:
        print(f"| {number} | {fault.name} | {fault.category} | {outcome} | {seconds:.0f} | "
              f"{line[:160].replace('|', '/')} |")
    totals = {}
    for _, _, outcome, _, _ in rows:
        totals[outcome] = totals.get(outcome, 0) + 1
    print("\n" + ", ".join(f"{outcome}: {count}" for outcome, count in sorted(totals.items())))
    return int(any(outcome not in (OK, SKIPPED) for _, _, outcome, _, _ in rows))


if __name__ == "__main__":
    sys.exit(main())
