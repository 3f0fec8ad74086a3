"""scripts/slurm/cluster.sh: a real one-machine SLURM cluster, jobs submitted through submitit.

The cluster under test has its own state folder, ports and cluster name, so a cluster a user started
with the defaults is left alone. Skipped, saying why, only where it cannot run: not root (the script
starts munged as the munge user and slurmd as root, and installs the packages when they are missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm" / "cluster.sh"
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server")
# Process names (as ps shows them) of the cluster's daemons and of job steps; none may outlive `stop`.
PROCESSES = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmscriptd", "slurmd", "slurmstepd", "srun")


def _missing_packages() -> list[str]:
    if shutil.which("dpkg-query") is None:
        return list(PACKAGES)
    missing = []
    for package in PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def _skip_reason() -> str | None:
    if os.geteuid() == 0:
        return None  # the script installs what is missing
    missing = _missing_packages()
    also = f", and installs {' '.join(missing)}, which are missing" if missing else ""
    return f"not root: cluster.sh starts munged as the munge user and slurmd as root{also}; run the tests as root"


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _daemon_pids(state: Path) -> set[int]:
    """Processes of the cluster in ``state`` running one of its programs (zombies, already exited,
    excluded). A process is the cluster's when its command line or environment names ``state``
    (munged's socket, mariadbd's data folder, the slurm daemons' and jobs' SLURM_CONF): tests on
    other workers start clusters of their own meanwhile."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            name, _, rest = stat.partition("(")[2].rpartition(")")
            if name not in PROCESSES or rest.split()[0] == "Z":
                continue
            named = str(state).encode() in (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if named:
            pids.add(int(entry.name))
    return pids


def _cluster(env: dict, command: str) -> float:
    """Run `cluster.sh command`; returns its wall time. Fails with the script's output."""
    start = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"cluster.sh {command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - start


def test_cluster_runs_submitit_jobs_and_stops_clean(tmp_path):
    """start; a submitit job COMPLETED in sacct; an oversized job refused; stop with a job still
    running leaves no daemon (nor slurmstepd) behind. One test, so one cluster, whatever pytest-xdist does."""
    # Not under pytest's tmp_path: the munge, slurm and mysql users must be able to reach the folder.
    state = Path(tempfile.mkdtemp(prefix="sepclean-slurm-test-", dir="/var/tmp"))
    state.chmod(0o755)
    partition = "testq"
    env = {
        **os.environ,
        "SEPCLEAN_SLURM_DIR": str(state),
        "SEPCLEAN_SLURM_PARTITION": partition,
        "SEPCLEAN_SLURM_CLUSTER": "sepcleantest",
        "SEPCLEAN_SLURM_PORTS": "16817 16818 16819 13307",
    }
    try:
        print(f"cluster.sh start: {_cluster(env, 'start'):.1f} s")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(state / "etc" / "slurm.conf"))  # for submitit's sbatch and sacct
            _submitit_job_completes(partition, tmp_path / "done")
            _oversized_job_is_refused(partition, tmp_path / "refused")
            _job_left_running(partition, tmp_path / "running")
    finally:
        print(f"cluster.sh stop: {_cluster(env, 'stop'):.1f} s")
        left = _daemon_pids(state)
        shutil.rmtree(state, ignore_errors=True)
    assert not left, f"cluster.sh stop left processes behind: {sorted(left)}"


def _executor(folder: Path, partition: str, **parameters):
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(slurm_partition=partition, gpus_per_node=0, timeout_min=5, **parameters)
    return executor


def _submitit_job_completes(partition: str, folder: Path) -> None:
    # A function the job imports by reference: it returns the job id SLURM gave the process.
    job = _executor(folder, partition, cpus_per_task=1).submit(os.getenv, "SLURM_JOB_ID")
    deadline = time.monotonic() + 120
    while not job.done():
        assert time.monotonic() < deadline, f"job {job.job_id} not done after 120 s (state {job.state})"
        time.sleep(1)
    assert job.result() == job.job_id
    # slurmctld reports the job's end to slurmdbd asynchronously: sacct may lag the result file.
    while (state := _accounted_state(job.job_id)) in ("", "PENDING", "RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, f"sacct still says {state!r} for job {job.job_id} after 120 s"
        time.sleep(0.5)
    assert state == "COMPLETED"


def _accounted_state(job_id: str) -> str:
    done = subprocess.run(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _oversized_job_is_refused(partition: str, folder: Path) -> None:
    """EnforcePartLimits=ALL: more CPUs than the node has fails at submission instead of pending forever."""
    import submitit

    with pytest.raises(submitit.core.utils.FailedJobError, match="Batch job submission failed: More processors"):
        _executor(folder, partition, cpus_per_task=4096).submit(os.getenv, "SLURM_JOB_ID")


def _job_left_running(partition: str, folder: Path) -> None:
    """A job still running when the cluster stops: `stop` must cancel it, slurmstepd included."""
    job = _executor(folder, partition, cpus_per_task=1).submit(time.sleep, 600)
    deadline = time.monotonic() + 60
    while job.state != "RUNNING":
        assert time.monotonic() < deadline, f"job {job.job_id} not running after 60 s (state {job.state})"
        time.sleep(0.5)
