"""Cleaning in rounds: round r re-scores the whole pool with the baseline retrained on what round
r - 1 kept; each round is a shared artifact, so more rounds reuse the finished ones."""

from __future__ import annotations

import pytest

from sepclean.errors import PipelineError
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore, read_json
from sepclean.pipeline.experiment import Experiment

ARCHS = {"openunmix": {"toolkit": "openunmix", "preset": "tiny", "targets": ["vocals"], "epochs": 1,
                       "epoch_updates": 1}}


def _experiment(store, method="loss", rounds=1, ratio="auto") -> Experiment:
    cfg = {"arch": "openunmix", "method": method, "ratio": ratio, "mode": "per-target", "seed": 0, "rounds": rounds,
           "archs": ARCHS, "scoring": {"baseline": "openunmix", "loss": {}}}
    return Experiment(cfg, store, store.root, device="cpu", progress=False)


def _folders(store, stage) -> dict:
    folder = store.root / stage
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def test_each_round_scores_with_the_model_the_round_before_trained(tiny_data, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    experiment = _experiment(store, rounds=2)
    scores, clean = experiment.cleaning(data, "loss", 0.75, "per-target", rounds=2)

    # Round 1: the dirty baseline's scores; round 2 scores with the model trained on what round 1 kept.
    dirty = experiment.baseline(data)
    first = stages.score(store, experiment.scorer("loss"), data, dirty, "cpu", False)
    kept_first = stages.filter_scores(store, first, 0.75, "per-target")
    retrained = experiment.baseline(data, kept_first)
    assert retrained.checkpoint != dirty.checkpoint
    assert store.record(retrained.checkpoint) in read_json(scores.parent / "spec.json")["inputs"]
    assert clean == stages.filter_scores(store, scores, 0.75, "per-target")
    assert len(_folders(store, "train")) == 2 and len(_folders(store, "scores")) == 2

    # A third round reuses the first two untouched (an interrupted run resumes after its last round).
    before = {stage: _folders(store, stage) for stage in ("train", "scores", "filter")}
    _experiment(store, rounds=3).cleaning(data, "loss", 0.75, "per-target", rounds=3)
    for stage, made in before.items():
        assert {k: v for k, v in _folders(store, stage).items() if k in made} == made


@pytest.mark.parametrize("rounds, message", [(0, "rounds must be a whole number >= 1"),
                                             (1.5, "rounds must be a whole number >= 1"),
                                             (2, "rounds=2: fad scores without a model")])
def test_impossible_rounds_are_refused_before_any_work(tmp_path, rounds, message):
    experiment = _experiment(ArtifactStore(tmp_path), method="fad", rounds=rounds)
    experiment.cfg["scoring"]["fad"] = {}
    with pytest.raises(PipelineError, match=message):
        experiment.run()
    assert not any(tmp_path.iterdir())  # nothing was made
