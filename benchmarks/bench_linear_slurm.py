"""Linear attribution of a large pool on the local SLURM cluster, split by songs over K array tasks.

For each number of songs N and of shards K asked for, one driver job runs the pipeline's scoring
stage (``stages.score`` with ``Shards(count=K, launcher="slurm")``), as a grid XP with
``shards.count=K shards.launcher=slurm`` does: its shard 0 in the driver, shards 1..K-1 as a job
array, twice (round 1: each shard's part of the preconditioner and its songs' gradients; round 2:
each shard's block of delta L), then the merge. K = 1 is the unsharded run in the driver alone.
Every job gets one CPU (``cpus_per_task=1``) and runs torch on one thread.

It prints, per (N, K): the wall time from the driver's start to the merged table, the speed-up
over K = 1 for the same N, and the largest peak memory of any task (sacct's MaxRSS, over the
driver and the array tasks); then, from the unsharded runs, the per-song cost and what 10,000 songs
x 4 targets would take on one core and over K cores.

Needs a running cluster, e.g. ``scripts/slurm/cluster.sh start`` and then
``eval "$(scripts/slurm/cluster.sh env)"`` (the script keeps accounting of every job's memory).
A cluster whose node has fewer CPUs than K queues the tasks beyond them: the speed-up is
bounded by the node's CPUs, which the benchmark prints.

    python benchmarks/bench_linear_slurm.py                              # 1,000 songs of 2 s, K = 1, 2, 4
    python benchmarks/bench_linear_slurm.py --songs 250 1000 --shards 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sepclean import STEMS as TARGETS
from sepclean.cpus import use_allotted_cpus
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.pipeline.shards import Shards
from sepclean.scorers import Baseline, create
from sepclean.toolkit import TrainSpec


def drive(store: Path, scorer, data, baseline, shards: int) -> float:
    """The driver job: the scoring stage with ``shards`` song shards; its wall time in seconds."""
    use_allotted_cpus()
    started = time.perf_counter()
    stages.score(ArtifactStore(store), scorer, data, baseline, progress=False,
                 shards=Shards(count=shards, launcher="slurm", retries=0, slurm={"cpus_per_task": 1}, poll=1.0))
    return time.perf_counter() - started


def peak_memory_mib(since: str, env: dict) -> dict[str, float]:
    """The largest MaxRSS of each job (array task) that started since ``since``, in MiB, by job id."""
    listing = subprocess.run(["sacct", "-S", since, "-n", "-P", "-o", "JobID,MaxRSS"], env=env, check=True,
                             capture_output=True, text=True).stdout
    peaks: dict[str, float] = {}
    for line in listing.splitlines():
        step, rss = line.split("|")
        job = step.split(".")[0]
        if rss:  # "123456K"; a bare number is bytes
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(rss[-1])
            value = float(rss[:-1]) * scale if scale else float(rss)
            peaks[job] = max(peaks.get(job, 0.0), value / 2**20)
    return peaks


def node_cpus(env: dict) -> int:
    return int(subprocess.run(["sinfo", "-h", "-o", "%c"], env=env, check=True, capture_output=True,
                              text=True).stdout.split()[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, nargs="+", default=[1000], metavar="N")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], metavar="K")
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per song")
    parser.add_argument("--hidden-size", type=int, default=32, help="Open-Unmix's")
    parser.add_argument("--pool", type=int, default=10_000, help="songs of the pool to extrapolate to")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if not os.environ.get("SLURM_CONF"):
        parser.error("no cluster: $SLURM_CONF is not set (scripts/slurm/cluster.sh start; "
                     "eval \"$(scripts/slurm/cluster.sh env)\")")
    if 1 not in args.shards:
        parser.error("--shards needs 1: the speed-ups are against the unsharded run")
    import submitit

    env = dict(os.environ)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="bench_linear_slurm_", dir="/var/tmp"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    store = ArtifactStore(work / "artifacts")
    sizes = {"train": max(args.songs), "reference": args.references, "duration": args.duration}
    data = stages.synthetic_data(store, "mixed23", "tiny", sizes=sizes)
    # The weights do not change the cost; two updates make a trained checkpoint of every target.
    spec = TrainSpec(data.path("train"), data.path("valid"), targets=TARGETS, epochs=1, epoch_updates=2,
                     overrides={"seq_dur": args.duration / 2, "hidden_size": args.hidden_size}, quiet=True)
    baseline = Baseline("openunmix", stages.train(store, "openunmix", spec).checkpoint)
    scorer = create("attribute", mode="linear")
    cpus = node_cpus(env)
    print(f"Open-Unmix hidden size {args.hidden_size}, {args.duration:g} s songs, {len(TARGETS)} targets, "
          f"{args.references} references; node of {cpus} CPU(s), one per job\n")
    print(f"{'N':>6} {'K':>3} {'wall s':>9} {'speed-up':>9} {'peak MiB':>9} {'jobs':>5}")
    unsharded = {}
    for n in args.songs:
        manifests = {split: data.path(split) for split in ("train", "valid", "reference")}
        if n < max(args.songs):
            train = data.manifest("train")
            subset = work / f"train_{n}.jsonl"
            train.subset(train.ids[:n]).write(subset)
            manifests["train"] = subset
        songs = stages.Data(data.folder, manifests, data.contamination)
        for k in sorted(args.shards):
            scores = work / f"scores_{n}_{k}"
            shutil.rmtree(scores, ignore_errors=True)  # timed from scratch: a kept table would be served in 0 s
            executor = submitit.SlurmExecutor(folder=work / "driver" / f"{n}_{k}", max_num_timeout=0)
            executor.update_parameters(job_name=f"bench_linear_{n}_{k}", cpus_per_task=1, time=24 * 60)
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
            driver = executor.submit(drive, scores, scorer, songs, baseline, k)
            seconds = driver.result()
            deadline = time.monotonic() + 60
            while driver.job_id not in (peaks := peak_memory_mib(since, env)):  # slurmdbd hears of it late
                if time.monotonic() > deadline:
                    raise SystemExit(f"sacct has no peak memory of job {driver.job_id} after 60 s: does the "
                                     "cluster gather accounting (JobAcctGatherType=jobacct_gather/linux)?")
                time.sleep(1)
            if k == 1:
                unsharded[n] = seconds
            speed_up = unsharded[n] / seconds
            print(f"{n:>6} {k:>3} {seconds:>9.1f} {speed_up:>8.2f}x {max(peaks.values(), default=float('nan')):>9.0f} "
                  f"{len(peaks):>5}", flush=True)

    if len(unsharded) >= 2:
        (n0, t0), (n1, t1) = sorted(unsharded.items())[0], sorted(unsharded.items())[-1]
        per_song = (t1 - t0) / (n1 - n0)
        fixed = t0 - n0 * per_song
        print(f"\nunsharded: {fixed:.1f} s fixed + {per_song * 1000:.1f} ms per song ({len(TARGETS)} targets)")
    else:
        (n1, t1), = unsharded.items()
        per_song, fixed = t1 / n1, 0.0
        print(f"\nunsharded: {per_song * 1000:.1f} ms per song ({len(TARGETS)} targets), fixed cost included "
              f"(give two --songs values to separate it)")
    for k in (1, 10, 100):
        print(f"  {args.pool} songs over {k:>3} one-core job(s): {(fixed + args.pool * per_song / k) / 3600:7.2f} h "
              f"per job (the songs' side split K ways; this model and song length)")


if __name__ == "__main__":
    main()
