"""``sepclean grid`` without running a grid: what ``--jobs N`` refuses, the threads it gives each XP, its
order, and a summary it cannot write (the ci grid run two at a time, killed and resumed, is in test_grid.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sepclean.cli import main


@pytest.fixture(autouse=True)
def no_recorded_job_outlives_its_test():
    """The SLURM jobs a test records (fake ids such as 4242) register in submitit's process-wide
    watcher when dora reads them; a later test's grid listing would then ask sacct about them where
    a cluster is configured (CI starts one)."""
    from submitit import SlurmJob

    before = set(SlurmJob.watcher._registered)
    yield
    SlurmJob.watcher._registered.intersection_update(before)


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
    code = "import torch; from sepclean.cpus import use_allotted_cpus; use_allotted_cpus(); " \
           "print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == threads


def test_a_long_grid_runs_seed_by_seed_with_each_seeds_dirty_first(tmp_path, monkeypatch):
    from sepclean.experiments.local_grid import _order, xps

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    order = [(int(s.xp.cfg.seed), s.xp.cfg.method) for s in sorted(xps("sepclean.efficacy_cpu"), key=_order)]
    assert [seed for seed, _ in order] == sorted(seed for seed, _ in order)
    for seed in {seed for seed, _ in order}:
        methods = [method for s, method in order if s == seed]
        assert methods[0] == "dirty" and set(methods[:methods.count("dirty") + methods.count("clean_twin")]) \
            == {"dirty", "clean_twin"}, methods


def test_the_rounds_grid_pairs_two_rounds_with_efficacys_one_round_xps(tmp_path, monkeypatch):
    from sepclean.experiments.local_grid import xps

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    sheeps = xps("sepclean.rounds_cpu")
    efficacy = {s.xp.sig for s in xps("sepclean.efficacy_cpu")}
    two = sorted((s.xp.cfg.method, s.xp.cfg.seed) for s in sheeps if s.xp.cfg.rounds == 2)
    assert two == [(m, seed) for m in ("attribute", "refsdr") for seed in range(3)]
    assert all(s.xp.cfg.scoring.refsdr.model == "baseline" for s in sheeps if s.xp.cfg.method == "refsdr")
    shared = {s.xp.sig for s in sheeps if s.xp.cfg.rounds != 2 and s.xp.cfg.method != "refsdr"}
    assert len(shared) == 9 and shared <= efficacy  # one round of attribute and the controls: run once


def test_a_full_disk_for_the_summary_is_one_line_and_a_rerun_writes_it(tmp_path, monkeypatch):
    """Every XP of the grid done (histories written here), the summary's folder on a full disk: the
    grid reports the disk and exits 2; run again with space, it writes the summary and runs nothing."""
    import json

    from conftest import full_disk

    from sepclean.experiments.local_grid import xps
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


def test_an_xp_given_a_result_while_it_waited_is_not_run_again(tmp_path, monkeypatch):
    """Another runner, or results copied in from another machine, finished the queued XPs while the
    first ran: the queue skips them."""
    import json

    from sepclean.experiments import local_grid
    from sepclean.train import main as dora_main

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    sheeps = local_grid.xps("sepclean.ci")
    launched = []

    def finish_every_xp(main, sheep, env, own_log, tag):
        launched.append(sheep.xp.sig)
        for each in sheeps:
            each.xp.folder.mkdir(parents=True, exist_ok=True)
            each.xp.history.write_text(json.dumps([{"sdr": {"vocals": 1.0, "avg": 1.0}, "kept": 8}]))
        return subprocess.Popen([sys.executable, "-c", ""])

    monkeypatch.setattr(local_grid, "_launch", finish_every_xp)
    grid = local_grid.run("sepclean.ci", jobs=1)
    assert len(launched) == 1 and len(sheeps) > 1 and not grid.failed


def _submitted(sheeps, job_id: str = "4242") -> None:
    """``sheeps`` recorded as dora records XPs a ``dora grid`` submitted to SLURM."""
    import pickle

    import submitit

    for sheep in sheeps:
        sheep.xp.folder.mkdir(parents=True, exist_ok=True)
        job = submitit.SlurmJob(folder=sheep.xp.folder / "submitit", job_id=job_id)
        (sheep.xp.folder / sheep.xp.dora.shep.job_file).write_bytes(pickle.dumps((job, [], [])))


def test_outside_a_cluster_the_tables_ask_no_sacct_and_say_which_xps_have_no_result(tmp_path, monkeypatch, capfd):
    import json

    from sepclean.experiments import local_grid
    from sepclean.train import main as dora_main

    for name in ("SLURM_CONF", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    if local_grid.slurm_configured():
        pytest.skip("this machine has a SLURM configuration of its own")
    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    sheeps = local_grid.xps("sepclean.ci")
    _submitted(sheeps[:2])
    sheeps[2].xp.folder.mkdir(parents=True)
    sheeps[2].xp.history.write_text(json.dumps([{"sdr": {"vocals": 1.0, "bass": 2.0, "avg": 1.5}}]))
    assert main(["grid", "sepclean.ci", "--table"]) == 0
    out, err = capfd.readouterr()
    assert "sacct" not in out + err  # neither sacct's own errors nor submitit's "Bypassing sacct error"
    unrun = ", ".join(s.xp.sig for s in sheeps[3:])
    assert out.rstrip().endswith(
        f"5 of 6 XPs have no result (SLURM job UNKNOWN: {sheeps[0].xp.sig}, {sheeps[1].xp.sig}; not run: {unrun}). "
        "`dora grid sepclean.ci --retry` submits cancelled and failed XPs again (a plain rerun leaves them as they "
        "are). (No SLURM cluster is configured here to ask for their jobs' states.)"), out[-1000:]
    assert main(["report", "sepclean.ci", "-o", str(tmp_path / "report")]) == 0
    assert "5 of 6 XPs have no result (SLURM job UNKNOWN" in (tmp_path / "report" / "report.md").read_text()
    assert "sacct" not in "".join(capfd.readouterr())


def test_a_cancelled_xp_is_named_with_its_state_and_the_retry(tmp_path, monkeypatch):
    from dora.shep import Sheep

    from sepclean.experiments import local_grid
    from sepclean.train import main as dora_main

    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    _submitted(local_grid.xps("sepclean.ci")[:1])
    sheeps = local_grid.xps("sepclean.ci")[:2]  # dora reads the job records when it makes the sheeps
    monkeypatch.setattr(local_grid, "slurm_configured", lambda: True)
    monkeypatch.setattr(Sheep, "state", lambda self, mode="standard": "CANCELLED")  # what sacct says after scancel
    assert local_grid.without_result("sepclean.ci", sheeps) == (
        f"2 of 2 XPs have no result (SLURM job CANCELLED: {sheeps[0].xp.sig}; not run: {sheeps[1].xp.sig}). "
        "`dora grid sepclean.ci --retry` submits cancelled and failed XPs again (a plain rerun leaves them as they "
        "are).")


class _Payload:
    """What a planted ``job.pkl`` holds: unpickling it calls ``subprocess.call`` (touching a marker)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return subprocess.call, (["touch", self.marker],)


@pytest.mark.parametrize("planted", ["payload", "job id", "truncated"])
def test_a_planted_job_file_is_refused_by_name_and_runs_nothing(planted, tmp_path, monkeypatch, capsys):
    """dora unpickles ``<xp>/job.pkl`` in full whenever a grid is listed (dora.utils.try_load): a
    planted one ran its code in ``sepclean grid --table``, ``report`` and ``dora grid``."""
    import pickle

    import submitit

    from sepclean.experiments import local_grid
    from sepclean.train import main as dora_main

    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    xp = local_grid.xps("sepclean.ci")[0].xp
    xp.folder.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    job = submitit.SlurmJob(folder=xp.folder / "submitit", job_id="4242; touch x")
    content = {"payload": pickle.dumps((_Payload(marker), [], [])),
               "job id": pickle.dumps((job, [job], [])),
               "truncated": pickle.dumps((submitit.SlurmJob(folder=xp.folder, job_id="4242"), [], []))[:-9]}[planted]
    (xp.folder / xp.dora.shep.job_file).write_bytes(content)
    assert main(["grid", "sepclean.ci", "--table"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sepclean grid: error: {xp.folder / 'job.pkl'}: ") and err.count("\n") == 1, err
    assert {"payload": "refused to load: it names subprocess.call,", "job id": "not a job file dora wrote",
            "truncated": "not a readable pickle"}[planted] in err
    assert not marker.exists()


def test_off_a_terminal_the_monitor_counts_down_once_per_wait(capsys):
    """``dora grid -i N`` counted down to its next update once a second: a line a second in a log."""
    import inspect

    import dora.grid

    import sepclean.dora_compat  # noqa: F401  (installs dora.grid.print)

    source = inspect.getsource(dora.grid.run_grid)  # what the replacement relies on in dora 0.1.13
    assert "maybe_print = print" in source and "maybe_print(out, end='\\r')" in source
    for _ in range(2):  # what run_grid prints between two tables, twice
        dora.grid.print()
        for ela in range(12):
            out = f"Next update in {12 - ela:.0f} seconds       "
            dora.grid.print(dora.grid.colorize(out, "31") if 12 - ela < 10 else out, end="\r")
        dora.grid.print(" " * 60)
        dora.grid.print("the table")
    assert capsys.readouterr().out == "\nNext update in 12 seconds\nthe table\n" * 2


def test_off_a_terminal_dora_logs_without_escape_codes(capsys):
    import dora.log

    import sepclean.dora_compat  # noqa: F401  (installs dora.log.colorize)

    dora.log.simple_log("Parser", "Injecting argv [] from sig 0123abcd")  # every XP's log starts so
    assert capsys.readouterr().err == "Parser Injecting argv [] from sig 0123abcd\n"


def test_off_a_terminal_the_grid_table_has_no_escape_codes(tmp_path, monkeypatch, capsys):
    from sepclean.train import main as dora_main

    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    assert main(["grid", "sepclean.ci", "--table"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "| openunmix  dirty" in out


@pytest.mark.parametrize("used", [False, True], ids=["new", "used"])
def test_a_read_only_outputs_folder_is_one_line_naming_it(tmp_path, monkeypatch, used):
    from conftest import read_only

    from sepclean.experiments.local_grid import xps
    from sepclean.train import main as dora_main

    locked = tmp_path / "outputs"
    locked.mkdir()
    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(locked))
    if used:  # what an earlier run made: dora's folders, the grid's, the XPs'
        monkeypatch.setattr(dora_main.dora, "dir", locked)
        for sheep in xps("sepclean.ci"):
            sheep.xp.folder.mkdir(parents=True)
    run = read_only(locked, [sys.executable, "-m", "sepclean", "grid", "sepclean.ci", "--jobs", "2"])
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.stderr.startswith(f"sepclean grid: error: cannot write {locked}/") and run.stderr.endswith(
        f": Read-only file system (dora's folder dora.dir={locked})\n") and run.stderr.count("\n") == 1, run.stderr


def test_a_run_log_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from sepclean.experiments.local_grid import xps
    from sepclean.train import main as dora_main

    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path))
    monkeypatch.setattr(dora_main.dora, "dir", tmp_path)
    for sheep in xps("sepclean.ci"):
        (sheep.xp.folder / "run.log").mkdir(parents=True)  # no file can be opened there
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("an XP was launched"))
    assert main(["grid", "sepclean.ci", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sepclean grid: error: cannot write {tmp_path / 'xps'}/") and \
        err.endswith("/run.log: Is a directory\n") and err.count("\n") == 1, err


def test_patterns_may_follow_the_options(monkeypatch):
    from sepclean.errors import PipelineError
    from sepclean.experiments import local_grid

    asked = []

    def record(name, patterns, jobs):
        asked.append((name, patterns, jobs))
        raise PipelineError("recorded")

    monkeypatch.setattr(local_grid, "run", record)
    assert main(["grid", "sepclean.ci", "--jobs", "2", "fee8c2c3", "seed=5"]) == 2
    assert main(["grid", "sepclean.ci", "fee8c2c3", "--jobs", "2", "seed=5"]) == 2
    assert asked == [("sepclean.ci", ["fee8c2c3", "seed=5"], 2)] * 2
