"""Rank fusion (the ``fusion`` scoring method) of other methods' scores."""

from __future__ import annotations

import numpy as np
import pytest

from sepclean.scorers import ScorerError, ScoringTask, create
from sepclean.scores import ScoreTable


@pytest.fixture(scope="module")
def task(tiny_data):
    return ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"),
                       contamination=tiny_data.contamination, progress=False)


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(np.argsort(values))
    return order / (len(values) - 1)


def test_fusion_is_the_weighted_mean_normalised_rank(task, tmp_path):
    ids = task.train.ids
    first = create("random", seed=1).score(task, tmp_path)
    first.write(tmp_path / "first")
    fusion = create("fusion", methods=[str(tmp_path / "first"), {"method": "random", "seed": 2}], weights=[3, 1])
    assert fusion.blind and not fusion.needs_baseline
    table = fusion.score(task, tmp_path / "work")
    second = create("random", seed=2).score(task, tmp_path)
    for column in ("all", "vocals"):
        expected = 0.75 * _ranks([first.scores[t][column] for t in ids]) + 0.25 * _ranks(
            [second.scores[t][column] for t in ids])
        np.testing.assert_allclose([table.scores[t][column] for t in ids], expected)
    assert table.targets == list(task.train.stems) and table.metadata["weights"] == [0.75, 0.25]


def test_fusion_with_the_oracle_is_not_blind_and_keeps_its_order(task, tmp_path):
    fusion = create("fusion", methods=[{"method": "oracle"}, {"method": "oracle"}])
    assert not fusion.blind and fusion.needs_truth
    table = fusion.score(task, tmp_path)
    oracle = create("oracle").score(task, tmp_path)
    clean = [t for t in task.train.ids if oracle.scores[t]["all"] == 1.0]
    bad = [t for t in task.train.ids if oracle.scores[t]["all"] == 0.0]
    assert min(table.scores[t]["all"] for t in clean) > max(table.scores[t]["all"] for t in bad)
    with pytest.raises(ScorerError, match="ground truth"):
        fusion.score(ScoringTask(task.train, task.reference, progress=False), tmp_path)


def test_fusion_refuses_other_songs_and_bad_settings(tiny_data, task, tmp_path):
    other = ScoringTask(tiny_data.manifest("train_clean"), task.reference, progress=False)
    create("random").score(other, tmp_path).write(tmp_path / "other")
    with pytest.raises(ScorerError, match="another training manifest"):
        create("fusion", methods=[str(tmp_path / "other"), {"method": "random"}]).score(task, tmp_path)
    with pytest.raises(ScorerError, match="at least two"):
        create("fusion", methods=[{"method": "random"}])
    with pytest.raises(ScorerError, match="weights"):
        create("fusion", methods=[{"method": "random"}, {"method": "random", "seed": 3}], weights=[1])
    with pytest.raises(ScorerError, match="no scoring method"):
        create("fusion", methods=[{"method": "nope"}, {"method": "random"}]).score(task, tmp_path)
    assert isinstance(ScoreTable.read(tmp_path / "other"), ScoreTable)
