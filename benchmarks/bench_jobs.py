"""XPs per hour of ``sepclean grid --jobs N`` against ``--jobs 1``, measured in one run.

    python benchmarks/bench_jobs.py [--grid sepclean.ci] [--jobs 2] [PATTERN ...]
    python benchmarks/bench_jobs.py --grid sepclean.efficacy_cpu f1a8344a b1bfe399   # two real XPs

PATTERNs pick XPs of the grid as ``sepclean grid`` does (names or signatures): a few XPs of a real
grid measure what the grid's XPs gain, where the ``ci`` grid's tiny XPs are mostly fixed costs.

Runs the same grid twice from scratch, each in a fresh dora folder: one XP at a time with every
core as torch threads, then N side by side with cores/N threads each. Prints the wall time, XPs
per hour and CPU seconds per XP of each, and the ratios. The two runs share nothing (no artifact of
the first is reused by the second), so both make the same stages. Run it on an otherwise idle
machine: the ratio is what it measures, and another load changes both sides unequally.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(grid: str, patterns: list[str], jobs: int, dora_dir: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (every process the grid started) and XPs run."""
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(dora_dir)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run([sys.executable, "-m", "sepclean", "grid", grid, *patterns, "--jobs", str(jobs)], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(list(dora_dir.glob("xps/*/history.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="sepclean.ci")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("patterns", nargs="*", help="only these XPs of the grid (names or signatures)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            wall, cpu, xps = run(args.grid, args.patterns, jobs, Path(tmp) / f"jobs{jobs}")
            figures[jobs] = (wall, cpu, xps)
            print(f"--jobs {jobs} ({max(1, cores // jobs)} thread(s) per XP): {xps} XPs in {wall / 60:.1f} min, "
                  f"{3600 * xps / wall:.1f} XPs/h, {cpu / xps:.0f} CPU s per XP", flush=True)
    (w1, c1, x1), (wn, cn, xn) = figures[1], figures[args.jobs]
    print(f"--jobs {args.jobs} against --jobs 1 on {cores} cores: {(xn / wn) / (x1 / w1):.2f}x XPs per hour, "
          f"{(cn / xn) / (c1 / x1):.2f}x CPU seconds per XP")


if __name__ == "__main__":
    main()
