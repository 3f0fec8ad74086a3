"""Scores tables, clean manifests, and the filter between them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import read_only, tree_state

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.cli import main
from sepclean.detection import auroc, labels, report
from sepclean.filtering import auto_keep, clean_manifest, matched_manifest, top_fraction
from sepclean.scores import ScoresError, ScoreTable, dataset_record


def _table(tiny_data, per_target=True):
    manifest = tiny_data.manifest("train")
    scores = {}
    for i, track in enumerate(manifest.ids):
        row = {"all": float(i)}
        if per_target:
            row.update({"vocals": float(-i), "bass": float(i % 3), "drums": 0.5, "other": float(i)})
        scores[track] = row
    return ScoreTable("test", scores, {"dataset": dataset_record(manifest), "manifests": {"train": manifest.hash},
                                       "alpha": 0.1})


def test_scores_table_roundtrip(tiny_data, tmp_path):
    table = _table(tiny_data)
    table.scores["weird, \"name\""] = dict(table.scores["song_0000"])
    table.write(tmp_path / "s")
    back = ScoreTable.read(tmp_path / "s")
    assert back.scores == table.scores and back.method == "test"
    assert back.metadata == table.metadata and back.targets == ["vocals", "bass", "drums", "other"]
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["format"] == "sepclean.scores" and meta["higher_is_better"] is True


def test_scores_reject_non_finite():
    with pytest.raises(ScoresError, match="non-finite"):
        ScoreTable("m", {"a": {"all": float("nan")}})


def test_a_matched_manifest_keeps_as_many_songs_per_list_as_the_one_it_matches(tiny_data):
    table = _table(tiny_data)
    ids = tiny_data.manifest("train").ids  # 8 songs; "all" and "other" rise with the index, "vocals" falls
    like = CleanManifest({"vocals": ids[:2], "bass": ids[:5], "drums": ids, "other": ids[3:6]},
                         table.metadata["dataset"]["hash"], len(ids), "per-target", "auto", ["fad"])
    matched = matched_manifest(table, like)
    assert {t: len(k) for t, k in matched.keep.items()} == {"vocals": 2, "bass": 5, "drums": 8, "other": 3}
    assert matched.keep["vocals"] == ids[:2] and matched.keep["other"] == ids[5:]  # by the table's own scores
    assert matched.mode == "per-target" and matched.ratio is None and matched.methods == ["test"]
    assert matched.extra["matched"] == {"methods": ["fad"], "ratio": "auto",
                                        "kept": {"vocals": 2, "bass": 5, "drums": 8, "other": 3}}
    unified = matched_manifest(table, CleanManifest(ids[:3], like.dataset_hash, len(ids), "unified", 0.4, ["mlp"]))
    assert unified.keep == ids[5:] and unified.mode == "unified"

    with pytest.raises(CleanManifestError, match="not the same songs"):
        matched_manifest(table, CleanManifest(ids[:3], "another", len(ids), "unified", 0.4, ["mlp"]))
    no_columns = _table(tiny_data, per_target=False)
    with pytest.raises(CleanManifestError, match="no column for vocals, bass, drums, other"):
        matched_manifest(no_columns, like)


def test_top_fraction_is_deterministic_and_keeps_order():
    scores = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 3.0}
    assert top_fraction(scores, 0.5) == ["b", "d"]
    assert top_fraction(scores, 0.75) == ["b", "c", "d"]
    assert top_fraction(scores, 0.01) == ["b"]
    with pytest.raises(ValueError):
        top_fraction(scores, 0.0)


def test_unified_and_per_target(tiny_data):
    table = _table(tiny_data)
    unified = clean_manifest(table, 0.75, "unified")
    assert unified.kept() == tiny_data.manifest("train").ids[2:]
    per_target = clean_manifest(table, 0.5, "per-target")
    assert per_target.kept("vocals") == tiny_data.manifest("train").ids[:4]
    assert per_target.kept("other") == tiny_data.manifest("train").ids[4:]
    # A joint model keeps what every target keeps: here vocals and other keep disjoint halves.
    assert per_target.kept(None) == []
    dropped = per_target.joint_reduction(["vocals", "other"])
    assert dropped["vocals"] == per_target.kept("vocals")


def test_clean_manifest_checks_against_dataset(tiny_data, tmp_path):
    manifest = tiny_data.manifest("train")
    clean = clean_manifest(_table(tiny_data), 0.5)
    clean.write(tmp_path / "c.json")
    loaded = CleanManifest.load(tmp_path / "c.json")
    assert loaded.check(manifest) == clean.kept()

    with pytest.raises(CleanManifestError, match="another dataset manifest"):
        loaded.check(tiny_data.manifest("train_clean"))
    assert loaded.check(tiny_data.manifest("train_clean"), allow_other_dataset=True) == clean.kept()

    absent = CleanManifest(keep=["song_0001", "nope", "nada"])
    with pytest.raises(CleanManifestError, match="2 track\\(s\\) absent from the dataset: nope, nada"):
        absent.check(manifest)
    with pytest.raises(CleanManifestError, match="keeps no track"):
        CleanManifest(keep=[]).check(manifest)
    with pytest.raises(CleanManifestError, match="no list for target 'drums'"):
        CleanManifest(keep={"vocals": ["song_0001"]}).check(manifest, target="drums")


@pytest.mark.parametrize("content, message", [("{", "not JSON"), ('{"format": "x"}', "not a sepclean clean manifest")])
def test_clean_manifest_load_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(CleanManifestError, match=message):
        CleanManifest.load(path)
    with pytest.raises(CleanManifestError, match="no such clean manifest"):
        CleanManifest.load(tmp_path / "missing.json")


def test_filter_cli(tiny_data, tmp_path, capsys):
    _table(tiny_data).write(tmp_path / "s")
    contamination = tiny_data.root / "contamination.json"
    out = tmp_path / "clean.json"
    args = ["filter", str(tmp_path / "s"), "--ratio", "0.75", "--mode", "per-target", "-o", str(out)]
    assert main(args + ["--contamination", str(contamination)]) == 0
    printed = capsys.readouterr().out
    assert "vocals: kept 6, removed 2" in printed and "contaminated" in printed
    assert CleanManifest.load(out).per_target
    assert main(["filter", str(tmp_path / "nowhere"), "--ratio", "0.5", "-o", str(out)]) == 2
    assert "not a scores directory" in capsys.readouterr().err

    like = tmp_path / "like.json"
    assert main(["filter", str(tmp_path / "s"), "--like", str(out), "-o", str(like)]) == 0
    assert f"as many songs as {out}, per-target" in capsys.readouterr().out
    assert {t: len(k) for t, k in CleanManifest.load(like).keep.items()} == {t: 6 for t in CleanManifest.load(out).keep}
    with pytest.raises(SystemExit):  # one size: a ratio or another manifest's, not both
        main(["filter", str(tmp_path / "s"), "--like", str(out), "--ratio", "0.5", "-o", str(like)])


def test_auroc():
    contaminated = {"a": True, "b": True, "c": False, "d": False}
    assert auroc({"a": 0, "b": 1, "c": 2, "d": 3}, contaminated) == 1.0
    assert auroc({"a": 3, "b": 2, "c": 1, "d": 0}, contaminated) == 0.0
    assert auroc({"a": 1, "b": 1, "c": 1, "d": 1}, contaminated) == 0.5
    assert auroc({"a": 0, "b": 2, "c": 1, "d": 3}, contaminated) == 0.75


def test_detection_report_uses_ground_truth(tiny_data):
    truth = tiny_data.contamination
    bad = labels(truth)
    assert any(bad.values()) and not all(bad.values())
    # An oracle that scores contaminated tracks lowest is perfect overall and for every kind.
    oracle = {t: {"all": 0.0 if b else 1.0} for t, b in bad.items()}
    result = report(ScoreTable("oracle", oracle), truth)
    assert result["overall"] == 1.0 and all(v == 1.0 for v in result["kind"].values())


# --- planted faults: scores tables that do not hold what they claim ------------------------------


def _filter(scores, out, mode="per-target") -> list[str]:
    return ["filter", str(scores), "--ratio", "0.75", "--mode", mode, "-o", str(out)]


@pytest.mark.parametrize("mode", ["unified", "per-target"])
def test_truncated_scores_csv_is_refused(tiny_data, tmp_path, capsys, mode):
    _table(tiny_data).write(tmp_path / "s")
    csv_path = tmp_path / "s" / "scores.csv"
    csv_path.write_text("".join(csv_path.read_text().splitlines(keepends=True)[:21]))  # head -21 scores.csv
    before = tree_state(tiny_data.root, tmp_path)
    assert main(_filter(tmp_path / "s", tmp_path / "clean.json", mode)) == 2
    err = capsys.readouterr().err
    # 20 rows of 5 columns: song_0000..0003 whole; the others are named as missing.
    assert "does not hold the table" in err and "(20 rows, not 40)" in err
    assert "4 of its 8 track(s) are missing: song_0004, song_0005, song_0006, song_0007" in err
    assert "Traceback" not in err
    assert not (tmp_path / "clean.json").exists() and tree_state(tiny_data.root, tmp_path) == before


def test_scores_table_names_missing_targets_and_extra_rows(tiny_data, tmp_path):
    _table(tiny_data).write(tmp_path / "s")
    csv_path = tmp_path / "s" / "scores.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(line for line in lines if ",drums," not in line) + "intruder,all,1.0\n")
    with pytest.raises(ScoresError, match=r"8 \(track/target\) score\(s\) are missing: song_0000/drums.*"
                                          r"1 track\(s\) not in meta.json: intruder"):
        ScoreTable.read(tmp_path / "s")


def test_edited_score_is_refused(tiny_data, tmp_path):
    _table(tiny_data).write(tmp_path / "s")
    csv_path = tmp_path / "s" / "scores.csv"
    csv_path.write_text(csv_path.read_text().replace("song_0003,all,3.0", "song_0003,all,30.0"))
    with pytest.raises(ScoresError, match="changed since it was written"):
        ScoreTable.read(tmp_path / "s")


def test_headerless_scores_csv_is_a_named_error(tiny_data, tmp_path, capsys):
    _table(tiny_data).write(tmp_path / "s")
    csv_path = tmp_path / "s" / "scores.csv"
    csv_path.write_text("".join(csv_path.read_text().splitlines(keepends=True)[1:]))
    before = tree_state(tmp_path)
    assert main(_filter(tmp_path / "s", tmp_path / "clean.json")) == 2
    err = capsys.readouterr().err
    assert "first line must be the header track,target,score" in err and "Traceback" not in err
    assert tree_state(tmp_path) == before


def test_filter_refuses_a_table_that_does_not_cover_its_dataset(tiny_data, tmp_path, capsys):
    table = _table(tiny_data)
    del table.scores["song_0007"]  # a consistent table of 7 tracks, claiming the 8-track dataset
    table.write(tmp_path / "s")
    assert main(_filter(tmp_path / "s", tmp_path / "clean.json", "unified")) == 2
    assert "cover 7 track(s) of the 8 of the dataset they score" in capsys.readouterr().err
    assert not (tmp_path / "clean.json").exists()
    table.metadata.pop("dataset")
    table.write(tmp_path / "s")
    assert main(_filter(tmp_path / "s", tmp_path / "clean.json", "unified")) == 2
    assert "do not say which dataset they score" in capsys.readouterr().err


def test_binary_clean_manifest_is_a_named_error(tiny_data, tmp_path):
    path = tmp_path / "clean.json"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CleanManifestError, match="clean.json: not JSON"):
        CleanManifest.load(path)


def test_read_only_output_is_a_named_error(tiny_data, tmp_path):
    import sys

    _table(tiny_data).write(tmp_path / "s")
    locked = tmp_path / "locked"
    locked.mkdir()
    before = tree_state(tmp_path)
    done = read_only(locked, [sys.executable, "-m", "sepclean", *_filter(tmp_path / "s", locked / "clean.json")])
    assert done.returncode == 2, done.stderr
    assert f"cannot write {locked / 'clean.json'}: Read-only file system" in done.stderr
    assert "Traceback" not in done.stderr
    assert tree_state(tmp_path) == before


def _planted(clean: int, contaminated: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(1.0, 0.25, clean), rng.normal(-1.0, 0.25, contaminated)])
    order = rng.permutation(values.size)
    return {f"song_{i:03d}": float(values[i]) for i in order}


@pytest.mark.parametrize("clean, contaminated", [(30, 10), (20, 20), (34, 6), (15, 25)])
def test_auto_ratio_recovers_a_planted_contaminated_cluster(clean, contaminated):
    scores = _planted(clean, contaminated)
    kept = auto_keep(scores)
    assert sorted(kept) == [f"song_{i:03d}" for i in range(clean)]
    assert kept == [t for t in scores if t in set(kept)], "in table order"


def test_auto_ratio_keeps_everything_without_a_second_cluster():
    rng = np.random.default_rng(1)
    for size in (40, 200):
        scores = {f"s{i}": float(v) for i, v in enumerate(rng.normal(0.0, 1.0, size))}
        assert len(auto_keep(scores)) == size
    assert auto_keep({"a": 2.0, "b": 2.0, "c": 2.0, "d": 2.0}) == ["a", "b", "c", "d"]


def test_auto_ratio_is_a_threshold_even_with_an_outlier():
    scores = _planted(30, 10)
    scores["loud"] = 25.0  # one huge score must not become a cluster of its own
    kept = auto_keep(scores)
    assert len(kept) == 31 and "loud" in kept
    assert min(scores[t] for t in kept) > max(scores[t] for t in scores if t not in set(kept))


def test_auto_ratio_uses_the_cut_of_a_table_that_has_one(tiny_data, tmp_path, capsys):
    manifest = tiny_data.manifest("train")
    oracle = {t: {"all": float(i % 3 != 0), "vocals": 0.5 if i % 2 else 0.7} for i, t in enumerate(manifest.ids)}
    table = ScoreTable("oracle", oracle, {"dataset": dataset_record(manifest), "manifests": {"train": manifest.hash},
                                          "cut": 0.5})
    clean = clean_manifest(table, "auto")
    assert clean.kept() == [t for i, t in enumerate(manifest.ids) if i % 3 != 0]
    assert clean.ratio == "auto" and clean.to_json()["auto"]["rule"] == "cut 0.5"
    assert clean_manifest(table, "auto", "per-target").kept("vocals") == manifest.ids  # 0.5 >= cut
    table.write(tmp_path / "s")
    out = tmp_path / "clean.json"
    assert main(["filter", str(tmp_path / "s"), "--ratio", "auto", "-o", str(out)]) == 0
    assert "kept 5, removed 3" in capsys.readouterr().out
    assert CleanManifest.load(out).ratio == "auto"
    with pytest.raises(SystemExit):
        main(["filter", str(tmp_path / "s"), "--ratio", "half", "-o", str(out)])
    assert "a fraction in (0, 1] or 'auto', not 'half'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'auto'"):
        clean_manifest(table, "most")
