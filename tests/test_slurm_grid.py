"""Grids and attribution shards on a real SLURM cluster (scripts/slurm/cluster.sh), as a user runs them.

- ``dora grid sepclean.ci_slurm``, plain dora: every XP is submitted through submitit, runs as a SLURM
  job, and the explorer's table (monitored until every XP is done) shows each XP COMPLETED with its SDR.
- The attribution stage in 2 shards: shard 0 in the asking process, shard 1 as a job array, killed
  (SIGKILL) after its first finished piece; it is submitted again, resumes without recomputing that
  piece, and the merged scores equal an unsharded run's. A shard that raises is not resubmitted; if it
  is the one computed here, the array is cancelled. Linear mode's song shards run as two arrays (the
  preconditioner's partial sums, then the blocks of delta L) and merge to the unsharded scores.
- dora's orphan check, which calls ``os.getlogin()``, works without a terminal (sepclean.dora_compat).

The cluster: the one ``.ci/run`` started (``$SLURM_CONF`` set and answering), else one this module
starts with its own state folder and ports and stops at the end. Skipped, saying why, only where
neither can be: not root (cluster.sh starts munged as the munge user and slurmd as root).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sepclean.pipeline.shards import Shards, score_shard
from sepclean.scorers import Baseline, ScoringTask, create
from sepclean.scores import ScoreTable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm" / "cluster.sh"
GRID = "sepclean.ci_slurm"


def _answers(env: dict) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster():
    """The environment (``SLURM_CONF``) of a running cluster, and its partition."""
    if os.environ.get("SLURM_CONF") and _answers(dict(os.environ)):
        yield dict(os.environ)
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM cluster: $SLURM_CONF is not set to a running one (.ci/run starts one), and this "
                    "module cannot start one when not root (cluster.sh starts munged as the munge user and "
                    "slurmd as root); run `scripts/slurm/cluster.sh start` as root, then export what "
                    "`scripts/slurm/cluster.sh env` prints")
    # Not under pytest's tmp_path: the munge, slurm and mysql users must be able to reach the folder.
    state = Path(tempfile.mkdtemp(prefix="sepclean-slurm-grid-", dir="/var/tmp"))
    state.chmod(0o755)
    env = {**os.environ, "SEPCLEAN_SLURM_DIR": str(state), "SEPCLEAN_SLURM_CLUSTER": "sepcleangrid",
           "SEPCLEAN_SLURM_PORTS": "26817 26818 26819 23307"}
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stderr
    try:
        yield {**env, "SLURM_CONF": str(state / "etc" / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


# --- dora grid -----------------------------------------------------------------------------------

def test_dora_grid_runs_every_xp_as_a_slurm_job(cluster, tmp_path):
    env = {**cluster, "SEPCLEAN_DORA_DIR": str(tmp_path / "dora")}
    done = subprocess.run([sys.executable, "-m", "dora", "grid", GRID, "--interval", "0.05"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    scheduled = re.findall(r"Scheduled job (\d+) for sheep (\w+)", done.stdout + done.stderr)
    assert len(scheduled) == 3, done.stdout[-3000:]
    # The last table dora printed (it prints one per update, each after "Base name:"): every XP
    # COMPLETED, with its SDR.
    last = done.stdout.rsplit("Base name:", 1)[-1]
    rows = [line for line in last.splitlines() if re.search(r"\b(openunmix|hdemucs)\b", line)]
    assert len(rows) == 3, last
    for job, sig in scheduled:
        row = next(line for line in rows if sig in line)
        assert "COM" in row, row
        history = json.loads((tmp_path / "dora" / "xps" / sig / "history.json").read_text())
        assert np.isfinite(history[-1]["sdr"]["avg"])
        assert f"{history[-1]['sdr']['avg']:.2f}" in row
        assert _accounted(cluster, job) == "COMPLETED"


def _accounted(env: dict, job: str) -> str:
    deadline = time.monotonic() + 60
    while True:  # slurmctld reports a job's end to slurmdbd asynchronously
        state = subprocess.run(["sacct", "-j", job, "-X", "-n", "-P", "-o", "State"], env=env, capture_output=True,
                               text=True).stdout.strip()
        if state not in ("", "PENDING", "RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


# --- attribution shards as a job array -----------------------------------------------------------

@pytest.fixture(scope="module")
def attribution_task(tmp_path_factory):
    """Tiny data with 8 references (each of 3 shards has 2 or 3 references x 2 targets as pieces), and
    an Open-Unmix baseline trained briefly on its noisy pool."""
    from conftest import make_synth_data

    from sepclean.synth.dataset import PROFILES
    from sepclean_plugins.openunmix.train import main as train_umx

    root = tmp_path_factory.mktemp("shards")
    data = make_synth_data(root, profile=dataclasses.replace(PROFILES["tiny"], train=6, reference=8, duration=3.0))
    model = root / "umx"
    for target in ("vocals", "bass"):
        assert train_umx(["--manifest", str(data.manifests["train"]), "--valid-manifest", str(data.manifests["valid"]),
                          "--target", target, "--epochs", "1", "--hidden-size", "16", "--output", str(model),
                          "--preset", "tiny", "--quiet"]) == 0
    task = ScoringTask(data.manifest("train"), data.manifest("reference"), Baseline("openunmix", model),
                       progress=False)
    scorer = create("attribute", targets=("vocals", "bass"), strength=0.05, segment=2.0)
    return scorer, task


def test_a_killed_shard_is_resubmitted_and_resumes(cluster, attribution_task, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SLURM_CONF", cluster["SLURM_CONF"])  # for submitit's sbatch and sacct
    scorer, task = attribution_task
    work = tmp_path / "work"
    # shard 0/3 runs in this process; the array's task 0 is shard 1/3 (references 1, 4, 7)
    shard1 = [work / "parts" / unit / f"ref_{j:05d}.npz" for unit in ("vocals", "bass") for j in (1, 4, 7)]
    caplog.set_level(logging.INFO, logger="sepclean")
    shards = Shards(count=3, launcher="slurm", retries=1, poll=0.5)
    failure: list[BaseException] = []

    def launch():
        try:
            shards.run(functools.partial(score_shard, scorer, task, work), tmp_path / "jobs", name="sepclean_shardtest")
        except BaseException as e:  # noqa: BLE001 (re-raised in the test's thread)
            failure.append(e)

    thread = threading.Thread(target=launch)
    thread.start()
    deadline = time.monotonic() + 600
    while not any(p.is_file() for p in shard1):
        assert thread.is_alive() and time.monotonic() < deadline, f"no piece of shard 1 was written: {caplog.messages}"
        time.sleep(0.05)
    array = re.search(r"SLURM job array (\d+)", " ".join(caplog.messages))[1]
    # SIGKILL, as the OOM killer or a lost node would: nothing in the shard can catch it. (scancel
    # sends SIGTERM first, which submitit ignores, and the shard would finish within KillWait.)
    for pid in _job_processes(array, 0):
        os.kill(pid, signal.SIGKILL)
    kept = {p: p.stat().st_mtime_ns for p in shard1 if p.is_file()}
    thread.join(timeout=900)
    logs = caplog.messages
    assert not thread.is_alive() and not failure, (failure, logs)
    assert "shard 0/3 here, in this job" in logs, logs
    assert any(re.search(r"shard 1/3 \(job \d+_0\) ended \w+ before finishing", line) for line in logs), logs
    assert any("submitting shard(s) 1/3 again" in line for line in logs), logs
    assert all(p.is_file() for p in shard1)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items()), "a finished piece was computed again"
    sharded = scorer.score(task, work)  # the merge, as the scoring stage does once every shard is done
    whole = scorer.score(task, tmp_path / "whole")
    assert sharded.targets == whole.targets == ["vocals", "bass"]
    for target in [*sharded.targets, "all"]:  # float32 sums: shards ran with one thread, this with several
        np.testing.assert_allclose([sharded.column(target)[t] for t in task.train.ids],
                                   [whole.column(target)[t] for t in task.train.ids], rtol=1e-4, atol=1e-9)


def test_linear_attribution_runs_song_shards_as_two_job_arrays(cluster, attribution_task, tmp_path, monkeypatch,
                                                               caplog):
    """Linear mode splits the training songs: round 1 (one job array) sums each shard's part of the
    preconditioner and its songs' gradients, round 2 (a second array) each shard's block of delta L;
    merged, the table and delta_loss.npz equal an unsharded run's."""
    monkeypatch.setenv("SLURM_CONF", cluster["SLURM_CONF"])
    _, task = attribution_task
    scorer = create("attribute", targets=("vocals", "bass"), mode="linear", strength=0.05, segment=2.0)
    work = tmp_path / "work"
    shards = Shards(count=3, launcher="slurm", retries=0, poll=0.5)
    caplog.set_level(logging.INFO, logger="sepclean")
    for _ in range(scorer.shard_rounds):
        shards.run(functools.partial(score_shard, scorer, task, work), tmp_path / "jobs", name="sepclean_lineartest")
    arrays = re.findall(r"shard\(s\) 1/3, 2/3 as SLURM job array (\d+)", " ".join(caplog.messages))
    assert len(set(arrays)) == scorer.shard_rounds == 2, caplog.messages
    sharded = scorer.score(task, work)
    whole = scorer.score(task, tmp_path / "whole")
    for target in [*whole.targets, "all"]:  # float32 sums: shards ran with one thread, this with several
        np.testing.assert_allclose([sharded.column(target)[t] for t in task.train.ids],
                                   [whole.column(target)[t] for t in task.train.ids], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(np.load(work / "delta_loss.npz")["delta"],
                               np.load(tmp_path / "whole" / "delta_loss.npz")["delta"], rtol=1e-4, atol=1e-9)


def _job_processes(array: str, task: int) -> list[int]:
    """The python processes of one task of a job array (this is a one-machine cluster)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (f"SLURM_ARRAY_JOB_ID={array}".encode() in environ and f"SLURM_ARRAY_TASK_ID={task}".encode() in environ
                and b"submitit" in cmdline):
            pids.append(int(entry.name))
    assert pids, f"no process of job {array}_{task}"
    return pids


# --- dora's orphan check without a terminal --------------------------------------------------------

NO_TERMINAL = {"start_new_session": True, "stdin": subprocess.DEVNULL, "capture_output": True, "text": True}


def test_getlogin_fails_without_a_terminal():
    """Why sepclean.dora_compat exists: what dora 0.1.13's orphan check calls."""
    done = subprocess.run([sys.executable, "-c", "import os; os.getlogin()"], **NO_TERMINAL)
    assert done.returncode != 0 and "OSError" in done.stderr


def test_an_orphan_token_cancels_its_job_without_a_terminal(cluster, tmp_path):
    name = "sepclean_orphan_test"
    submitted = subprocess.run(["sbatch", "--parsable", "-J", name, "-o", str(tmp_path / "out"), "--wrap", "sleep 300"],
                               env=cluster, capture_output=True, text=True, check=True)
    job = submitted.stdout.strip().split(";")[0]
    (tmp_path / "dora" / "orphans").mkdir(parents=True)
    (tmp_path / "dora" / "orphans" / name).touch()
    env = {**cluster, "SEPCLEAN_DORA_DIR": str(tmp_path / "dora")}
    listed = subprocess.run([sys.executable, "-m", "dora", "grid", GRID, "--dry_run", "--no_monitor"], cwd=ROOT,
                            env=env, **NO_TERMINAL)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert not (tmp_path / "dora" / "orphans" / name).exists()
    assert _accounted(cluster, job).startswith("CANCELLED"), f"job {job} was not cancelled"


def test_a_shard_that_raises_is_not_resubmitted(cluster, tmp_path, monkeypatch, caplog):
    """Its code would raise again: the stage fails at once, naming the shard and its log."""
    from sepclean.errors import PipelineError

    monkeypatch.setenv("SLURM_CONF", cluster["SLURM_CONF"])
    caplog.set_level(logging.INFO, logger="sepclean")
    raises_in_shard_1 = operator.methodcaller("index", "0")  # "0/2".index("0") is 0; "1/2".index("0") raises
    # one shard left for SLURM: submitit submits it as a plain job (id N), not an array (N_0)
    with pytest.raises(PipelineError, match=r"(?s)shard 1/2 \(job \d+\) raised; its log: .*ValueError"):
        Shards(count=2, launcher="slurm", poll=0.5).run(raises_in_shard_1, tmp_path)
    logs = caplog.messages
    assert len([line for line in logs if line.startswith("submitted")]) == 1, logs


def test_the_shard_computed_here_raising_cancels_the_array(cluster, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SLURM_CONF", cluster["SLURM_CONF"])
    caplog.set_level(logging.INFO, logger="sepclean")
    raises_in_shard_0 = operator.methodcaller("index", "1")  # "0/3".index("1") raises, here
    with pytest.raises(ValueError, match="substring not found"):
        Shards(count=3, launcher="slurm", poll=0.5).run(raises_in_shard_0, tmp_path)
    logs = caplog.messages
    cancelled = re.search(r"shard 0/3 raised here: cancelled SLURM job\(s\) (\d+)_0, \1_1", " ".join(logs))
    assert cancelled, logs
    # slurmctld's own view: an array cancelled while pending never reaches sacct
    shown = subprocess.run(["scontrol", "-o", "show", "job", cancelled[1]], env=cluster, capture_output=True,
                           text=True, check=True).stdout
    states = re.findall(r"JobState=(\w+)", shown)
    assert states and set(states) <= {"CANCELLED", "COMPLETED"}, shown  # a task may finish before the cancel
