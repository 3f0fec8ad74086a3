"""An XP's settings are checked before any work, and errors inside XPs reach the user as one line:
``sepclean.pipeline.checks`` on the dora main's real config, ``dora run`` in a fresh process, the
local grid runner, and damaged XP histories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sepclean.errors import PipelineError
from sepclean.experiments import local_grid
from sepclean.pipeline.checks import check
from sepclean.train import main

ROOT = Path(__file__).resolve().parents[1]


def config(*argv: str) -> dict:
    """The dora main's config with ``argv`` overrides, as the XP sees it."""
    return OmegaConf.to_container(main.get_xp(list(argv)).cfg, resolve=True)


@pytest.mark.parametrize("grid", ["sepclean.ci", "sepclean.demo", "sepclean.sdr_cpu", "sepclean.robust_cpu",
                                  "sepclean.efficacy_cpu", "sepclean.actions_cpu", "sepclean.rounds_cpu"])
def test_every_xp_of_the_grids_passes(grid):
    for sheep in local_grid.xps(grid):
        check(OmegaConf.to_container(sheep.xp.cfg, resolve=True))


@pytest.mark.parametrize("argv, message", [
    (["ratio=banana", "method=fad"], "ratio=banana: a fraction of the songs kept in (0, 1], auto, or OTHER@RATIO"),
    (["ratio=1.5", "method=fad"], "ratio=1.5: a fraction"),
    (["ratio=nope@auto", "method=random"], "ratio=nope@auto: 'nope' is no scoring method"),
    (["method=nope"], "method=nope: unknown cleaning condition (known: dirty, clean_twin, reference_only, "),
    (["arch=wavenet"], "arch=wavenet: unknown architecture (known: openunmix, hdemucs)"),
    (["mode=sideways", "method=fad"], "mode=sideways: unknown mode (known: unified, per-target, per-stem)"),
    (["data.synth.preset=nope"], "data.synth.preset=nope: unknown preset (known: clean, mixed23, "),
    (["data.synth.profile=huge"], "data.synth.profile=huge: unknown profile (known: tiny, "),
    (["data.synth.sizes.test=0"], "data.synth.sizes.test=0: a whole number >= 1"),
    (["seed=-1"], "seed=-1: a whole number >= 0"),
    (["rounds=0"], "rounds=0: a whole number >= 1"),
    (["archs.openunmix.epochs=-1"], "archs.openunmix.epochs=-1: a whole number >= 1"),
    (["archs.openunmix.epoch_updates=0"], "archs.openunmix.epoch_updates=0: a whole number >= 1"),
    (["arch=hdemucs", "archs.hdemucs.targets=[vocals,piano]"],
     "archs.hdemucs.targets: demucs separates drums, bass, other, vocals; not piano"),
    (["archs.openunmix.toolkit=nope"], "archs.openunmix.toolkit: no toolkit named 'nope'"),
    (["archs.openunmix.overrides=[hidden_size]"], "archs.openunmix.overrides: override 'hidden_size' is not KEY=VALUE"),
    (["method=attribute", "scoring.attribute.checkpoints=[]"],
     "scoring.attribute: attribute: checkpoints: give at least one epoch"),
    (["method=fad", "+scoring.fad.nope=1"], "scoring.fad: fad has no setting nope"),
    (["robust.truncate=2"], "robust.truncate must be a fraction in [0, 1); got 2"),
    (["+robust.nope=1"], "robust: unknown setting(s) nope (known: truncate, mask, warmup, relative)"),
    (["robust.warmup=-1"], "robust.warmup must be a whole number of epochs >= 0; got -1"),
    (["rounds=2", "method=fad"], "rounds=2: fad scores without a model, so every round would score the same"),
    (["rounds=2", "method=random", "ratio=fad@auto"], "rounds=2: fad scores without a model"),
    (["action=swap", "method=mlp"], "action must be one of drop, repair, relabel, relabel+repair, weight; got 'swap'"),
    (["action=relabel", "method=mlp"], "action=relabel needs a model"),
    (["action=weight", "method=mlp", "ratio=0.75"], "action=weight weighs every pair by the clean posterior"),
    (["action=repair", "method=dirty"], "action=repair acts on the pairs a scoring method flags"),
    (["action=repair", "method=oracle", "ratio=auto"], "action=repair needs a model: repair.model=reference"),
    (["action=repair", "method=oracle", "ratio=auto", "repair.model=/nowhere/run"],
     "repair.model=/nowhere/run: no such checkpoint"),
    (["action=repair", "method=oracle", "ratio=auto", "repair.model=reference", "repair.arch=wavenet"],
     "repair.arch=wavenet: no such architecture"),
    (["action=repair", "method=oracle", "ratio=auto", "repair.model=reference", "repair.fallback=hope"],
     "repair.fallback"),
    (["data.roots.train=[/nonexistent]"], "data.roots needs roots for valid, reference, test"),
])
def test_a_setting_that_cannot_work_is_named(argv, message):
    with pytest.raises(PipelineError) as error:
        check(config(*argv))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_robust_setting_that_is_no_block_is_named():
    cfg = config()
    cfg["robust"] = "banana"
    with pytest.raises(PipelineError, match=r"^robust=banana: a block of truncate, mask, warmup"):
        check(cfg)


def test_dora_run_with_a_bad_override_fails_at_once_with_one_line(tmp_path):
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "dora", "-P", "sepclean", "run", "method=fad", "ratio=banana"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.endswith("error: ratio=banana: a fraction of the songs kept in (0, 1], auto, or OTHER@RATIO "
                               "(e.g. fad@auto)\n") and run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "artifacts").exists()  # no data stage


def test_the_local_grid_checks_every_xp_before_running_any(tmp_path, monkeypatch):
    monkeypatch.setattr(main.dora, "dir", tmp_path)
    sheeps = local_grid.xps("sepclean.ci")
    bad = sheeps[-1]
    bad.xp.cfg.archs.openunmix.epochs = 0
    monkeypatch.setattr(local_grid, "xps", lambda name: sheeps)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("an XP was launched"))
    with pytest.raises(PipelineError, match=rf"^XP {bad.xp.sig} \(.*\): archs.openunmix.epochs=0: a whole number"):
        local_grid.run("sepclean.ci")


@pytest.mark.parametrize("history, problem", [
    ('[{"sdr": {"avg": 1.0}', "Expecting "),  # cut short
    ('[{"sdr": {"vocals": 1.0, "avg": "1.0"}}]', "sdr.avg='1.0' is not a number"),
    ('[{"sdr": {"vocals": 1.0, "avg": 1.0}, "kept": "8"}]', "kept='8' is not a number"),
])
def test_a_damaged_xp_history_is_named(tmp_path, monkeypatch, capsys, history, problem):
    from sepclean.cli import main as cli

    monkeypatch.setattr(main.dora, "dir", tmp_path)
    xp = local_grid.xps("sepclean.ci")[0].xp
    xp.folder.mkdir(parents=True)
    xp.history.write_text(history)
    for argv in (["grid", "sepclean.ci", "--table"], ["report", "sepclean.ci", "-o", str(tmp_path / "report")]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert f"error: {xp.history}: damaged XP history ({problem}" in err and err.count("\n") == 1, err
    xp.history.write_text('{"sdr": 1.0}')
    with pytest.raises(PipelineError, match="history.json: damaged XP history \\(not a list of metrics\\)"):
        local_grid.GridRun("sepclean.ci", local_grid.xps("sepclean.ci")).runs()
