"""A scoring stage split into K shards, run here one after another or as a SLURM job array.

Shards share one work folder and each computes a disjoint part of it (attribution, ``sepclean
attribute --shard i/K``: in exact mode every K-th reference, in linear mode the i-th K-th of the
songs), writing each finished piece atomically. So a shard that is killed (preempted, timed out,
cancelled, its node lost) is simply submitted again and resumes; a shard whose code raised is not
retried, since it would raise again. A scorer whose shards share an intermediate result (linear
attribution's preconditioner) runs every shard ``shard_rounds`` times: a shard that finds its share
of it done but others' missing stops, and computes the rest in the next round. Once every shard is
done the stage's own process merges the pieces, as an unsharded scorer would.

On SLURM the XP that asks for the scores computes shard 0 itself while a job array computes the
others, then waits for them: its allocation works instead of idling (``count=1`` runs entirely in it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sepclean.cpus import use_allotted_cpus
from sepclean.errors import PipelineError

LAUNCHERS = ("local", "slurm")

logger = logging.getLogger(__name__)


def score_shard(scorer, task, workdir: Path, shard: str) -> str:
    """One shard's part of ``scorer`` on ``task`` (a SLURM job's whole work). Returns the shard."""
    from sepclean.scorers.attribution import ShardPending

    use_allotted_cpus()
    try:
        dataclasses.replace(scorer, shard=shard).score(task, workdir)
    except ShardPending:
        pass  # other shards still have pieces to compute; the stage merges once all are done
    return shard


@dataclass(frozen=True)
class Shards:
    """How a shardable scoring stage runs: ``count`` shards, ``launcher`` local or slurm, and a killed
    shard submitted again up to ``retries`` times. ``slurm``: the grid config's ``slurm`` section
    (gpus, mem_per_gpu, cpus_per_task, partition, time), as every XP is submitted with."""

    count: int = 1
    launcher: str = "local"
    retries: int = 2
    slurm: dict = field(default_factory=dict)
    poll: float = 2.0

    def __post_init__(self):
        if not isinstance(self.count, int) or self.count < 1:
            raise PipelineError(f"shards.count must be a positive integer, not {self.count!r}")
        if self.launcher not in LAUNCHERS:
            raise PipelineError(f"shards.launcher must be one of {', '.join(LAUNCHERS)}, not {self.launcher!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise PipelineError(f"shards.retries must be a non-negative integer, not {self.retries!r}")

    def run(self, job: Callable[[str], object], folder: Path, name: str = "sepclean_shard") -> None:
        """Run ``job(f"{i}/{count}")`` for every shard; raise naming the shards that did not finish."""
        shards = [f"{i}/{self.count}" for i in range(self.count)]
        if self.launcher == "local":
            for shard in shards:
                logger.info(f"shard {shard}")
                job(shard)
            return
        self._slurm(job, shards, Path(folder), name)

    def executor(self, folder: Path, name: str):
        import submitit

        settings = self.slurm
        gpus = int(settings.get("gpus") or 0)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
        params = {"job_name": name, "cpus_per_task": int(settings.get("cpus_per_task") or 1),
                  "time": int(settings.get("time") or 60), "array_parallelism": self.count}
        if gpus:
            params["gpus_per_node"] = gpus
        if settings.get("mem_per_gpu"):
            params["mem"] = f"{int(settings['mem_per_gpu']) * max(gpus, 1)}GB"
        if settings.get("partition"):
            params["partition"] = settings["partition"]
        executor.update_parameters(**params)
        return executor

    def _slurm(self, job, shards: list[str], folder: Path, name: str) -> None:
        from submitit.core.utils import FailedJobError

        executor = self.executor(folder, name)
        here, pending = shards[0], shards[1:]
        for attempt in range(1, self.retries + 2):
            jobs = executor.map_array(job, pending) if pending else []
            if jobs:
                logger.info(f"submitted shard(s) {', '.join(pending)} as SLURM job{' array' * (len(jobs) > 1)} "
                            f"{jobs[0].job_id.split('_')[0]}"
                            + (f" (attempt {attempt})" if attempt > 1 else "") + f"; logs in {folder}")
            if here is not None:
                self._run_here(job, here, jobs)
                here = None
            while not all(j.done() for j in jobs):
                time.sleep(self.poll)
            killed, failed = [], []
            for shard, j in zip(pending, jobs):
                error = j.exception()
                if isinstance(error, FailedJobError):
                    failed.append(f"shard {shard} (job {j.job_id}) raised; its log: {j.paths.stderr}\n{error}")
                elif error is not None:
                    killed.append(shard)
                    logger.info(f"shard {shard} (job {j.job_id}) ended {j.state} before finishing")
            if failed:
                raise PipelineError("\n".join(failed))
            if not killed:
                return
            pending = killed
            if attempt <= self.retries:
                logger.info(f"submitting shard(s) {', '.join(pending)} again: each resumes from its finished pieces")
        raise PipelineError(f"shard(s) {', '.join(pending)} did not finish after {self.retries + 1} attempts; "
                            f"their logs are in {folder}")

    @staticmethod
    def _run_here(job, shard: str, jobs: list) -> None:
        """One shard in this process, while the array runs; if it raises, the array is cancelled."""
        logger.info(f"shard {shard} here, in this job")
        try:
            job(shard)
        except BaseException:
            for j in jobs:
                j.cancel(check=False)
            if jobs:
                logger.info(f"shard {shard} raised here: cancelled SLURM job(s) {', '.join(j.job_id for j in jobs)}")
            raise
