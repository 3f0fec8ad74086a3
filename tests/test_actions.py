"""Stem-level actions beyond drop: repair (pseudo-labels, the residual handed to one stem, a
consistency check with a recorded fallback) and weight (per-pair loss weights), carried by a
version-2 clean manifest that both toolkits apply through ``CleanManifest.apply``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sepclean.actions import (ActionError, RepairSettings, flagged_pairs, label_sdr, relabel_then_repair_track,
                              relabel_track, repair_manifest, repair_track, weight_manifest)
from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.filtering import clean_manifest, clean_posterior
from sepclean.scorers import ScoringTask, create
from sepclean.scores import ScoreTable

STEMS = ("vocals", "bass", "drums", "other")
CALIBRATED = {s: 20.0 for s in STEMS}
"""The model agrees with unflagged labels at 20 dB (the label test's calibration)."""


def _stems(seed=0, frames=4000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: rng.standard_normal((2, frames)).astype(np.float32) * 0.1 for s in STEMS}


# --- the repair of one song -----------------------------------------------------------------------

def test_a_repaired_stem_and_the_receiver_sum_back_to_the_mixture():
    truth = _stems()
    part = truth["other"][:, ::-1].copy() * 0.5  # a part of other, filed into vocals
    labels = dict(truth, vocals=truth["vocals"] + part, other=truth["other"] - part)
    result = repair_track(labels, truth, ["vocals"], RepairSettings(), CALIBRATED)
    assert result.repaired == ["vocals"] and result.receivers == ["other"]
    np.testing.assert_allclose(result.stems["vocals"] + result.stems["other"], labels["vocals"] + labels["other"],
                               atol=1e-6)
    np.testing.assert_allclose(sum(result.stems.values()), sum(labels.values()), atol=1e-6)
    np.testing.assert_allclose(result.stems["other"], truth["other"], atol=1e-6)  # the part went back home
    [decision] = result.decisions
    assert decision["decision"] == "repaired" and decision["receiver_change_db"] < -10


def test_swapped_stems_are_repaired_together_and_other_keeps_its_label():
    truth = _stems(1)
    labels = dict(truth, vocals=truth["bass"], bass=truth["vocals"])
    result = repair_track(labels, truth, ["vocals", "bass"], RepairSettings(), CALIBRATED)
    assert sorted(result.repaired) == ["bass", "vocals"] and result.receivers == ["other"]
    for s in STEMS:
        np.testing.assert_allclose(result.stems[s], truth[s], atol=1e-6)
    # Alone, either repair would hand (bass - vocals) to other by order: the check refuses it.
    alone = repair_track(labels, truth, ["vocals"], RepairSettings(receiver="order"), CALIBRATED)
    assert alone.repaired == [] and alone.decisions[0]["decision"] == "dropped"
    assert alone.decisions[0]["receiver_change_db"] > 1.0
    # split hands it to bass, where the model hears it: the unflagged half of the swap is made whole too
    split = repair_track(labels, truth, ["vocals"], RepairSettings(), CALIBRATED)
    assert split.repaired == ["vocals"] and split.receivers == ["bass"]
    for s in STEMS:
        np.testing.assert_allclose(split.stems[s], truth[s], atol=1e-6)


@pytest.mark.parametrize("fallback, decision", [("drop", "dropped"), ("keep", "kept")])
def test_a_repair_that_fails_the_check_falls_back_and_is_recorded(fallback, decision):
    labels = _stems(2)
    silent = dict(labels, vocals=np.zeros_like(labels["vocals"]))  # a model that finds no vocals at all
    result = repair_track(labels, silent, ["vocals"], RepairSettings(fallback=fallback), CALIBRATED, "song")
    assert result.repaired == [] and result.receivers == []
    for s in STEMS:
        np.testing.assert_array_equal(result.stems[s], labels[s])  # nothing moved
    [record] = result.decisions
    assert record["decision"] == decision and record["track"] == "song" and record["stem"] == "vocals"
    assert record["receiver"] == "other" and record["receiver_change_db"] > 1.0 and record["refused_by"] == "receiver"
    assert record["residual_db"] == pytest.approx(0.0, abs=1e-3)  # the whole label would have moved


def test_a_label_the_model_agrees_with_as_with_clean_ones_is_not_repaired():
    truth = _stems(3)
    leak = truth["drums"] * 10 ** (-15 / 20)  # drums leaking 15 dB down into vocals
    labels = dict(truth, vocals=truth["vocals"] + leak)
    rng = np.random.default_rng(4)
    estimates = {s: x + rng.standard_normal(x.shape).astype(np.float32) * 0.05 for s, x in truth.items()}  # ~6 dB
    calibration = {s: repair_track(truth, estimates, [s], RepairSettings(), {t: 99.0 for t in STEMS})
                   .decisions[0]["label_sdr_db"] for s in STEMS}  # what clean labels agree with the model at
    leaked = repair_track(labels, estimates, ["vocals"], RepairSettings(), calibration)
    [record] = leaked.decisions
    assert leaked.repaired == [] and record["refused_by"] == "label" and record["decision"] == "dropped"
    assert record["model_sdr_db"] - 3 < record["label_sdr_db"] < record["model_sdr_db"]
    swapped = dict(truth, vocals=truth["bass"], bass=truth["vocals"])  # a label far worse than the model
    assert sorted(repair_track(swapped, estimates, ["vocals", "bass"], RepairSettings(), calibration).repaired) == \
        ["bass", "vocals"]


def _bled():
    """Drums leaking into vocals (delayed, 6 dB down), and a model that hears the leak as drums."""
    truth = _stems(5)
    leak = np.roll(truth["drums"], 40, axis=-1) * 0.5
    labels = dict(truth, vocals=truth["vocals"] + leak)
    return truth, leak, labels, dict(truth, drums=truth["drums"] + leak)


@pytest.mark.parametrize("receiver", ["best", "split"])
def test_a_leak_goes_back_to_the_stem_it_leaked_from_where_order_plants_it_in_other(receiver):
    truth, leak, labels, estimates = _bled()
    # order hands the leak to other (accepted only with a tolerance as wide as a poor model's errors)
    order = repair_track(labels, estimates, ["vocals"], RepairSettings(receiver="order", tolerance=30), CALIBRATED)
    assert order.repaired == ["vocals"] and order.receivers == ["other"]
    np.testing.assert_allclose(order.stems["other"], truth["other"] + leak, atol=1e-6)  # contaminated
    refused = repair_track(labels, estimates, ["vocals"], RepairSettings(receiver="order"), CALIBRATED)
    assert refused.repaired == [] and refused.decisions[0]["refused_by"] == "receiver"
    # best and split give it to drums, whose estimate holds it: the receiver moves towards the model
    result = repair_track(labels, estimates, ["vocals"], RepairSettings(receiver=receiver), CALIBRATED)
    assert result.repaired == ["vocals"] and result.receivers == ["drums"]
    [decision] = result.decisions
    assert decision["receiver"] == "drums" and decision["receiver_change_db"] < -10
    assert decision.get("shares", {"drums": 1.0}) == {"drums": 1.0}
    np.testing.assert_allclose(result.stems["vocals"], truth["vocals"], atol=1e-6)
    np.testing.assert_allclose(result.stems["drums"], truth["drums"] + leak, atol=1e-6)
    for s in ("bass", "other"):
        np.testing.assert_array_equal(result.stems[s], labels[s])
    np.testing.assert_allclose(sum(result.stems.values()), sum(labels.values()), atol=1e-6)  # the mixture


def test_split_shares_a_residual_by_least_squares_and_the_mixture_stays_whole():
    truth = _stems(6)
    leaks = {"drums": np.roll(truth["drums"], 40, axis=-1) * 0.5, "bass": np.roll(truth["bass"], 25, axis=-1) * 0.3}
    labels = dict(truth, vocals=truth["vocals"] + sum(leaks.values()))
    estimates = dict(truth, **{s: truth[s] + leak for s, leak in leaks.items()})
    result = repair_track(labels, estimates, ["vocals"], RepairSettings(receiver="split"), CALIBRATED)
    shares = result.decisions[0]["shares"]
    assert result.receivers == ["bass", "drums"] and set(shares) == {"bass", "drums"}  # other: no share
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    energy = {s: float(np.sum(np.square(x, dtype=np.float64))) for s, x in leaks.items()}
    assert shares["drums"] == pytest.approx(energy["drums"] / sum(energy.values()), abs=0.02)  # scalar shares
    np.testing.assert_allclose(sum(result.stems.values()), sum(labels.values()), atol=1e-6)
    # the shares are a projection onto the simplex: negative ones are cut to 0
    from sepclean.actions import residual_shares
    np.testing.assert_allclose(residual_shares(np.ones(4), [np.ones(4) * 2, -np.ones(4), np.zeros(4)]), [1, 0, 0])
    np.testing.assert_allclose(residual_shares(np.zeros(4), [np.ones(4), np.ones(4)]), [1, 0])


# --- relabel: a song's flagged labels permuted among its stems -----------------------------------

def test_swapped_stems_are_relabelled_back_with_their_own_audio():
    truth = _stems(5)
    labels = dict(truth, vocals=truth["bass"], bass=truth["vocals"])
    rng = np.random.default_rng(6)
    estimates = {s: x + rng.standard_normal(x.shape).astype(np.float32) * 0.07 for s, x in truth.items()}  # ~3 dB
    calibration = {s: 3.0 for s in STEMS}
    result = relabel_track(labels, estimates, ["vocals", "bass"], RepairSettings(), calibration, "song")
    assert sorted(result.repaired) == ["bass", "vocals"] and result.receivers == []
    for s in STEMS:  # the dataset's own audio, not a 3 dB model's estimates
        np.testing.assert_array_equal(result.stems[s], truth[s])
    assert {d["stem"]: d["label_from"] for d in result.decisions} == {"vocals": "bass", "bass": "vocals"}
    assert all(d["decision"] == "relabelled" for d in result.decisions)
    # repairing the same swap with that model gives its estimates: 3 dB labels
    repaired = repair_track(labels, estimates, ["vocals", "bass"], RepairSettings(), calibration)
    assert sorted(repaired.repaired) == ["bass", "vocals"]
    assert not np.array_equal(repaired.stems["vocals"], truth["vocals"])


def test_a_cycle_of_three_is_relabelled_and_only_flagged_labels_move():
    truth = _stems(7)
    labels = dict(truth, vocals=truth["drums"], drums=truth["other"], other=truth["vocals"])
    result = relabel_track(labels, truth, ["vocals", "drums", "other"], RepairSettings(), CALIBRATED)
    for s in STEMS:
        np.testing.assert_array_equal(result.stems[s], truth[s])
    # With other unflagged, no permutation of the two flagged labels fixes them: both fall back.
    partial = relabel_track(labels, truth, ["vocals", "drums"], RepairSettings(fallback="keep"), CALIBRATED)
    assert partial.repaired == [] and [d["decision"] for d in partial.decisions] == ["kept", "kept"]
    assert all(d["refused_by"] == "relabel" for d in partial.decisions)


def test_a_moved_part_or_a_leak_is_no_permutation_and_falls_back():
    truth = _stems(8)
    part = truth["other"] * 0.5
    moved = dict(truth, vocals=truth["vocals"] + part, other=truth["other"] - part)
    leak = dict(truth, vocals=truth["vocals"] + truth["drums"] * 0.2)
    for labels, flagged in ((moved, ["vocals", "other"]), (leak, ["vocals"])):
        result = relabel_track(labels, truth, flagged, RepairSettings(), CALIBRATED)
        assert result.repaired == [] and {d["decision"] for d in result.decisions} == {"dropped"}
        for s in STEMS:
            np.testing.assert_array_equal(result.stems[s], labels[s])


def test_relabel_then_repair_swaps_back_with_own_audio_and_repairs_what_no_permutation_fixes():
    truth = _stems(9)
    part = truth["other"][:, ::-1].copy() * 0.5  # a part of other, filed into drums
    labels = dict(truth, vocals=truth["bass"], bass=truth["vocals"], drums=truth["drums"] + part,
                  other=truth["other"] - part)
    rng = np.random.default_rng(10)
    estimates = {s: x + rng.standard_normal(x.shape).astype(np.float32) * 0.02 for s, x in truth.items()}  # ~14 dB
    calibration = {s: label_sdr(truth[s], estimates[s]) for s in STEMS}
    result = relabel_then_repair_track(labels, estimates, ["vocals", "bass", "drums"], RepairSettings(), calibration)
    assert [(d["stem"], d["decision"]) for d in result.decisions] == [
        ("vocals", "relabelled"), ("bass", "relabelled"), ("drums", "repaired")]
    assert sorted(result.repaired) == ["bass", "drums", "vocals"] and result.receivers == ["other"]
    for s in ("vocals", "bass"):  # the swap: the dataset's own audio
        np.testing.assert_array_equal(result.stems[s], truth[s])
    np.testing.assert_allclose(result.stems["drums"], estimates["drums"], atol=1e-6)  # the moved part: the estimate
    np.testing.assert_allclose(sum(result.stems.values()), sum(labels.values()), atol=1e-5)
    assert label_sdr(truth["other"], result.stems["other"]) > label_sdr(truth["other"], labels["other"]) + 6  # the part came home
    # nothing left to repair: relabelling alone
    swapped = dict(truth, vocals=truth["bass"], bass=truth["vocals"])
    alone = relabel_then_repair_track(swapped, estimates, ["vocals", "bass"], RepairSettings(), calibration)
    assert alone.receivers == [] and all(d["decision"] == "relabelled" for d in alone.decisions)


@pytest.mark.parametrize("receiver, relabelled_receive", [("order", True), ("best", False), ("split", False)])
def test_relabelled_stems_keep_their_own_audio_but_under_the_order_rule(receiver, relabelled_receive):
    truth = _stems(9)
    part = truth["other"][:, ::-1].copy() * 0.5  # a part of other, filed into drums; vocals and bass swapped
    labels = dict(truth, vocals=truth["bass"], bass=truth["vocals"], drums=truth["drums"] + part, other=truth["other"] - part)
    # the model hears the part in vocals and other: split would hand vocals a share, order hands it all
    estimates = dict(truth, vocals=truth["vocals"] + 0.1 * part, other=truth["other"] - 0.1 * part)
    settings = RepairSettings(receiver=receiver, residual=("vocals", "other", "bass", "drums"), tolerance=30)
    result = relabel_then_repair_track(labels, estimates, ["vocals", "bass", "drums"], settings, CALIBRATED)
    assert [(d["stem"], d["decision"]) for d in result.decisions] == [
        ("vocals", "relabelled"), ("bass", "relabelled"), ("drums", "repaired")]
    assert ("vocals" in result.receivers) == relabelled_receive
    if not relabelled_receive:
        np.testing.assert_array_equal(result.stems["vocals"], truth["vocals"])  # the swap: own audio, untouched
        assert result.receivers == ["other"]
    np.testing.assert_allclose(sum(result.stems.values()), sum(labels.values()), atol=1e-5)


def test_relabel_swaps_back_two_stems_planted_swapped_in_the_tiny_profile(tiny_data, tmp_path):
    """A clean song of the tiny profile with its vocals and bass files swapped; the model (the clean
    twin) says so; the relabel manifest swaps them back, and both toolkits' datasets read the truth."""
    from conftest import copy_splits
    from sepclean.scan import scan

    copy = copy_splits(tiny_data, tmp_path / "copy", "train")
    train = copy.manifest("train")
    song = next(t for t, v in tiny_data.contamination["tracks"].items() if not v["contaminated"])
    folder = train[song].path("vocals").parent
    vocals, bass = train[song].path("vocals"), train[song].path("bass")
    vocals.rename(folder / "swap.tmp"); bass.rename(vocals); (folder / "swap.tmp").rename(bass)
    manifest, problems = scan([copy.root / "train"], progress=False, workers=1)
    assert not problems
    keep = {s: [t for t in manifest.ids if not (t == song and s in ("vocals", "bass"))] for s in STEMS}
    drop = CleanManifest(keep=keep, dataset_hash=manifest.hash, dataset_tracks=len(manifest), mode="per-target",
                         ratio=0.9, methods=["planted"])
    clean = repair_manifest(drop, manifest, _twin_separator(tiny_data), RepairSettings(), tmp_path / "relabel",
                            {"model": "the clean twin"}, action="relabel")
    clean.write(tmp_path / "relabel" / "clean.json")
    clean = CleanManifest.load(tmp_path / "relabel" / "clean.json")
    assert clean.version == 2 and clean.action == "relabel"
    decisions = clean.extra["relabel"]["decisions"]
    assert {(d["stem"], d["label_from"], d["decision"]) for d in decisions} == {
        ("vocals", "bass", "relabelled"), ("bass", "vocals", "relabelled")}
    assert clean.extra["relabel"]["counts"] == {"relabelled": 2, "dropped": 0, "kept": 0}
    twin = tiny_data.manifest("train_clean")
    [track] = [t for t in clean.apply(manifest, "vocals") if t.id == song]
    for s in STEMS:
        np.testing.assert_allclose(track.read(s), twin[song].read(s), atol=1e-6)
    assert set(clean.kept("vocals")) == set(manifest.ids)


@pytest.mark.parametrize("settings, message", [({"fallback": "maybe"}, "repair.fallback"),
                                               ({"tolerance": -1}, "repair.tolerance"),
                                               ({"tolerance": math.nan}, "repair.tolerance"),
                                               ({"margin": -3}, "repair.margin"),
                                               ({"residual": []}, "repair.residual"),
                                               ({"receiver": "other"}, "repair.receiver must be one of order, best, split"),
                                               ({"receivers": "best"}, "unknown setting")])
def test_impossible_repair_settings_are_named(settings, message):
    with pytest.raises(ActionError, match=message):
        RepairSettings.of(settings)


# --- the repair of a dataset: files, manifest, apply ---------------------------------------------

def _oracle_drop(tiny_data) -> CleanManifest:
    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"),
                       contamination=tiny_data.contamination)
    return clean_manifest(create("oracle").score(task, None), "auto", "per-target")


def _twin_separator(tiny_data):
    """A perfect model: the uncontaminated twin of every training song."""
    twin = tiny_data.manifest("train_clean")
    return lambda track, mixture: {s: twin[track.id].read(s) for s in STEMS}


@pytest.fixture(scope="module")
def repaired(tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("repair")
    drop = _oracle_drop(tiny_data)
    clean = repair_manifest(drop, tiny_data.manifest("train"), _twin_separator(tiny_data), RepairSettings(), folder,
                            {"model": "the clean twin"})
    clean.write(folder / "clean.json")
    return drop, folder / "clean.json"


def test_a_perfect_model_repairs_label_noise_and_the_check_refuses_leaks(tiny_data, repaired):
    drop, path = repaired
    clean = CleanManifest.load(path)
    truth = tiny_data.contamination["tracks"]
    assert clean.version == 2 and clean.action == "repair"
    decisions = clean.extra["repair"]["decisions"]
    assert {(d["track"], d["stem"]) for d in decisions} == {
        (t, s) for t, stems in flagged_pairs(drop, tiny_data.manifest("train")).items() for s in stems}
    for d in decisions:
        # Moved parts sum to nothing over the flagged stems: repaired. A leak would be handed to a
        # receiver the model says holds none of it: refused, dropped.
        assert d["decision"] == ("repaired" if truth[d["track"]]["kind"] == "label_noise" else "dropped"), d
    for target in STEMS:
        dropped = {d["track"] for d in decisions if d["stem"] == target and d["decision"] == "dropped"}
        assert set(clean.kept(target)) == set(drop.kept(target)) | {
            d["track"] for d in decisions if d["stem"] == target and d["decision"] == "repaired"}
        assert not dropped & set(clean.kept(target))


def test_applied_repairs_read_the_repaired_audio_and_keep_the_mixture(tiny_data, repaired):
    _, path = repaired
    clean = CleanManifest.load(path)
    train, twin = tiny_data.manifest("train"), tiny_data.manifest("train_clean")
    for target in STEMS:
        applied = clean.apply(train, target)
        assert applied.ids == clean.kept(target)
        for track in applied:
            before = train[track.id]
            mixture = sum(before.read(s) for s in STEMS)
            np.testing.assert_allclose(sum(track.read(s) for s in STEMS), mixture, atol=1e-5)
            for stem in clean.replace.get(track.id, {}):
                assert track.hashes[stem] == clean.replace[track.id][stem]["hash"] != before.hashes[stem]
                np.testing.assert_allclose(track.read(stem), twin[track.id].read(stem), atol=1e-5)
    assert not any(str(tiny_data.root) in str(p) for stems in clean.replace.values() for p in stems)

    # A replaced file that no longer holds the audio the manifest names is refused, naming it.
    track, stems = next(iter(clean.replace.items()))
    stem, entry = next(iter(stems.items()))
    tampered = path.parent / entry["path"]
    original = tampered.read_bytes()
    try:
        data = bytearray(original)
        data[-4:] = b"\x00\x00\x80\x3f"
        tampered.write_bytes(bytes(data))
        with pytest.raises(CleanManifestError, match=f"repaired {stem} of {track}: .* hash differs"):
            clean.apply(train, stem)
    finally:
        tampered.write_bytes(original)


def test_versions_old_load_new_refused_naming_the_version(tiny_data, repaired, tmp_path):
    from openunmix.data import FixedSourcesTrackFolderDataset

    from sepclean.toolkit import ToolkitError
    from sepclean_plugins.openunmix import audio_compat, clean as umx_clean

    _, path = repaired
    # A version-1 file as sepclean wrote it before actions existed still loads and applies.
    ids = tiny_data.manifest("train").ids
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({"format": "sepclean.clean", "version": 1, "dataset": {"hash": None, "tracks": 8},
                               "mode": "unified", "ratio": 0.75, "methods": ["fad"], "keep": ids[:6]}))
    v1 = CleanManifest.load(old)
    assert v1.action == "drop" and v1.apply(tiny_data.manifest("train")).ids == ids[:6]
    assert json.loads(json.dumps(v1.to_json()))["version"] == 1  # a drop manifest is still written as version 1

    # A version this code does not know is refused, naming it.
    future = tmp_path / "v3.json"
    future.write_text(json.dumps({**json.loads(path.read_text()), "version": 3}))
    with pytest.raises(CleanManifestError, match="clean manifest version 3; this sepclean reads versions 1, 2"):
        CleanManifest.load(future)

    # Upstream's own datasets (open-unmix --root, run_upstream) cannot read replaced stems: refused, naming version 2.
    audio_compat.install()
    upstream = FixedSourcesTrackFolderDataset(root=str(tiny_data.root), split="train", target_file="vocals.wav",
                                              interferer_files=["bass.wav", "drums.wav", "other.wav"])
    with pytest.raises(ToolkitError, match="cannot apply a version-2 clean manifest with repaired stems"):
        umx_clean.apply(CleanManifest.load(path), "vocals", upstream)
    assert len(upstream.tracks) == 8  # untouched


# --- weight ---------------------------------------------------------------------------------------

def _planted_table(tiny_data) -> ScoreTable:
    train = tiny_data.manifest("train")
    truth = tiny_data.contamination["tracks"]
    rng = np.random.default_rng(0)
    columns = {s: {t: float(rng.normal(-2.0 if s in truth[t]["stems"] else 1.0, 0.3)) for t in train.ids}
               for s in STEMS}
    task = ScoringTask(train, tiny_data.manifest("reference"))
    unified = {t: float(np.mean([columns[s][t] for s in STEMS])) for t in train.ids}
    return ScoreTable.from_columns("planted", train.ids, columns, create("random").record(task), unified)


def test_weights_are_the_clean_posterior_of_the_auto_fit(tiny_data, tmp_path):
    table = _planted_table(tiny_data)
    clean = weight_manifest(table, "per-target")
    assert clean.action == "weight" and all(clean.kept(t) == table.tracks for t in STEMS)
    for target in STEMS:
        column = table.column(target)
        assert clean.weights_of(target) == pytest.approx(clean_posterior(column))
        auto = set(clean_manifest(table, "auto", "per-target").kept(target))
        assert {t for t, w in clean.weights_of(target).items() if w >= 0.5} == auto  # what auto keeps
        order = sorted(column, key=column.get)
        assert [clean.weights_of(target)[t] for t in order] == sorted(clean.weights_of(target).values())
    clean.write(tmp_path / "w.json")
    assert CleanManifest.load(tmp_path / "w.json").weights == clean.weights

    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"),
                       contamination=tiny_data.contamination)
    oracle = weight_manifest(create("oracle").score(task, None), "per-target")  # a cut: weights 1 and 0
    truth = tiny_data.contamination["tracks"]
    assert oracle.weights_of("other") == {t: 0.0 if "other" in truth[t]["stems"] else 1.0 for t in table.tracks}


def test_filter_cli_writes_weights(tiny_data, tmp_path, capsys):
    from sepclean.cli import main

    table = _planted_table(tiny_data)
    table.write(tmp_path / "scores")
    out = tmp_path / "weights.json"
    assert main(["filter", str(tmp_path / "scores"), "--ratio", "auto", "--mode", "per-target", "--action", "weight",
                 "-o", str(out)]) == 0
    assert CleanManifest.load(out).weights == weight_manifest(table, "per-target").weights
    assert "every pair kept with a loss weight" in capsys.readouterr().out
    assert main(["filter", str(tmp_path / "scores"), "--ratio", "0.5", "--action", "weight", "-o", str(out)]) == 2
    assert "use --ratio auto" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [(float("nan"), "has weight nan"), (-0.5, "has weight -0.5"),
                                          ("1", "has weight '1'")])
def test_bad_weights_are_refused_when_read(tiny_data, tmp_path, bad, message):
    clean = weight_manifest(_planted_table(tiny_data), "per-target").to_json()
    clean["weights"]["bass"]["song_0002"] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(clean))
    with pytest.raises(CleanManifestError, match=f"{path}: clean manifest weights: bass of song_0002 {message}"):
        CleanManifest.load(path)
    clean["weights"]["bass"] = {t: 0.0 for t in clean["weights"]["bass"]}
    path.write_text(json.dumps(clean))
    with pytest.raises(CleanManifestError, match="every bass pair has weight 0"):
        CleanManifest.load(path)


def test_open_unmix_examples_carry_their_weight_to_the_loss(tiny_data):
    from openunmix.model import OpenUnmix

    from sepclean_plugins.openunmix.adapter import OpenUnmixToolkit
    from sepclean_plugins.openunmix.spectrogram import StftConfig, magnitude_mse, make_encoder
    from sepclean_plugins.openunmix.train import run_epoch

    clean = weight_manifest(_planted_table(tiny_data), "per-target")
    dataset = OpenUnmixToolkit().dataset(tiny_data.manifest("train"), "drums", clean=clean, deterministic=True,
                                         segment=1.0)
    weights = clean.weights_of("drums")
    for index, entry in enumerate(dataset.tracks):
        assert dataset[index][2].item() == pytest.approx(weights[entry["id"]])

    torch.manual_seed(0)
    stft = StftConfig(nfft=256, nhop=128, sample_rate=8000.0, nb_channels=2)
    encoder = make_encoder(stft)
    unmix = OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=8, max_bin=129)
    x, y = torch.rand(4, 2, 4096) - 0.5, torch.rand(4, 2, 4096) - 0.5
    w = torch.tensor([1.0, 0.0, 0.25, 1.0])
    with torch.no_grad():
        unmix.train()
        torch.manual_seed(1)
        losses = magnitude_mse(unmix, encoder, x, y)
    grads = []

    def keep_gradient(module, inputs, output):
        output.register_hook(grads.append)

    unmix.register_forward_hook(keep_gradient)
    optimizer = torch.optim.SGD(unmix.parameters(), lr=0.0)
    torch.manual_seed(1)
    reported = run_epoch(unmix, encoder, [(x, y, w)], "cpu", optimizer)
    assert reported == pytest.approx((losses * w).mean().item(), rel=1e-5)
    assert (grads[0][1] == 0).all() and (grads[0][[0, 2, 3]] != 0).any(dim=(1, 2, 3)).all()
    assert grads[0][2].abs().sum() < grads[0][0].abs().sum()


# --- both toolkits train on the same repaired data ------------------------------------------------

def test_both_toolkits_read_the_repaired_stems(tiny_data, repaired):
    from sepclean_plugins.demucs import DemucsToolkit
    from sepclean_plugins.demucs.data import track_metadata
    from sepclean_plugins.openunmix.adapter import OpenUnmixToolkit

    _, path = repaired
    clean = CleanManifest.load(path)
    train, twin = tiny_data.manifest("train"), tiny_data.manifest("train_clean")
    track_id = next(t for t, stems in clean.replace.items() if "bass" in stems)  # label noise, repaired
    assert track_id in clean.kept("bass") and track_id in clean.kept(None)

    umx = OpenUnmixToolkit().dataset(train, "bass", clean=clean, deterministic=True, segment=1.0)
    index = OpenUnmixToolkit().examples(umx, track_id)[0]
    x, y = umx[index]
    frames = train[track_id].sample_rate
    np.testing.assert_allclose(y.numpy(), twin[track_id].read("bass", 0, frames), atol=1e-5)
    np.testing.assert_allclose(x.numpy(), train[track_id].read("mixture", 0, frames), atol=1e-5)

    tk = DemucsToolkit()
    joint = tk.dataset(train, "all", clean=clean, deterministic=True, segment=1.0)
    example = joint[tk.examples(joint, track_id)[0]]
    meta = track_metadata(train[track_id])
    expected = np.stack([twin[track_id].read(s, 0, frames) for s in tk.sources])
    np.testing.assert_allclose(example.numpy(), (expected - meta["mean"]) / meta["std"], atol=1e-4)


def test_demucs_remix_moves_the_weights_with_the_sources():
    from demucs.augment import Remix

    from sepclean_plugins.demucs.robust import PairWeights

    ids = torch.arange(1.0, 33.0).reshape(8, 4)  # (batch, sources): each pair its own number
    sources = ids[:, :, None, None].expand(8, 4, 2, 16).clone()
    carrier = PairWeights()
    augment = carrier.augment(torch.nn.Sequential(Remix(proba=1, group_size=4)))
    carrier.batch = ids
    torch.manual_seed(0)
    mixed = augment(sources)
    weights = carrier.take()
    assert not torch.equal(mixed[:, :, 0, 0], ids)  # Remix did move sources between examples
    assert torch.equal(weights, mixed[:, :, 0, 0])  # and each weight moved with its source
    torch.manual_seed(0)
    assert torch.equal(Remix(proba=1, group_size=4)(sources), mixed)  # the very draw demucs makes


def test_demucs_solver_weights_each_example_and_source(tiny_data, tmp_path, monkeypatch):
    from demucs.solver import Solver

    from sepclean_plugins.demucs import DemucsToolkit, train
    from sepclean_plugins.demucs.models import demucs_train
    from sepclean_plugins.demucs.robust import PairWeights, robust_losses
    from sepclean_plugins.demucs.toolkit import source_losses

    monkeypatch.setenv("SEPCLEAN_DEMUCS_DIR", str(tmp_path))
    monkeypatch.setattr(train.main.dora, "dir", tmp_path)
    clean = weight_manifest(_planted_table(tiny_data), "per-target")
    clean.write(tmp_path / "weights.json")
    xp = train.main.get_xp(["variant=tiny_hdemucs", f"dset.wav={tiny_data.root}",
                            f"dset.manifest={tiny_data.manifests['train']}", f"dset.clean_manifest={tmp_path / 'weights.json'}",
                            "dset.segment=1", "batch_size=4", "epoch_updates=1"])
    train.main.init_xp(xp)
    with xp.enter():
        solver = train.get_solver(xp.cfg)  # what the plugin's main trains with
        loaded = next(iter(solver.loaders["train"]))
        assert isinstance(loaded, torch.Tensor) and solver.pair_weights.batch.shape == (4, 4)
        weighted = solver.loaders["train"].dataset
        for index in range(3):
            example, w = weighted[index]
            [track] = set(weighted.origins(index))
            assert w.tolist() == pytest.approx([clean.weights_of(s)[track] for s in DemucsToolkit.sources])

    torch.manual_seed(0)
    model = demucs_train().get_model(xp.cfg)
    sources = torch.stack([weighted[i][0] for i in range(4)])
    w = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.5, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.25], [1.0, 1.0, 1.0, 1.0]])
    carrier = PairWeights()
    with xp.enter():
        solver = Solver({"train": carrier.loader([(sources, w)])}, model, torch.optim.SGD(model.parameters(), lr=0.0),
                        xp.cfg)
        solver.augment = carrier.augment(torch.nn.Identity())  # the hand-computed losses see the batch as it is
        with torch.no_grad():
            model.train()
            expected = source_losses(model(sources.sum(1)), sources, "l1")  # (batch, sources)
        with robust_losses(solver, None, bin_size=1024, pair_weights=carrier):
            metrics = solver._run_one_epoch(0, train=True)
    assert metrics["loss"] == pytest.approx((expected * w).mean(0).mean().item(), rel=1e-4)


# --- the pipeline ---------------------------------------------------------------------------------

ARCHS = {"openunmix": {"toolkit": "openunmix", "preset": "tiny", "targets": list(STEMS), "epochs": 1,
                       "epoch_updates": 1}}


def _experiment(store, **settings):
    from sepclean.pipeline.experiment import Experiment

    cfg = {"arch": "openunmix", "method": "oracle", "ratio": "auto", "mode": "per-target", "seed": 0, "rounds": 1,
           "archs": ARCHS, "scoring": {"baseline": "openunmix", "oracle": {}}, "action": "drop",
           "repair": {"model": None}, **settings}
    return Experiment(cfg, store, store.root, device="cpu", progress=False)


def test_repairs_of_the_order_rule_keep_the_key_they_had_before_the_receiver_setting(tmp_path):
    """A repair made before ``repair.receiver`` existed (the ``order`` rule) keeps its key; another
    rule is another artifact, so an old repair is never taken for a new rule's."""
    from types import SimpleNamespace

    from sepclean.pipeline import stages

    (tmp_path / "spec.json").write_text(json.dumps({"key": "drop-key"}))
    configs = []
    store = SimpleNamespace(record=lambda path: "model", produce=lambda stage, config, inputs, make: configs.append(config) or tmp_path)
    data = SimpleNamespace(manifest=lambda name: SimpleNamespace(hash="train-hash"))
    for action, receiver in [("repair", "order"), ("repair", "best"), ("repair", "split"), ("relabel", "best"),
                             ("relabel+repair", "best")]:
        stages.repair(store, data, tmp_path / "clean.json", "openunmix", tmp_path, RepairSettings(receiver=receiver),
                      action=action)
    before = {"toolkit": "openunmix", "residual": ["other", "vocals", "bass", "drums"], "fallback": "drop",
              "tolerance": 1.0, "margin": 3.0}  # the key's settings before the receiver setting
    assert configs[0] == {"action": "repair", **before}
    assert configs[1] == {"action": "repair", **before, "receiver": "best"}
    assert configs[2] == {"action": "repair", **before, "receiver": "split"}
    assert configs[3] == {"action": "relabel", **before}  # relabel hands no residual
    assert configs[4] == {"action": "relabel+repair", **before, "receiver": "best"}


def test_a_moved_store_finds_its_repairs_done(tiny_data, tmp_path):
    """The repair stage keys its model as the store records it (relative to the root), as main's other
    stages do: a store moved elsewhere repairs nothing again."""
    import shutil

    from sepclean.pipeline import stages
    from sepclean.pipeline.artifacts import ArtifactStore

    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)

    def act(root):
        experiment = _experiment(ArtifactStore(root), action="repair", repair={"model": "reference"})
        action, settings = experiment.action()
        scores, drop = experiment.cleaning(data, "oracle", "auto", "per-target")
        return experiment.act(data, scores, drop, action, settings)

    first = act(tmp_path / "store")
    made = {p.relative_to(tmp_path / "store"): p.stat().st_mtime_ns for p in (tmp_path / "store").rglob("*") if p.is_file()}
    shutil.move(tmp_path / "store", tmp_path / "elsewhere")
    again = act(tmp_path / "elsewhere")
    assert again.relative_to(tmp_path / "elsewhere") == first.relative_to(tmp_path / "store")
    assert {p.relative_to(tmp_path / "elsewhere"): p.stat().st_mtime_ns
            for p in (tmp_path / "elsewhere").rglob("*") if p.is_file()} == made  # nothing made again


@pytest.mark.parametrize("settings, message", [
    ({"action": "repair"}, "action=repair needs a model: repair.model=reference"),
    ({"action": "repair", "repair": {"model": "/nowhere/run"}}, "repair.model=/nowhere/run: no such checkpoint"),
    ({"action": "repair", "repair": {"model": "reference", "fallback": "hope"}}, "repair.fallback"),
    ({"action": "weight", "ratio": 0.75}, "action=weight .* set ratio=auto"),
    ({"action": "weight", "method": "dirty"}, "action=weight acts on the pairs a scoring method flags"),
    ({"action": "relabel"}, "action=relabel needs a model: repair.model=reference"),
    ({"action": "swap"}, "action must be one of drop, repair, relabel, relabel\\+repair, weight")])
def test_impossible_actions_are_refused_before_any_work(tmp_path, settings, message):
    from sepclean.errors import PipelineError
    from sepclean.pipeline.artifacts import ArtifactStore

    with pytest.raises(PipelineError, match=message):
        _experiment(ArtifactStore(tmp_path), **settings).run()
    assert not any(tmp_path.iterdir())  # nothing was made, no model trained


def test_oracle_repair_by_the_reference_model_in_the_pipeline(tiny_data, tmp_path):
    """The oracle repair control end to end up to the model it trains: the reference_only model
    (Open-Unmix, the toolkit's own training and Separator) separates exactly the contaminated pairs."""
    from sepclean.pipeline import stages
    from sepclean.pipeline.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    experiment = _experiment(store, action="repair", repair={"model": "reference", "fallback": "keep"})
    action, settings = experiment.action()
    scores, drop = experiment.cleaning(data, "oracle", "auto", "per-target")
    path = experiment.act(data, scores, drop, action, settings)
    reference = experiment.train("openunmix", data, "reference")  # the reference_only control's model, shared
    assert len(list((store.root / "train").iterdir())) == 1

    clean = CleanManifest.load(path)
    truth = tiny_data.contamination["tracks"]
    decisions = clean.extra["repair"]["decisions"]
    assert clean.extra["repair"]["model"]["checkpoint"] == str(reference.checkpoint)
    assert {(d["track"], d["stem"]) for d in decisions} == {(t, s) for t, v in truth.items() for s in v["stems"]}
    assert {d["decision"] for d in decisions} <= {"repaired", "kept"}  # fallback keep: every pair kept
    assert all(clean.kept(s) == tiny_data.manifest("train").ids for s in STEMS)
    for d in decisions:
        assert d["remix_sdr_db"] > 25  # Open-Unmix's Wiener filter: its estimates sum to the mixture
    for track in clean.apply(tiny_data.manifest("train"), "vocals"):
        mixture = sum(tiny_data.manifest("train")[track.id].read(s) for s in STEMS)
        np.testing.assert_allclose(sum(track.read(s) for s in STEMS), mixture, atol=1e-5)
    # The same stage again is the same artifact; a model trained on it is keyed by its repairs.
    assert experiment.act(data, scores, drop, action, settings) == path
    assert stages._clean_key(path) != stages._clean_key(drop)

    # `sepclean repair` runs the same function: the same decisions and audio, in a folder of its own.
    from sepclean.cli import main

    out = tmp_path / "cli"
    argv = ["repair", str(drop), "--train", str(tiny_data.manifests["train"]), "--toolkit", "openunmix",
            "--checkpoint", str(reference.checkpoint), "--fallback", "keep", "-o", str(out)]
    assert main(argv) == 0
    cli = CleanManifest.load(out / "clean.json")
    assert cli.extra["repair"]["decisions"] == decisions and cli.keep == clean.keep
    assert {t: {s: e["hash"] for s, e in v.items()} for t, v in cli.replace.items()} == \
        {t: {s: e["hash"] for s, e in v.items()} for t, v in clean.replace.items()}
    assert main(argv) == 2  # written once


def test_action_conditions_are_rows_of_their_own_against_plain_dirty():
    from sepclean.experiments import results

    runs = []
    for seed, (dirty, twin, repaired) in enumerate([(1.0, 2.0, 1.5), (2.0, 3.0, 2.5), (3.0, 4.0, 3.5)]):
        base = {"arch": "openunmix", "ratio": "auto", "mode": "per-target", "seed": seed}
        metrics = lambda v: {"sdr": {"avg": v}, "kept": 8, "converged": True}  # noqa: E731
        runs += [({**base, "method": "dirty"}, metrics(dirty)), ({**base, "method": "clean_twin"}, metrics(twin)),
                 # the order rule: named by the config (seeds 1, 2) or not, by configs from before the setting (seed 0)
                 ({**base, "method": "oracle", "action": "repair", **({"repair": {"receiver": "order"}} if seed else {})},
                  metrics(repaired)),
                 ({**base, "method": "oracle", "action": "repair", "repair": {"receiver": "split"}}, metrics(repaired + 1)),
                 ({**base, "method": "oracle"}, metrics(dirty + 0.25))]
    rows = {r["name"]: r for r in results.summarise(runs)}
    assert set(rows) == {"dirty", "clean_twin", "oracle, repair", "oracle, repair (split receiver)", "oracle"}
    assert rows["oracle, repair"]["action"] == "repair" and rows["oracle"]["action"] == "drop"
    assert rows["oracle, repair"]["seeds"] == 3 and rows["oracle, repair"]["receiver"] is None
    assert rows["oracle, repair (split receiver)"]["receiver"] == "split"
    assert rows["oracle, repair (split receiver)"]["delta"] == pytest.approx(1.5)
    assert rows["oracle, repair"]["delta"] == pytest.approx(0.5) and rows["oracle"]["delta"] == pytest.approx(0.25)
    # against the same detector dropping the same pairs, paired by seed: what the action adds
    assert rows["oracle, repair"]["vs_plain"] == pytest.approx(0.25)
    assert rows["oracle, repair (split receiver)"]["vs_plain"] == pytest.approx(1.25)
    assert "vs_plain" not in rows["oracle"] and "vs_plain" not in rows["dirty"]
    table = results.markdown(results.summarise(runs))
    assert "| oracle, repair |" in table and "Δ plain drop [95% CI]" in table
    assert "| +0.25 [+0.25, +0.25] |" in table.split("| oracle, repair |")[1].splitlines()[0]


def test_actions_rounds_and_robust_training_are_paired_with_the_same_methods_plain_drop_where_it_ran():
    from sepclean.experiments import results

    def run(method, seed, value, **more):
        return ({"arch": "openunmix", "ratio": "auto", "mode": "per-target", "seed": seed, "method": method, **more},
                {"sdr": {"avg": value}, "converged": True})

    runs = [run("dirty", 0, 1.0), run("dirty", 1, 1.0), run("dirty", 2, 1.0),
            run("mlp", 0, 2.0), run("mlp", 1, 3.0),  # mlp's plain drop: seeds 0 and 1 only
            *[run("mlp", s, v, action="relabel") for s, v in enumerate([2.5, 2.5, 9.0])],
            *[run("mlp", s, v, rounds=2, robust={"truncate": 0.25}) for s, v in enumerate([3.0, 4.0])],
            *[run("dirty", s, 0.5, robust={"truncate": 0.25}) for s in range(3)],
            run("oracle", 0, 4.0, action="relabel")]  # no oracle drop in this grid
    rows = {r["name"]: r for r in results.summarise(runs)}
    relabel = rows["mlp, relabel"]
    # seeds both ran (0, 1): +0.5 and -0.5; seed 2 has no drop to pair with
    assert relabel["vs_plain"] == pytest.approx(0.0) and relabel["vs_plain_high"] > 0 > relabel["vs_plain_low"]
    assert rows["mlp, 2 rounds + truncate 0.25"]["vs_plain"] == pytest.approx(1.0)
    assert "vs_plain" not in rows["oracle, relabel"]  # nothing to pair with
    assert results.interval(rows["oracle, relabel"], "vs_plain") == "-"
    assert "vs_plain" not in rows["dirty + truncate 0.25"]  # its plain condition is dirty: that is Δ dirty


def test_an_action_on_other_data_is_compared_with_the_dirty_xps_of_that_data():
    """Condition.action beside main's variant, rounds and robust: each names its row, and the
    control a row is compared with drops all of them but the data it ran on."""
    from sepclean.experiments import results

    def on(preset, method, seed, value, **more):
        cfg = {"arch": "openunmix", "ratio": "auto", "mode": "per-target", "seed": seed, "method": method,
               "data": {"synth": {"preset": preset, "severity": "heavy"}, "roots": {"train": []}}, **more}
        return cfg, {"sdr": {"avg": value}, "kept": 8, "converged": True}

    runs = []
    for seed in (0, 1):
        runs += [on("mixed23", "dirty", seed, 1.0 + seed), on("heldout", "dirty", seed, 5.0 + seed),
                 on("heldout", "mlp", seed, 5.5 + seed, action="repair"),
                 on("heldout", "mlp", seed, 6.0 + seed, action="weight", rounds=2, robust={"truncate": 0.25})]
    rows = {r["name"]: r for r in results.summarise(runs)}
    assert set(rows) == {"dirty", "dirty on heldout", "mlp, repair on heldout",
                         "mlp, weight, 2 rounds + truncate 0.25 on heldout"}
    assert rows["mlp, repair on heldout"]["delta"] == pytest.approx(0.5)
    assert rows["mlp, weight, 2 rounds + truncate 0.25 on heldout"]["delta"] == pytest.approx(1.0)
    assert rows["mlp, repair on heldout"]["variant"] == "heldout" and rows["mlp, repair on heldout"]["action"] == "repair"


def test_the_actions_grid_shares_its_controls_with_robust_cpu():
    from sepclean.experiments.local_grid import xps

    sheeps = xps("sepclean.actions_cpu")
    rows = [(s.xp.cfg.method, s.xp.cfg.get("action"), s.xp.cfg.seed) for s in sheeps]
    assert len(sheeps) == len({s.xp.sig for s in sheeps}) == 16 * 3
    receivers = [(s.xp.cfg.action, s.xp.cfg.seed) for s in sheeps if s.xp.cfg.repair.receiver == "split"]
    assert sorted(receivers) == sorted((a, seed) for a in ("repair", "relabel+repair") for seed in range(3))
    assert all(s.xp.cfg.repair.receiver == "order" for s in sheeps if s.xp.cfg.repair.receiver != "split")
    assert ("oracle", "repair", 2) in rows and ("mlp", "weight", 0) in rows and ("mlp", "repair", 1) in rows
    assert ("oracle", "relabel", 1) in rows and ("mlp", "relabel+repair", 2) in rows
    models = [(s.xp.cfg.method, s.xp.cfg.seed) for s in sheeps if s.xp.cfg.repair.model == "baseline"]
    assert sorted(models) == sorted((m, seed) for m in ("oracle", "mlp") for seed in range(3))  # self-refining
    assert all(s.xp.cfg.repair.model == "reference" for s in sheeps
               if s.xp.cfg.action not in ("drop", "weight") and s.xp.cfg.repair.model != "baseline")
    assert all(s.xp.cfg.action == "repair" for s in sheeps if s.xp.cfg.repair.model == "baseline")
    assert all(s.xp.cfg.data.synth.sizes.test == 40 and s.xp.cfg.archs.openunmix.epochs == 150 for s in sheeps)
    robust = {s.xp.sig for s in xps("sepclean.robust_cpu")}
    shared = [s for s in sheeps if s.xp.cfg.action == "drop"]
    assert len(shared) == 12 and all(s.xp.sig in robust for s in shared)


def test_demucs_per_stem_examples_weigh_each_source_by_its_own_song(tiny_data):
    from sepclean_plugins.demucs import DemucsToolkit
    from sepclean_plugins.demucs.data import WeightedSet, per_stem_set

    clean = weight_manifest(_planted_table(tiny_data), "per-target")
    sources = list(DemucsToolkit.sources)
    per_stem = per_stem_set(tiny_data.manifest("train"), sources, clean, seed=0, segment=1.0, shift=1.0)
    weighted = WeightedSet(per_stem, sources, clean.weights)
    for epoch, index in [(0, 0), (1, 3), (2, 5)]:
        origin = per_stem.origin(index, epoch)
        assert len({track for track, _ in origin.values()}) > 1 or epoch == 0  # sources from several songs
        example, weights = weighted[(epoch, index)]
        assert torch.equal(example, per_stem[(epoch, index)])
        assert weights.tolist() == pytest.approx([clean.weights_of(s)[origin[s][0]] for s in sources])
