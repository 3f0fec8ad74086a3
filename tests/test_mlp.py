"""The MLP stem-classifier baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sepclean import STEMS
from sepclean.cli import main
from sepclean.embeddings import EmbeddingCache, SongEmbeddings, create_backend
from sepclean.mlp import StemClassifier, mlp_table, train_stem_classifier
from sepclean.scores import UNIFIED, ScoreTable


def test_layers_are_the_papers():
    model = StemClassifier(768)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    first, dropout, last = model.layers[0], model.layers[2], model.layers[3]
    assert (first.in_features, first.out_features) == (768, 256)
    assert dropout.p == 0.5
    assert (last.in_features, last.out_features) == (256, 4)
    assert model.classes == STEMS
    assert model(torch.zeros(5, 768)).shape == (5, 4)


def test_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 3
    frames = {stem: (rng.normal(size=(300, 8)) + centre).astype(np.float32) for stem, centre in zip(STEMS, centres)}
    model, figures = train_stem_classifier(frames, epochs=15, seed=0, progress=False)
    assert min(figures["train_accuracy"].values()) > 0.95
    assert figures["frames"] == {stem: 300 for stem in STEMS}
    assert model.own_class_probability(frames["drums"], "drums") > 0.9
    assert model.own_class_probability(frames["drums"], "vocals") < 0.1


def test_mlp_table_on_tiny_data(tiny_data, tmp_path):
    train, reference = tiny_data.manifest("train"), tiny_data.manifest("reference")
    songs = SongEmbeddings(create_backend("spectral"), EmbeddingCache(tmp_path / "cache"))
    table = mlp_table(train, reference, songs, epochs=10, progress=False)
    assert set(table.tracks) == set(train.ids) and table.targets == list(STEMS)
    for row in table.scores.values():
        assert all(0 <= row[stem] <= 1 for stem in STEMS)
        assert row[UNIFIED] == pytest.approx(np.mean([row[stem] for stem in STEMS]))
    training = table.metadata["training"]
    assert min(training["train_accuracy"].values()) > 0.8  # the reference stems are learnt
    assert table.metadata["manifests"]["reference"] == reference.hash


def test_cli_writes_a_scores_table(tiny_data, tmp_path):
    out = tmp_path / "scores"
    argv = [
        "score", "mlp",
        "--train", str(tiny_data.manifests["train"]),
        "--reference", str(tiny_data.manifests["reference"]),
        "-o", str(out),
        "--cache", str(tmp_path / "cache"),
        "--epochs", "3",
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    table = ScoreTable.read(out)
    assert table.method == "mlp" and table.metadata["training"]["epochs"] == 3
    assert set(table.tracks) == set(tiny_data.manifest("train").ids)
    assert table.targets == list(STEMS) and table.column(UNIFIED)
