"""Per-stem cleaning for Demucs: each source of a training example comes from a track kept for that
source (``sepclean_plugins.demucs.data.PerStemSet``), drawn the same way on resume, trained through
the toolkit adapter; the pipeline's ``per-stem`` mode sets it for joint models only."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.pipeline.experiment import Experiment, metrics
from sepclean.toolkit import TrainResult, TrainSpec
from sepclean_plugins.demucs import DemucsToolkit, data, train
from sepclean_plugins.demucs.toolkit import TRACKS, UNIT, demucs_argv

SOURCES = list(DemucsToolkit.sources)
EXCERPTS = {"segment": 2.0, "shift": 0.5, "channels": 2, "normalize": True}  # the tiny_hdemucs variant's


def per_target_clean(manifest) -> CleanManifest:
    """Different songs dropped for each source."""
    ids = manifest.ids
    keep = {"drums": ids[:5], "bass": ids[3:], "other": ids[::2], "vocals": ids[1:3] + ids[6:]}
    return CleanManifest(keep=keep, dataset_hash=manifest.hash, dataset_tracks=len(ids), mode="per-target")


@pytest.fixture(scope="module")
def per_stem(tiny_data):
    manifest = tiny_data.manifest("train")
    clean = per_target_clean(manifest)
    rate = manifest.tracks[0].sample_rate
    dataset = data.per_stem_set(manifest, SOURCES, clean, seed=7, samplerate=rate, **EXCERPTS)
    return manifest, clean, rate, dataset


def test_an_example_never_holds_a_stem_its_source_drops(per_stem):
    manifest, clean, rate, dataset = per_stem
    assert dataset.kept() == clean.keep
    songs = {track: data.wavset(manifest.subset([track]), SOURCES, samplerate=rate, **EXCERPTS) for track in manifest.ids}
    for epoch in range(3):
        used = {s: Counter() for s in SOURCES}
        for index in range(len(dataset)):
            example = dataset[(epoch, index)]
            assert example.shape == (len(SOURCES), 2, int(EXCERPTS["segment"] * rate))
            for k, (source, (track, excerpt)) in enumerate(dataset.origin(index, epoch).items()):
                assert track in clean.keep[source], (epoch, index, source, track)
                # The audio is that track's stem at that excerpt, as demucs' Wavset reads the whole song.
                assert torch.equal(example[k], songs[track][excerpt][SOURCES.index(source)])
                used[source][track, excerpt] += 1
        for source, counts in used.items():
            excerpts = len(dataset.sets[source])
            # Every kept excerpt of the source, each ⌊len/M⌋ or ⌈len/M⌉ times an epoch.
            assert len(counts) == excerpts == 5 * len(clean.keep[source])
            assert set(counts.values()) <= {len(dataset) // excerpts, -(-len(dataset) // excerpts)}
    assert len(dataset) == max(len(s) for s in dataset.sets.values())


def test_an_example_is_the_same_for_the_same_index_and_epoch(per_stem, tiny_data):
    manifest, clean, rate, dataset = per_stem
    data._order.cache_clear()
    again = data.per_stem_set(manifest, SOURCES, clean, seed=7, samplerate=rate, **EXCERPTS)
    for index in (0, 5, len(dataset) - 1):
        assert again.origin(index, 3) == dataset.origin(index, 3)
        assert torch.equal(again[(3, index)], dataset[(3, index)])
    assert torch.equal(dataset[4], dataset[(0, 4)])
    draws = [[dataset.draw(i, epoch) for i in range(len(dataset))] for epoch in (0, 1)]
    assert draws[0] != draws[1]  # each epoch draws anew
    other_seed = data.per_stem_set(manifest, SOURCES, clean, seed=8, samplerate=rate, **EXCERPTS)
    assert [other_seed.draw(i) for i in range(len(dataset))] != draws[0]
    with pytest.raises(IndexError):
        dataset.draw(len(dataset))

    # The sampler counts epochs from where a resumed XP starts.
    sampler = data.EpochSampler(range(3), first_epoch=2)
    assert list(sampler) == [(2, 0), (2, 1), (2, 2)] and list(sampler) == [(3, 0), (3, 1), (3, 2)]
    assert len(sampler) == 3


def test_a_clean_manifest_without_a_source_is_refused(tiny_data):
    manifest = tiny_data.manifest("train")
    clean = per_target_clean(manifest)
    del clean.keep["other"]
    with pytest.raises(CleanManifestError, match="no list for target 'other'"):
        data.per_stem_set(manifest, SOURCES, clean, **EXCERPTS)
    # A unified manifest gives every source its one list.
    unified = CleanManifest(keep=manifest.ids[:3], dataset_hash=manifest.hash)
    assert data.per_stem_set(manifest, SOURCES, unified, **EXCERPTS).kept() == {s: manifest.ids[:3] for s in SOURCES}


def test_per_stem_training_through_the_adapter(tiny_data, tmp_path, monkeypatch):
    manifest = tiny_data.manifest("train")
    clean = per_target_clean(manifest)
    clean.write(tmp_path / "clean.json")
    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"], clean=tmp_path / "clean.json",
                     preset="tiny_hdemucs", overrides={"max_batches": 2, "dora.dir": str(tmp_path / "xps")}, epochs=1,
                     epoch_updates=2, seed=3, device="cpu", quiet=True, per_stem=True)
    assert "dset.per_stem=true" in demucs_argv(spec, {})
    assert not any("per_stem" in a for a in demucs_argv(TrainSpec(train=spec.train, valid=spec.valid), {}))
    result = DemucsToolkit().train(spec, tmp_path / "model")
    assert result.tracks == clean.keep  # each source's own list, in dataset order
    assert json.loads((result.checkpoint / TRACKS).read_text()) == clean.keep
    assert result.epochs == {UNIT: 1}

    # The XP in this process: its solver trains on a per-stem set, and resumed after its one epoch
    # it draws epoch 1's examples next.
    monkeypatch.setattr(train.main.dora, "dir", tmp_path / "xps")
    xp = train.main.get_xp(demucs_argv(spec, {"max_batches": 2}))
    assert xp.folder == result.checkpoint and xp.cfg.dset.per_stem is True
    train.main.init_xp(xp)
    with xp.enter():
        solver = train.get_solver(xp.cfg)
    loader = solver.loaders["train"]
    assert isinstance(loader.dataset, data.PerStemSet) and loader.dataset.seed == 3
    assert isinstance(loader.sampler, data.EpochSampler) and loader.sampler.epoch == 1
    assert len(loader) == 2  # epoch_updates batches


# --- the pipeline ---------------------------------------------------------------------------------


def test_the_train_key_is_unchanged_without_per_stem():
    spec = TrainSpec(train=Path("train.jsonl"), valid=Path("valid.jsonl"), clean=Path("clean.json"), targets=None,
                     preset="tiny_hdemucs", overrides={"hdemucs.channels": 8, "dora.dir": "/xps"}, epochs=3,
                     epoch_updates=5, seed=1, device="cpu", quiet=True)
    store = ArtifactStore("unused")
    config = stages.train_config("demucs", spec)
    assert "per_stem" not in config
    # The key main's stages.train gave this spec before per_stem existed.
    assert store.key("train", config, ["a", "b", "c"]) == "4069b5531c282b14"
    on = stages.train_config("demucs", dataclasses.replace(spec, per_stem=True))
    assert on == {**config, "per_stem": True}
    # Where the toolkit keeps its runs is not what the model is: the same key from any workspace.
    assert stages.train_config("demucs", dataclasses.replace(spec, workspace=Path("/elsewhere"))) == config


def test_the_experiment_names_no_toolkit_and_hands_every_spec_its_workspace(tmp_path):
    """The core passes a workspace; the Demucs adapter makes it dora.dir (a dora.dir override wins)."""
    from sepclean_plugins.demucs.toolkit import DemucsToolkit

    data_ = stages.Data(tmp_path, {"train": tmp_path / "train.jsonl", "valid": tmp_path / "valid.jsonl"}, None)
    experiment = _experiment("per-target", tmp_path)
    for arch in ("openunmix", "hdemucs"):
        spec = experiment.spec(arch, data_, "train")
        assert spec.workspace == tmp_path and "dora.dir" not in spec.overrides
    seen = {}

    def run(command, env, **kwargs):
        seen["dir"] = env["SEPCLEAN_DEMUCS_DIR"]
        raise RuntimeError("stop before training")

    import subprocess
    from unittest import mock

    spec = experiment.spec("hdemucs", data_, "train")
    with mock.patch.object(subprocess, "run", run), pytest.raises(RuntimeError, match="stop before training"):
        DemucsToolkit().train(spec, tmp_path / "out")
    assert seen["dir"] == str(tmp_path.absolute())


def _experiment(mode: str, tmp_path) -> Experiment:
    archs = {"openunmix": {"toolkit": "openunmix", "targets": ["vocals"], "epochs": 1},
             "hdemucs": {"toolkit": "demucs", "epochs": 1}}
    return Experiment({"mode": mode, "seed": 0, "archs": archs}, ArtifactStore(tmp_path), tmp_path)


def test_per_stem_mode_is_for_joint_models_with_a_clean_manifest(tmp_path):
    data_ = stages.Data(tmp_path, {"train": tmp_path / "train.jsonl", "valid": tmp_path / "valid.jsonl"}, None)
    clean = tmp_path / "clean.json"
    per_stem = _experiment("per-stem", tmp_path)
    assert per_stem.spec("hdemucs", data_, "train", clean).per_stem
    assert not per_stem.spec("hdemucs", data_, "train").per_stem  # controls and the dirty baseline
    assert not per_stem.spec("openunmix", data_, "train", clean).per_stem  # per-target models: as per-target
    assert not _experiment("per-target", tmp_path).spec("hdemucs", data_, "train", clean).per_stem
    # Open-Unmix's per-stem model is its per-target one: the same artifact.
    assert stages.train_config("openunmix", per_stem.spec("openunmix", data_, "train", clean)) == \
        stages.train_config("openunmix", _experiment("per-target", tmp_path).spec("openunmix", data_, "train", clean))


def test_metrics_count_what_each_source_trained_on(tiny_data):
    data_ = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    pool = tiny_data.manifest("train").ids
    lists = per_target_clean(tiny_data.manifest("train")).keep
    evaluation = {"median": {"vocals": 1.0}, "average": 1.0}
    out = metrics(data_, TrainResult(Path("xp"), lists, {UNIT: 1}, {UNIT: 2}), evaluation, None)
    assert out["kept"] == sum(map(len, lists.values())) / 4 and out["kept_per_unit"] == {s: len(v) for s, v in lists.items()}
    truth = tiny_data.contamination["tracks"]
    bad = {t for t in pool if truth[t]["contaminated"]}
    assert out["removed_contaminated"] == sum(len(bad - set(v)) for v in lists.values()) / 4
