"""Scores from a model trained on the reference songs only: ``refloss`` and ``refsdr``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sepclean.scorers import Baseline, ScorerError, ScoringTask, create
from sepclean_plugins.openunmix.train import main as train_umx

TARGETS = ("vocals", "bass")


def _train(data, split: str, output) -> None:
    for target in TARGETS:
        argv = ["--manifest", str(data.manifests[split]), "--valid-manifest", str(data.manifests["valid"]),
                "--target", target, "--epochs", "2", "--hidden-size", "16", "--output", str(output),
                "--preset", "tiny", "--quiet"]
        assert train_umx(argv) == 0


@pytest.fixture(scope="module")
def models(tiny_data, tmp_path_factory):
    """(the noisy baseline, the reference model): tiny Open-Unmix models of vocals and bass."""
    base, reference = tmp_path_factory.mktemp("umx_dirty"), tmp_path_factory.mktemp("umx_reference")
    _train(tiny_data, "train", base)
    _train(tiny_data, "reference", reference)
    return base, reference


def _column(table, target, ids):
    return np.array([table.scores[t][target] for t in ids])


def test_refloss_alone_and_against_the_baseline(tiny_data, models, tmp_path):
    base, reference = models
    train = tiny_data.manifest("train")
    task = ScoringTask(train, tiny_data.manifest("reference"), Baseline("openunmix", base), progress=False)
    alone = create("refloss", checkpoint=str(reference), targets=TARGETS).score(task, tmp_path)
    assert alone.tracks == train.ids and alone.targets == list(TARGETS)
    # The reference model's loss is what the `loss` comparator computes for a baseline: the same numbers.
    as_loss = create("loss", targets=TARGETS).score(
        ScoringTask(train, task.reference, Baseline("openunmix", reference), progress=False), tmp_path)
    np.testing.assert_allclose(_column(alone, "bass", train.ids), _column(as_loss, "bass", train.ids))
    base_loss = -_column(create("loss", targets=TARGETS).score(task, tmp_path), "vocals", train.ids)
    ref_loss = -_column(alone, "vocals", train.ids)
    reducible = create("refloss", checkpoint=str(reference), targets=TARGETS, scoring="reducible")
    assert reducible.needs_baseline and not create("refloss", checkpoint="x").needs_baseline
    np.testing.assert_allclose(_column(reducible.score(task, tmp_path), "vocals", train.ids), base_loss - ref_loss,
                               rtol=1e-6)
    ratio = create("refloss", checkpoint=str(reference), targets=TARGETS, scoring="ratio").score(task, tmp_path)
    np.testing.assert_allclose(_column(ratio, "vocals", train.ids), np.log(base_loss / ref_loss), rtol=1e-6)
    assert ratio.metadata["scoring"] == "ratio" and set(ratio.metadata["reference_models"]) == set(TARGETS)
    with pytest.raises(ScorerError, match="baseline"):
        reducible.score(ScoringTask(train, task.reference, progress=False), tmp_path)
    with pytest.raises(ScorerError, match="checkpoint"):
        create("refloss").score(task, tmp_path)


def test_refsdr_scores_each_stem_by_its_sdr_under_the_reference_model(tiny_data, models, tmp_path):
    _, reference = models
    train = tiny_data.manifest("train")
    train = train.subset(train.ids[:3])  # museval takes about a second per second of audio
    task = ScoringTask(train, tiny_data.manifest("reference"), progress=False)
    table = create("refsdr", checkpoint=str(reference), targets=("vocals",), workers=0).score(task, tmp_path)
    assert table.tracks == train.ids and table.targets == ["vocals"]
    summary = json.loads((tmp_path / "separated" / "summary.json").read_text())
    np.testing.assert_allclose(_column(table, "vocals", train.ids),
                               [summary["sdr"]["tracks"][t]["vocals"] for t in train.ids])
    assert all(np.isfinite(_column(table, "all", train.ids)))
