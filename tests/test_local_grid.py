"""``sepclean grid`` without running a grid: what ``--jobs N`` refuses, the threads it gives each XP, its
order, and a summary it cannot write (the ci grid run two at a time, killed and resumed, is in test_grid.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sepclean.cli import main


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_must_be_positive(jobs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    assert main(["grid", "sepclean.ci", "--jobs", jobs]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "jobs must be a positive number" in err, err
    assert not (tmp_path / "xps").exists()  # refused before any XP folder was made


@pytest.mark.parametrize("env, threads", [({"SEPCLEAN_THREADS": "1"}, 1), ({"SLURM_CPUS_PER_TASK": "1"}, 1),
                                          ({"SEPCLEAN_THREADS": "1", "SLURM_CPUS_PER_TASK": "2"}, 1)])
def test_an_xp_uses_the_threads_it_was_given(env, threads):
    code = "import torch; from sepclean.pipeline.shards import use_allotted_cpus; use_allotted_cpus(); " \
           "print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == threads


def test_a_long_grid_runs_seed_by_seed_with_each_seeds_dirty_first(tmp_path, monkeypatch):
    from sepclean.pipeline.local_grid import _order, xps

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    order = [(int(s.xp.cfg.seed), s.xp.cfg.method) for s in sorted(xps("sepclean.efficacy_cpu"), key=_order)]
    assert [seed for seed, _ in order] == sorted(seed for seed, _ in order)
    for seed in {seed for seed, _ in order}:
        methods = [method for s, method in order if s == seed]
        assert methods[0] == "dirty" and set(methods[:methods.count("dirty") + methods.count("clean_twin")]) \
            == {"dirty", "clean_twin"}, methods


def test_a_full_disk_for_the_summary_is_one_line_and_a_rerun_writes_it(tmp_path, monkeypatch):
    """Every XP of the grid done (histories written here), the summary's folder on a full disk: the
    grid reports the disk and exits 2; run again with space, it writes the summary and runs nothing."""
    import json

    from conftest import full_disk

    from sepclean.pipeline.local_grid import xps
    from sepclean.train import main as dora_main

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    sheeps = xps("sepclean.ci")
    for sheep in sheeps:
        sheep.xp.folder.mkdir(parents=True)
        sheep.xp.history.write_text(json.dumps([{"sdr": {"vocals": 1.0, "bass": 2.0, "avg": 1.5}, "kept": 8}]))
    command = [sys.executable, "-m", "sepclean", "grid", "sepclean.ci"]
    folder = tmp_path / "grid_results" / "sepclean.ci"
    full = full_disk(tmp_path / "grid_results", command)
    assert full.returncode == 2 and "Traceback" not in full.stdout + full.stderr, full.stderr
    assert full.stderr == (f"sepclean grid: error: cannot write {folder / 'summary.md'}: No space left on device; "
                           "the XPs' results are in their folders: run `sepclean grid sepclean.ci` again once it "
                           "can be written (nothing runs again), or read them with --table\n")
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(sheeps)} of them done, 0 to run" in rerun.stdout
    assert len(json.loads((folder / "summary.json").read_text())["xps"]) == len(sheeps)
