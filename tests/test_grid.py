"""A whole grid, for real: ``sepclean grid sepclean.ci`` (Open-Unmix and HDemucs, ``loss`` and
``fad`` at one ratio, one seed, on the tiny profile) run in fresh processes as a user runs it,
killed once mid-training and run again two XPs at a time (``--jobs 2``); then what the XPs report is checked against what their
models really trained on, and ``dora grid --dry_run`` tables the same XPs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
GRID = "sepclean.ci"


def sepclean_grid(dora_dir: Path, *args, **kwargs):
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(dora_dir)}
    return subprocess.Popen([sys.executable, "-m", "sepclean", "grid", GRID, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The ci grid, killed (SIGKILL, whole process group) during its first training, then resumed
    with two XPs side by side."""
    dora_dir = tmp_path_factory.mktemp("dora")
    first = sepclean_grid(dora_dir, start_new_session=True)
    deadline = time.time() + 600
    while not list(dora_dir.glob("artifacts/train/*/model/*.chkpnt")) and time.time() < deadline:
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = sepclean_grid(dora_dir, "--jobs", "2")
    output = second.communicate(timeout=1800)[0]
    summary = json.loads((dora_dir / "grid_results" / GRID / "summary.json").read_text())
    return dora_dir, second.returncode, output, summary


def test_grid_finishes_after_a_kill_with_a_result_for_every_xp(grid):
    dora_dir, status, output, summary = grid
    assert status == 0, output
    # the XPs run side by side write their output to their own run.log, the resumed one included
    assert any("resuming an interrupted attempt" in log.read_text() for log in dora_dir.glob("xps/*/run.log"))
    assert len(summary["xps"]) == 6
    for xp in summary["xps"]:
        sdr = xp["metrics"]["sdr"]
        assert math.isfinite(sdr["avg"]), xp
    conditions = {(c["arch"], c["method"]) for c in summary["conditions"]}
    assert conditions == {(a, m) for a in ("openunmix", "hdemucs") for m in ("dirty", "loss", "fad")}
    assert "| openunmix | fad | 0.75 | per-target |" in output  # the condition table is printed
    assert "2 at a time with 1 thread(s) each" in output


def test_each_xp_run_side_by_side_has_its_own_log(grid):
    dora_dir = grid[0]
    logs = sorted(dora_dir.glob("xps/*/run.log"))
    assert len(logs) == 6
    for path in logs:
        assert f"XP {path.parent.name} done:" in path.read_text(), path


def test_running_it_again_runs_nothing(grid):
    dora_dir = grid[0]
    again = sepclean_grid(dora_dir)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output
    assert "6 XPs, 6 chosen, 6 of them done, 0 to run" in output


def test_dora_tables_the_same_xps_with_their_metrics(grid):
    dora_dir = grid[0]
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(dora_dir)}
    shown = subprocess.run([sys.executable, "-m", "dora", "grid", GRID, "--dry_run"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    for xp in grid[3]["xps"]:
        assert f"{xp['metrics']['sdr']['avg']:.2f}" in shown.stdout


def _artifacts(dora_dir: Path, stage: str) -> list[Path]:
    return sorted(p.parent for p in (dora_dir / "artifacts" / stage).glob("*/done.json"))


def test_xps_that_share_a_baseline_or_scores_make_them_once(grid):
    dora_dir = grid[0]
    # Open-Unmix dirty is the dirty XP's model and both loss XPs' baseline: trained once. Every
    # other training is an XP's own: 6 trainings for 6 XPs.
    assert len(_artifacts(dora_dir, "train")) == 6
    # Identical cleaning across architectures: one scores table and one clean manifest per method.
    assert len(_artifacts(dora_dir, "scores")) == 2 and len(_artifacts(dora_dir, "filter")) == 2
    loss = next(p for p in _artifacts(dora_dir, "scores") if json.loads((p / "spec.json").read_text())
                ["config"]["method"] == "loss")
    baseline = json.loads((loss / "spec.json").read_text())["inputs"][-1]
    dirty = [p for p in _artifacts(dora_dir, "train")
             if json.loads((p / "done.json").read_text())["summary"]["checkpoint"] == baseline]
    assert len(dirty) == 1


def test_the_clean_manifest_changes_what_each_model_trained_on(grid):
    dora_dir, _, _, summary = grid
    for p in _artifacts(dora_dir, "train"):
        spec = json.loads((p / "spec.json").read_text())
        tracks = json.loads((p / "done.json").read_text())["summary"]["tracks"]
        clean_key = spec["inputs"][2]
        if clean_key is None:
            assert all(len(ids) == 8 for ids in tracks.values())  # the whole tiny pool
            continue
        clean = [CleanManifest.load(f / "clean.json") for f in _artifacts(dora_dir, "filter")]
        for unit, ids in tracks.items():
            kept = [m.kept(None if unit == "all" else unit) for m in clean]
            assert ids in kept, (unit, ids, kept)  # exactly one clean manifest's list for that unit
            assert len(ids) < 8
    # What the Open-Unmix trainer itself logged, read off its run folder.
    for xp in summary["xps"]:
        if xp["config"]["arch"] == "openunmix" and xp["config"]["method"] != "dirty":
            assert xp["metrics"]["kept"] < 8
    logged = [json.loads(f.read_text()) for f in dora_dir.glob("artifacts/train/*/model/vocals.json")]
    assert sorted(len(h["sepclean"]["train_tracks"]) for h in logged) == sorted(
        [8] + [len(CleanManifest.load(f / "clean.json").kept("vocals")) for f in _artifacts(dora_dir, "filter")])


def test_the_report_of_the_grid(grid, tmp_path):
    """``sepclean report sepclean.ci``: every figure a valid PNG of real content, every condition
    named, each removed-songs table exactly what its XP's clean manifest drops."""
    from test_report import PLOTS, _removed_tables, assert_real_png

    dora_dir, _, _, summary = grid
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(dora_dir)}
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "sepclean", "report", GRID, "-o", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in PLOTS:
        assert_real_png(out / name)
    text = (out / "report.md").read_text()
    for row in summary["conditions"]:
        assert f"| {row['arch']} | {row['method']} | {'-' if row['ratio'] is None else row['ratio']} |" in text
    # The ci grid has one ratio, one seed and no clean twin: the report says so.
    assert "One ratio only (0.75)" in text and "One seed per condition" in text and "No clean_twin XP" in text
    assert "report.html" in done.stdout and (out / "report.html").stat().st_size > 10_000
    tables = _removed_tables(text)
    assert sorted(tables) == ["fad, ratio 0.75, per-target (seed 0)", "loss, ratio 0.75, per-target (seed 0)"]
    for xp in summary["xps"]:
        art = xp["metrics"]["artifacts"]  # relative to the XP's store
        if art["clean"] is None:
            continue
        store = dora_dir / "artifacts"
        pool = Manifest.load(store / art["data"] / "manifests" / "train.jsonl").ids
        dropped = set(pool) - set(CleanManifest.load(store / art["clean"]).kept(None))
        rows = tables[f"{xp['config']['method']}, ratio 0.75, per-target (seed 0)"]
        assert sorted(row[0] for row in rows) == sorted(dropped)
        assert all(row[1] in ("no",) or row[1].startswith("yes: ") for row in rows)  # ground truth known
