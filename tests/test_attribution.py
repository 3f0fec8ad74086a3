"""`sepclean attribute` through the real toolkit adapters: outputs, shards, resume, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import tree_state
from scipy.stats import spearmanr

from sepclean import STEMS
from sepclean.attribution import run as attribution
from sepclean.attribution.engine import AttributionError
from sepclean.attribution.run import Run, Settings, Shard, finalize, merge
from sepclean.cli import main as cli
from sepclean.manifest import Manifest
from sepclean.scores import ScoreTable

TARGETS = ["vocals", "bass"]
SETTINGS = Settings(strength=0.05, segment=2.0)


def make_run(tiny_data, umx, out, settings=SETTINGS, reference="reference"):
    return Run("openunmix", umx, tiny_data.manifest("train"), tiny_data.manifest(reference), out, TARGETS,
               settings, progress=False)


@pytest.fixture(scope="module")
def full(tiny_data, umx, tmp_path_factory):
    out = tmp_path_factory.mktemp("attribution")
    assert make_run(tiny_data, umx, out).compute()
    return out


def test_outputs(tiny_data, full):
    train, reference = tiny_data.manifest("train"), tiny_data.manifest("reference")
    with np.load(full / "delta_loss.npz", allow_pickle=False) as arrays:
        delta, baseline = arrays["delta"], arrays["baseline"]
        assert delta.shape == (len(train), len(reference), 2) and baseline.shape == (len(train), 2)
        assert list(arrays["train"]) == train.ids and list(arrays["targets"]) == TARGETS
    assert np.isfinite(delta).all() and (baseline > 0).all()
    table = ScoreTable.read(full)
    assert table.method == "attribute" and table.targets == TARGETS
    np.testing.assert_allclose([table.scores[t]["vocals"] for t in train.ids], delta[:, :, 0].mean(1))
    np.testing.assert_allclose([table.scores[t]["all"] for t in train.ids], delta.mean((1, 2)))
    relative = ScoreTable.read(full / "relative")
    np.testing.assert_allclose([relative.scores[t]["bass"] for t in train.ids],
                               (delta[:, :, 1] / baseline[:, None, 1]).mean(1))
    loss = ScoreTable.read(full / "loss")
    np.testing.assert_allclose([loss.scores[t]["vocals"] for t in train.ids], -baseline[:, 0])
    meta = table.metadata
    assert meta["manifests"] == {"train": train.hash, "reference": reference.hash}
    assert set(meta["models"]) == set(TARGETS) and meta["settings"]["strength"] == 0.05
    for target in TARGETS:  # α is derived from the strength, and recorded with it
        assert meta["alpha"][target] == pytest.approx(meta["step"][target] * len(train))
        assert meta["own_loss_rise"][target] == pytest.approx(0.05, rel=0.06)


def test_unlearning_a_training_track_raises_its_own_loss_most(tiny_data, umx, tmp_path):
    # Use training tracks as references: each one's own ΔL should stand out (and a warning says so).
    with pytest.warns(UserWarning, match="also training tracks"):
        run = make_run(tiny_data, umx, tmp_path, reference="train")
    run.compute()
    with np.load(tmp_path / "delta_loss.npz") as arrays:
        delta = arrays["delta"].mean(2)  # (train, reference)
    own = np.diag(delta)
    assert (own > 0).all()
    assert (own >= delta.max(0) - 1e-12).mean() >= 0.75  # the diagonal is (nearly always) each column's max


def test_shards_resume_and_merge(tiny_data, umx, full, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert not make_run(tiny_data, umx, a).compute(Shard(0, 2))
    # Shard 1 is "killed" after its first reference, then resumed without recomputing it.
    real = attribution.delta_losses
    calls = []

    def dying(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(attribution, "delta_losses", dying), pytest.raises(KeyboardInterrupt):
        make_run(tiny_data, umx, b).compute(Shard(1, 2))
    done = sorted(p.name for p in (b / "parts" / "vocals").glob("ref_*.npz"))
    assert done == ["ref_00001.npz"]
    before = (b / "parts" / "vocals" / done[0]).stat().st_mtime_ns
    recomputed = []
    with mock.patch.object(attribution, "delta_losses", lambda *a, **k: recomputed.append(1) or real(*a, **k)):
        make_run(tiny_data, umx, b).compute(Shard(1, 2))
    assert (b / "parts" / "vocals" / done[0]).stat().st_mtime_ns == before
    assert len(recomputed) == 1  # only bass's reference 1 was left (vocals' was finished)
    merge(a, [b])
    np.testing.assert_allclose(np.load(a / "delta_loss.npz")["delta"], np.load(full / "delta_loss.npz")["delta"],
                               rtol=1e-5, atol=1e-9)


def test_merge_refuses_shards_of_another_run(tiny_data, umx, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_run(tiny_data, umx, a).compute(Shard(0, 2))
    make_run(tiny_data, umx, b, Settings(strength=0.1, segment=2.0)).compute(Shard(1, 2))
    with pytest.raises(AttributionError, match="different attribution run"):
        merge(a, [b])
    with pytest.raises(AttributionError, match="another attribution run"):
        make_run(tiny_data, umx, a, Settings(strength=0.1, segment=2.0)).compute(Shard(1, 2))
    with pytest.raises(AttributionError, match="not computed yet"):
        finalize(a)


def test_linear_mode_and_mode_comparison(tiny_data, umx, full, tmp_path, capsys):
    out = tmp_path / "linear"
    assert make_run(tiny_data, umx, out, Settings(mode="linear", strength=0.05, segment=2.0)).compute()
    linear = np.load(out / "delta_loss.npz")["delta"]
    exact = np.load(full / "delta_loss.npz")["delta"]
    assert linear.shape == exact.shape and np.sign(linear.mean()) == np.sign(exact.mean())
    args = ["score", "attribute", "--baseline", str(umx), "--train",
            str(tiny_data.manifests["train"]), "--reference", str(tiny_data.manifests["reference"]), "-o",
            str(tmp_path / "cmp"), "--targets", "vocals", "--segment", "2", "--strength", "0.02",
            "--compare-modes", "2", "--quiet"]
    assert cli(args) == 0
    assert "vocals: Spearman(linear, exact) = " in capsys.readouterr().out


def test_self_influences_make_linear_cosine_a_cosine(tiny_data, umx, tmp_path):
    # Linear mode: ΔL_ij = step · g_iᵀPg_j, so ΔL_ij / sqrt(s_i s_j) is step times a cosine: at most
    # step in size, and exactly step where the reference is the training track itself.
    with pytest.warns(UserWarning, match="also training tracks"):
        run = make_run(tiny_data, umx, tmp_path, Settings(mode="linear", strength=0.05, segment=2.0),
                       reference="train")
    run.compute()
    train_norm, reference_norm = run.norms()
    assert train_norm.shape == (len(tiny_data.manifest("train")), 2) and (train_norm > 0).all()
    np.testing.assert_allclose(train_norm, reference_norm, rtol=1e-4)  # the same tracks, one target a unit
    with np.load(tmp_path / "delta_loss.npz") as arrays:
        delta, step = arrays["delta"], arrays["step"]
    cosine = delta / np.sqrt(train_norm[:, None, :] * reference_norm[None, :, :]) / step
    assert np.abs(cosine).max() <= 1 + 1e-4
    np.testing.assert_allclose(np.einsum("iit->it", cosine), 1.0, rtol=1e-4)
    assert (tmp_path / "parts" / "vocals" / "norms.npz").is_file()  # computed once, then read


def test_attribute_scorer_scorings_share_one_run(tiny_data, umx, full):
    from sepclean.attribution import scoring as rules
    from sepclean.scorers import Baseline, ScoringTask, create

    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"), Baseline("openunmix", umx),
                       progress=False)
    common = dict(targets=TARGETS, strength=0.05, segment=2.0)
    paper = create("attribute", **common).score(task, full)
    stored = ScoreTable.read(full)
    for track in stored.tracks:
        assert paper.scores[track] == pytest.approx(stored.scores[track])
    variant = create("attribute", **common, scoring="relative", references="rank", unified="worst")
    assert variant.run_config() == create("attribute", **common).run_config() != variant.config()
    table = variant.score(task, full)
    with np.load(full / "delta_loss.npz") as arrays:
        per_target, unified = rules.scores(arrays["delta"], arrays["baseline"], "relative", "rank", "worst")
    train = tiny_data.manifest("train").ids
    np.testing.assert_allclose([table.scores[t]["bass"] for t in train], per_target[:, 1])
    np.testing.assert_allclose([table.scores[t]["all"] for t in train], unified)
    assert table.metadata["unified"] == "worst" and table.metadata["references"] == "rank"


def test_attribution_over_checkpoints_pools_their_references(tiny_data, umx, tmp_path):
    from sepclean.attribution import scoring as rules
    from sepclean.scorers import Baseline, ScorerError, ScoringTask, create
    from sepclean_plugins.openunmix import checkpoint

    # --save-every 1 kept each epoch as a run folder; the last one holds the final weights.
    final = checkpoint.load(checkpoint.state_path(umx, "bass"))["state_dict"]
    kept = checkpoint.load_model(umx / "epochs" / "e0002", "bass").state_dict()
    assert all(torch.equal(final[k], kept[k]) for k in final)
    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"), Baseline("openunmix", umx),
                       progress=False)
    common = dict(targets=TARGETS, strength=0.05, segment=2.0, mode="linear")
    table = create("attribute", **common, checkpoints=[1, 2], references="rank").score(task, tmp_path)
    arrays = [np.load(tmp_path / f"e000{e}" / "delta_loss.npz") for e in (1, 2)]
    assert not np.allclose(arrays[0]["delta"], arrays[1]["delta"])
    pooled = np.concatenate([a["delta"] for a in arrays], axis=1)  # (train, 2 x references, targets)
    per_target = rules.over_references(pooled, "rank")
    train = tiny_data.manifest("train").ids
    np.testing.assert_allclose([table.scores[t]["vocals"] for t in train], per_target[:, 0])
    assert table.metadata["checkpoints"] == [str(umx / "epochs" / f"e000{e}") for e in (1, 2)]
    with pytest.raises(ScorerError, match="--save-every"):
        create("attribute", **common, checkpoints=[3]).score(task, tmp_path / "missing")


def test_cli_and_filter(tiny_data, umx, full, tmp_path, capsys):
    out = tmp_path / "scores"
    alpha = json.loads((full / "meta.json").read_text())["alpha"]["vocals"] / 4  # a safe scale for this model
    args = ["attribute", "--toolkit", "openunmix", "--checkpoint", str(umx), "--train",
            str(tiny_data.manifests["train"]), "--reference", str(tiny_data.manifests["reference"]), "-o", str(out),
            "--targets", "vocals", "--segment", "2", "--alpha", str(alpha), "--steps", "2", "--damping", "1e-3",
            "--parameters", "^fc", "--quiet"]
    assert cli(args) == 0  # the old spelling, an alias of `sepclean score attribute`
    assert "`sepclean attribute` is `sepclean score attribute`" in capsys.readouterr().err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["parameters"] == "^fc" and meta["alpha"]["vocals"] == pytest.approx(alpha)
    # Made in the store by the scoring stage; -o has the table and the run's outputs, not its pieces.
    [work] = [path.parent for path in (Path(os.environ["SEPCLEAN_DORA_DIR"]) / "artifacts").rglob("run.json")]
    assert (work / "parts").is_dir() and not (out / "parts").exists()
    for name in ("run.json", "delta_loss.npz", "relative/scores.csv", "loss/meta.json"):
        assert (out / name).read_bytes() == (work / name).read_bytes()
    stamps = tree_state(work.parent.parent)
    assert cli(args) == 0 and tree_state(work.parent.parent) == stamps  # found, not made again
    assert "begun by hand" not in capsys.readouterr().out and not (out / "parts").exists()  # not made in -o either
    assert cli(["filter", str(out), "--ratio", "0.5", "-o", str(tmp_path / "clean.json")]) == 0


def test_without_targets_a_run_attributes_the_targets_it_has(tiny_data, umx, tmp_path):
    run = Run("openunmix", umx, tiny_data.manifest("train"), tiny_data.manifest("reference"), tmp_path, None,
              SETTINGS, progress=False)
    assert run.targets == [t for t in STEMS if t in TARGETS] and sorted(run.models) == sorted(TARGETS)


def test_bad_input(tiny_data, umx, tmp_path, capsys):
    base = ["score", "attribute", "--baseline-toolkit", "openunmix", "--train", str(tiny_data.manifests["train"]),
            "--reference", str(tiny_data.manifests["reference"]), "-o", str(tmp_path / "x"), "--quiet"]
    assert cli(base + ["--baseline", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert cli(base[:3] + ["demucs"] + base[4:] + ["--baseline", str(umx)]) == 2  # wrong toolkit
    assert "demucs" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    Manifest([]).write(empty)
    assert cli(base[:5] + [str(empty)] + base[6:] + ["--baseline", str(umx)]) == 2
    assert "empty manifest" in capsys.readouterr().err
    with pytest.raises(AttributionError, match="i/K"):
        Shard.parse("2/2")
    for option, value, message in (("--alpha", "nan", "--alpha must be a positive number, got nan"),
                                   ("--strength", "-1", "--strength must be a positive number, got -1.0"),
                                   ("--damping", "inf", "--damping must be a number >= 0, got inf")):
        assert cli(base + ["--baseline", str(umx), option, value]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_merge_gathers_shards_into_a_new_output_folder(tiny_data, umx, full, tmp_path, capsys):
    shards = [tmp_path / "sh0", tmp_path / "sh1"]
    for i, folder in enumerate(shards):
        assert not make_run(tiny_data, umx, folder).compute(Shard(i, 2))
    before = tree_state(*shards)
    merged = tmp_path / "merged"
    assert cli(["score", "attribute", "--merge", *map(str, shards), "-o", str(merged)]) == 0
    assert f"merged 2 shard folder(s) into {merged}" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(merged / "delta_loss.npz")["delta"], np.load(full / "delta_loss.npz")["delta"],
                               rtol=1e-5, atol=1e-9)
    assert ScoreTable.read(merged).tracks == tiny_data.manifest("train").ids
    assert tree_state(*shards) == before

    # Other scorings of the merged run are finished in its folder, not begun again in the store.
    rescore = ["score", "attribute", "--baseline", str(umx), "--train", str(tiny_data.manifests["train"]),
               "--reference", str(tiny_data.manifests["reference"]), "--targets", "vocals,bass", "--strength", "0.05",
               "--segment", "2", "--scoring", "relative", "-o", str(merged), "--quiet"]
    parts = tree_state(merged / "parts")
    assert cli(rescore) == 0
    assert f"{merged} holds attribute work begun by hand" in capsys.readouterr().out
    assert tree_state(merged / "parts") == parts and not (Path(os.environ["SEPCLEAN_DORA_DIR"]) / "artifacts").exists()
    relative = ScoreTable.read(merged)
    assert relative.metadata["scoring"] == "relative"
    assert relative.column("vocals") == pytest.approx(ScoreTable.read(merged / "relative").column("vocals"))


def test_exploding_unlearning_names_the_reference(tiny_data, umx, tmp_path):
    run = make_run(tiny_data, umx, tmp_path, Settings(alpha=1e9, steps=3, segment=2.0))
    with pytest.raises(AttributionError, match="reference 'ref_0000' \\(vocals\\)"):
        run.compute()
    assert not (tmp_path / "scores.csv").exists()


def test_demucs_joint_unit(tiny_data, tmp_path):
    from demucs.hdemucs import HDemucs
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = HDemucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=4, nfft=1024)
    torch.save(serialize_model(model, OmegaConf.create({})), tmp_path / "hdemucs.th")
    references = tiny_data.manifest("reference").subset(["ref_0000", "ref_0001"])
    train = tiny_data.manifest("train").subset(tiny_data.manifest("train").ids[:3])
    run = Run("demucs", tmp_path / "hdemucs.th", train, references, tmp_path / "out",
              settings=Settings(strength=0.05, segment=1.0), progress=False)
    assert run.compute()
    with np.load(tmp_path / "out" / "delta_loss.npz") as arrays:
        assert arrays["delta"].shape == (3, 2, 4) and list(arrays["targets"]) == ["drums", "bass", "other", "vocals"]
        assert np.isfinite(arrays["delta"]).all()
        joint = arrays["delta"]
    shutil.rmtree(tmp_path / "out")
    # Per stem: target t's ΔL when only the reference's target-t loss is unlearned; exact and linear
    # (different code paths) estimate the same quantity. Damped: with the bare F⁻¹ of this untrained
    # model the step is far outside the linear regime (Spearman about 0 even for joint unlearning).
    per_stem = {}
    for mode in ("exact", "linear"):
        run = Run("demucs", tmp_path / "hdemucs.th", train, references, tmp_path / mode,
                  settings=Settings(mode=mode, strength=0.02, damping=0.1, segment=1.0, per_stem=True), progress=False)
        assert run.compute() and json.loads((tmp_path / mode / "run.json").read_text())["settings"]["per_stem"]
        per_stem[mode] = np.load(tmp_path / mode / "delta_loss.npz")["delta"]
    assert per_stem["exact"].shape == joint.shape and not np.allclose(per_stem["exact"], joint)
    assert spearmanr(per_stem["exact"].ravel(), per_stem["linear"].ravel()).statistic > 0.6
    train_norm, reference_norm = run.norms()
    assert reference_norm.shape == (2, 4) and len(set(reference_norm[0].round(12))) == 4  # one per target


@pytest.mark.parametrize("content", ["{\"fingerprint\": ", "[1, 2]"])
def test_a_damaged_run_description_is_named(tiny_data, umx, tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(AttributionError, match="run.json: not (JSON|a run description)"):
        make_run(tiny_data, umx, tmp_path).compute()
