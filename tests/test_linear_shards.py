"""Linear-mode attribution split by training songs: one shared preconditioner (a sum of the shards'
partial sums), the references' directions computed once, each shard the ΔL of its own songs."""

from __future__ import annotations

import json
import logging
import shutil
from unittest import mock

import numpy as np
import pytest

from sepclean.attribution import run as attribution
from sepclean.attribution.engine import AttributionError
from sepclean.attribution.run import Run, Settings, Shard, merge
from sepclean.scores import ScoreTable

TARGETS = ["vocals", "bass"]
LINEAR = Settings(mode="linear", strength=0.05, segment=2.0)


def make_run(tiny_data, checkpoint, out, settings=LINEAR, train=None, **options):
    return Run("openunmix", checkpoint, train or tiny_data.manifest("train"), tiny_data.manifest("reference"), out,
               TARGETS, settings, progress=False, **options)


@pytest.fixture(scope="module")
def whole(tiny_data, umx, tmp_path_factory):
    """The unsharded linear run, in pieces of the default size (all 8 songs in one)."""
    out = tmp_path_factory.mktemp("whole")
    assert make_run(tiny_data, umx, out).compute()
    return out


def test_song_shards_resume_and_merge_to_the_unsharded_run(tiny_data, umx, whole, tmp_path):
    out = tmp_path / "sharded"
    parts = out / "parts" / "vocals"
    # 8 songs in pieces of one song: shard 0/3 takes songs 0-1, 1/3 songs 2-4, 2/3 songs 5-7.
    assert Shard(1, 3).songs(8, 1) == [(2, 3), (3, 4), (4, 5)]

    def shard(i):
        return make_run(tiny_data, umx, out, songs_per_piece=1).compute(Shard(i, 3))

    # Round 1: shards 0 and 1 sum their part of the preconditioner and stop: shard 2's is missing.
    assert not shard(0) and not shard(1)
    assert sorted(p.name for p in parts.iterdir() if not p.name.startswith(".")) == [
        "fisher_0000of0003.npz", "fisher_0001of0003.npz"]
    # Shard 2 completes the partial sums: it writes the preconditioner and the references, and stops
    # there too (its songs wait for round 2, as the other shards' do).
    assert not shard(2)
    assert sorted(p.name for p in parts.iterdir() if not p.name.startswith(".")) == [
        "preconditioner.npz", "references.npz"]  # the partial sums are in the preconditioner now
    # Round 2: shard 2 is killed after its first piece of songs.
    real = attribution.linear_block
    calls = []

    def killed_after_one_piece(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(attribution, "linear_block", killed_after_one_piece), pytest.raises(KeyboardInterrupt):
        shard(2)
    assert sorted(p.name for p in parts.glob("songs_*")) == ["songs_000005_000006.npz"]
    kept = {p: p.stat().st_mtime_ns for p in parts.glob("*.npz")}

    # Run again, shard 2 resumes: vocals' two pieces left, then bass's three.
    recomputed = []
    with mock.patch.object(attribution, "linear_block", lambda *a, **k: recomputed.append(1) or real(*a, **k)):
        assert not shard(2)
    assert len(recomputed) == 2 + 3
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items()), "a finished piece was computed again"
    # Round 2: shards 0 and 1 compute their songs; the last one writes the outputs.
    assert not shard(0)
    assert shard(1)

    with np.load(out / "delta_loss.npz") as sharded, np.load(whole / "delta_loss.npz") as unsharded:
        for name in ("train", "reference", "targets"):
            assert sharded[name].tolist() == unsharded[name].tolist()
        np.testing.assert_array_equal(sharded["step"], unsharded["step"])
        np.testing.assert_array_equal(sharded["baseline"], unsharded["baseline"])
        np.testing.assert_allclose(sharded["delta"], unsharded["delta"], rtol=1e-6, atol=0)
        assert np.abs(unsharded["delta"]).min() > 0
    for folder in ("", "relative", "loss"):
        a, b = ScoreTable.read(out / folder), ScoreTable.read(whole / folder)
        assert a.tracks == b.tracks and a.targets == b.targets
        for track in a.tracks:
            assert a.scores[track] == pytest.approx(b.scores[track], rel=1e-6)


def test_a_shard_without_songs_does_not_hold_up_the_preconditioner(tiny_data, umx, whole, tmp_path):
    # 8 songs in 2 pieces of 4 over 3 shards: shard 0/3 has none.
    assert Shard(0, 3).songs(8, 4) == [] and Shard(2, 3).songs(8, 4) == [(4, 8)]
    runs = [make_run(tiny_data, umx, tmp_path, songs_per_piece=4).compute(Shard(i, 3)) for i in (0, 1, 2, 0, 1, 2)]
    assert runs == [False, False, False, False, False, True]
    np.testing.assert_allclose(np.load(tmp_path / "delta_loss.npz")["delta"], np.load(whole / "delta_loss.npz")["delta"],
                               rtol=1e-6, atol=0)


def test_the_pipeline_runs_linear_shards_in_two_rounds(tiny_data, umx, whole, tmp_path, caplog):
    from sepclean.pipeline.artifacts import ArtifactStore
    from sepclean.pipeline.shards import Shards
    from sepclean.pipeline.stages import Data, score
    from sepclean.scorers import Baseline, create

    data = Data(tiny_data.root, dict(tiny_data.manifests), None)
    scorer = create("attribute", targets=TARGETS, mode="linear", strength=0.05, segment=2.0)
    assert scorer.shard_rounds == 2 and create("attribute").shard_rounds == 1
    caplog.set_level(logging.INFO, logger="sepclean")
    table = ScoreTable.read(score(ArtifactStore(tmp_path), scorer, data, Baseline("openunmix", umx), progress=False,
                                  shards=Shards(count=3)))
    assert caplog.messages == ["shard 0/3", "shard 1/3", "shard 2/3", "attribute: every shard again (round 2 of 2)",
                     "shard 0/3", "shard 1/3", "shard 2/3"]
    unsharded = ScoreTable.read(whole)
    for track in unsharded.tracks:
        assert table.scores[track] == pytest.approx(unsharded.scores[track], rel=1e-6)


@pytest.mark.parametrize("other", ["model", "manifest"])
def test_a_preconditioner_of_another_model_or_manifest_is_refused(tiny_data, umx, whole, tmp_path, other):
    if other == "model":  # the same network at the epoch that is not its best: other weights
        models = json.loads((whole / "run.json").read_text())["models"]
        out = next(run for run in (make_run(tiny_data, umx / "epochs" / e, tmp_path) for e in ("e0001", "e0002"))
                   if run.description["models"] != models)
        expected = r"model \(weights hash\)"
    else:
        subset = tiny_data.manifest("train").subset(tiny_data.manifest("train").ids[:6])
        out, expected = make_run(tiny_data, umx, tmp_path, train=subset), r"training manifest \(hash\)"
    foreign = tmp_path / "parts" / "vocals" / "preconditioner.npz"
    foreign.parent.mkdir(parents=True)
    shutil.copy(whole / "parts" / "vocals" / "preconditioner.npz", foreign)
    with pytest.raises(AttributionError, match=f"{foreign}: a preconditioner made for another run \\(.*{expected}"):
        out.compute()
    assert not (tmp_path / "parts" / "vocals" / "references.npz").exists()


def test_song_split_and_reference_split_runs_do_not_mix(tiny_data, umx, whole, tmp_path):
    exact = tmp_path / "exact"
    assert not make_run(tiny_data, umx, exact, Settings(strength=0.05, segment=2.0)).compute(Shard(0, 2))
    with pytest.raises(AttributionError, match="its shards split the songs, .* split the references: pieces of the two "
                                               "cannot be merged"):
        merge(exact, [whole])
    # A linear run begun before linear shards split the songs (its run.json has no "split").
    old = tmp_path / "old"
    shutil.copytree(whole, old)
    described = json.loads((old / "run.json").read_text())
    del described["split"]
    (old / "run.json").write_text(json.dumps(described))
    with pytest.raises(AttributionError, match="shards split by references, and this version splits linear mode by "
                                               "songs"):
        make_run(tiny_data, umx, old).compute()
