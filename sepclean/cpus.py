"""How many CPUs this process may use: the machine's, or fewer when a launcher allotted them."""

from __future__ import annotations

import os

ALLOTMENTS = ("SEPCLEAN_THREADS", "SLURM_CPUS_PER_TASK")
"""Where a launcher says how many CPUs it gave a process: ``sepclean grid --jobs N`` (the cores over
N) and SLURM (``--cpus-per-task``)."""


def machine_cpus() -> int:
    """The cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def allotted_cpus() -> int | None:
    """The CPUs a launcher gave this process, or None when none said."""
    for variable in ALLOTMENTS:
        cpus = os.environ.get(variable)
        if cpus and cpus.isdigit() and int(cpus) > 0:
            return int(cpus)
    return None


def use_allotted_cpus() -> None:
    """As many torch threads as CPUs this process was given. Torch otherwise starts one per core of
    the node, and on a shared node its threads spin waiting for each other: measured here, a shard
    beside one other job ran 20 times slower."""
    cpus = allotted_cpus()
    if cpus is not None:
        import torch

        torch.set_num_threads(cpus)
