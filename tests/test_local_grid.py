"""``sepclean grid --jobs N`` without running a grid: what it refuses and the threads it gives each XP
(the ci grid run two at a time, killed and resumed, is in test_grid.py)."""

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
