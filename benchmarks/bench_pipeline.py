"""The pipeline's overhead: time outside the stages' own compute, as a fraction of a whole grid.

    python benchmarks/bench_pipeline.py [--grid sepclean.demo] [--dora-dir DIR]

Runs the grid with ``sepclean grid`` in a fresh dora folder (or resumes the one given), then reads
every artifact's ``done.json`` (the seconds its stage took to make it: data generation, training,
scoring, filtering, evaluation) and prints, per stage, the time and share, and what is left:
process starts, dora and hydra, artifact checks, table printing. A second run of a finished grid
times pure overhead (every stage is found done).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_grid(grid: str, dora_dir: Path) -> float:
    env = {**os.environ, "SEPCLEAN_DORA_DIR": str(dora_dir)}
    start = time.time()
    subprocess.run([sys.executable, "-m", "sepclean", "grid", grid], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.time() - start


def stage_seconds(dora_dir: Path) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for done in (dora_dir / "artifacts").glob("*/*/done.json"):
        seconds[done.parent.parent.name] += json.loads(done.read_text())["seconds"]
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="sepclean.ci", help="default: %(default)s (sepclean.demo: make demo's)")
    parser.add_argument("--dora-dir", type=Path, help="an empty folder to run in (default: a fresh temporary one)")
    args = parser.parse_args()
    dora_dir = args.dora_dir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    wall = run_grid(args.grid, dora_dir)
    stages = stage_seconds(dora_dir)
    inside = sum(stages.values())
    print(f"grid {args.grid} in {dora_dir}: {wall:.1f} s wall")
    for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<10} {seconds:8.1f} s  {seconds / wall:6.1%}")
    print(f"  {'overhead':<10} {wall - inside:8.1f} s  {(wall - inside) / wall:6.1%}  "
          "(process starts, dora/hydra, artifact checks, tables)")
    again = run_grid(args.grid, dora_dir)
    print(f"the finished grid run again (every stage found done): {again:.1f} s")


if __name__ == "__main__":
    main()
