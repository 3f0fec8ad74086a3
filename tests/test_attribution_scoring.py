"""ΔL → scores (sepclean.attribution.scoring) on hand-made arrays whose ranks are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from sepclean.attribution import scoring

# 4 training songs, 2 references, 2 targets. Song 0 is loud: its ΔL is large for every reference and
# target although its loss is large too; song 3's second target is the worst of all.
DELTA = np.array([
    [[8.0, 40.0], [8.0, 40.0]],    # song 0
    [[2.0, 3.0], [1.0, 2.0]],      # song 1
    [[3.0, 1.0], [2.0, 1.0]],      # song 2
    [[5.0, 0.5], [4.0, 0.5]],      # song 3
])  # (song, reference, target)
BASELINE = np.array([[80.0, 400.0], [2.0, 3.0], [3.0, 2.0], [4.0, 5.0]])


def test_normalised_ranks_span_zero_to_one_with_ties_shared():
    np.testing.assert_array_equal(scoring.normalised_ranks(np.array([5.0, 1.0, 3.0])), [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(scoring.normalised_ranks(np.array([2.0, 2.0, 7.0])), [0.25, 0.25, 1.0])
    np.testing.assert_array_equal(scoring.normalised_ranks(np.array([[4.0]])), [[0.5]])


def test_the_defaults_are_the_papers_mean_delta():
    per_target, unified = scoring.scores(DELTA, BASELINE)
    np.testing.assert_allclose(per_target, DELTA.mean(1))
    np.testing.assert_allclose(unified, DELTA.mean((1, 2)))
    assert np.argmax(unified) == 0, "raw ΔL: the loud song comes first"


def test_relative_removes_the_loudness_of_song_0():
    per_target, unified = scoring.scores(DELTA, BASELINE, scoring="relative")
    # ΔL / L: song 0 → 0.1 in both targets; song 1 → (0.75, 0.833); song 2 → (0.833, 0.5); song 3 → (1.125, 0.1)
    np.testing.assert_allclose(per_target, [[0.1, 0.1], [0.75, 2.5 / 3], [2.5 / 3, 0.5], [1.125, 0.1]])
    assert list(rankdata(unified)) == [1.0, 4.0, 3.0, 2.0]


def test_rank_over_references_and_targets():
    per_target, unified = scoring.scores(DELTA, BASELINE, references="rank", how_unified="rank")
    # target 0: each reference ranks songs 1 < 2 < 3 < 0 → ranks 0, 1/3, 2/3, 1
    np.testing.assert_allclose(per_target[:, 0], [1.0, 0.0, 1 / 3, 2 / 3])
    # target 1: each reference ranks 3 < 2 < 1 < 0 → 2/3, 1/3, 0 for songs 1, 2, 3
    np.testing.assert_allclose(per_target[:, 1], [1.0, 2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(unified, [1.0, 1 / 3, 1 / 3, 1 / 3])


def test_worst_target_drops_the_song_with_one_bad_stem():
    _, unified = scoring.scores(DELTA, BASELINE, how_unified="worst")
    # per-target means: target 0 → 8, 1.5, 2.5, 4.5 (ranks 1, 0, 1/3, 2/3);
    #                   target 1 → 40, 2.5, 1, 0.5 (ranks 1, 2/3, 1/3, 0)
    np.testing.assert_allclose(unified, [1.0, 0.0, 1 / 3, 0.0])
    _, mean_unified = scoring.scores(DELTA, BASELINE)
    assert mean_unified[3] > mean_unified[1], "the mean hides song 3's bad second stem"


def test_gradnorm_and_cosine_divide_by_self_influence():
    train_norm = np.array([[64.0, 1600.0], [1.0, 4.0], [4.0, 1.0], [16.0, 1.0]])
    reference_norm = np.array([[4.0, 16.0], [1.0, 4.0]])
    gradnorm = scoring.normalise(DELTA, BASELINE, "gradnorm", train_norm)
    np.testing.assert_allclose(gradnorm[0], [[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(gradnorm[3, :, 0], [1.25, 1.0])
    cosine = scoring.normalise(DELTA, BASELINE, "cosine", train_norm, reference_norm)
    np.testing.assert_allclose(cosine[:, 0, 1], DELTA[:, 0, 1] / np.sqrt(train_norm[:, 1]) / 4.0)
    np.testing.assert_allclose(cosine[:, 1, 0], DELTA[:, 1, 0] / np.sqrt(train_norm[:, 0]) / 1.0)


def test_missing_norms_and_unknown_rules_are_errors():
    with pytest.raises(ValueError, match="self-influences"):
        scoring.scores(DELTA, BASELINE, scoring="cosine", train_norm=np.ones((4, 2)))
    with pytest.raises(ValueError, match="unified must be one of"):
        scoring.scores(DELTA, BASELINE, how_unified="median")
