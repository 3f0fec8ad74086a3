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


REFERENCE_TRAINING = dict(preset="tiny", epochs=2, overrides={"hidden_size": 16})


@pytest.fixture(scope="module")
def models(tiny_data, tmp_path_factory):
    """(the noisy baseline, the folder where refloss trains its reference model)."""
    base = tmp_path_factory.mktemp("umx_dirty")
    _train(tiny_data, "train", base)
    return base, tmp_path_factory.mktemp("refloss")


def _column(table, target, ids):
    return np.array([table.scores[t][target] for t in ids])


def test_refloss_alone_and_against_the_baseline(tiny_data, models, tmp_path):
    base, workdir = models
    train = tiny_data.manifest("train")
    task = ScoringTask(train, tiny_data.manifest("reference"), Baseline("openunmix", base), progress=False)
    alone = create("refloss", targets=TARGETS, **REFERENCE_TRAINING).score(task, workdir)
    assert alone.tracks == train.ids and alone.targets == list(TARGETS)
    reference = workdir / "reference_model"  # trained through the adapter on the references only
    history = json.loads((reference / "vocals.json").read_text())
    assert history["sepclean"]["train_tracks"] == tiny_data.manifest("reference").ids
    assert alone.metadata["reference_model"] == str(reference)
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
    with pytest.raises(ScorerError, match="other references"):
        create("refloss", targets=TARGETS, **REFERENCE_TRAINING).score(
            ScoringTask(train, tiny_data.manifest("valid"), progress=False), workdir)


def test_refsdr_scores_each_stem_by_its_sdr_under_the_reference_model(tiny_data, models, tmp_path):
    train = tiny_data.manifest("train")
    train = train.subset(train.ids[:3])  # museval takes about a second per second of audio
    task = ScoringTask(train, tiny_data.manifest("reference"), progress=False)
    # The refloss test's reference model (trained here when that test did not run).
    reference = create("refloss", targets=TARGETS, **REFERENCE_TRAINING).reference_model(task, models[1])
    table = create("refsdr", checkpoint=str(reference), targets=("vocals",), workers=0).score(task, tmp_path)
    assert table.tracks == train.ids and table.targets == ["vocals"]
    summary = json.loads((tmp_path / "separated" / "summary.json").read_text())
    np.testing.assert_allclose(_column(table, "vocals", train.ids),
                               [summary["sdr"]["tracks"][t]["vocals"] for t in train.ids])
    assert all(np.isfinite(_column(table, "all", train.ids)))


def test_refsdr_by_the_baseline_separates_with_the_tasks_baseline(tiny_data, models, tmp_path):
    """iSeparate's criterion, and CCOM's rounds: the model is the task's baseline (a round's model in
    rounds), so the method needs one; the same SDR as refsdr given that model as a checkpoint."""
    base, _ = models
    train = tiny_data.manifest("train")
    train = train.subset(train.ids[:2])
    by_baseline = create("refsdr", model="baseline", targets=("vocals",), workers=0)
    assert by_baseline.needs_baseline and not create("refsdr").needs_baseline
    task = ScoringTask(train, tiny_data.manifest("reference"), Baseline("openunmix", base), progress=False)
    table = by_baseline.score(task, tmp_path / "a")
    as_checkpoint = create("refsdr", checkpoint=str(base), targets=("vocals",), workers=0).score(task, tmp_path / "b")
    assert table.scores == as_checkpoint.scores and table.metadata["checkpoint"] == str(base)
    assert "reference_model" not in table.metadata
    with pytest.raises(ScorerError, match="baseline"):
        by_baseline.score(ScoringTask(train, task.reference, progress=False), tmp_path / "c")
    with pytest.raises(ScorerError, match="a demucs model; refsdr separates with toolkit=openunmix"):
        by_baseline.score(ScoringTask(train, task.reference, Baseline("demucs", base), progress=False), tmp_path / "d")
    with pytest.raises(ScorerError, match="refsdr: model must be reference or baseline"):
        create("refsdr", model="other")
    with pytest.raises(ScorerError, match="a checkpoint names a reference model"):
        create("refsdr", model="baseline", checkpoint=str(base))
