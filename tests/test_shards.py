"""sepclean.pipeline.shards without a cluster: settings, and the local launcher. (On SLURM, with a
killed shard: tests/test_slurm_grid.py.)"""

from __future__ import annotations

import pytest

from sepclean.errors import PipelineError
from sepclean.pipeline.shards import Shards


@pytest.mark.parametrize("settings, message", [
    ({"count": 0}, "shards.count must be a positive integer"),
    ({"count": 2.5}, "shards.count must be a positive integer"),
    ({"launcher": "pbs"}, "shards.launcher must be one of local, slurm"),
    ({"retries": -1}, "shards.retries must be a non-negative integer"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(PipelineError, match=message):
        Shards(**settings)


def test_the_local_launcher_runs_every_shard_in_order(tmp_path):
    seen = []
    Shards(count=3).run(seen.append, tmp_path)
    assert seen == ["0/3", "1/3", "2/3"]


def test_a_local_shard_that_raises_stops_the_stage(tmp_path):
    with pytest.raises(ValueError):
        Shards(count=2).run(int, tmp_path)
