"""The pipeline's parts: shared artifacts, the scorer registry, grid definitions, the results table."""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_splits, tree_state

from sepclean import audio
from sepclean.errors import PipelineError
from sepclean.experiments import results
from sepclean.manifest import ManifestError
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.scorers import Scorer, ScorerError, ScoringTask, create, names
from sepclean.scores import ScoreTable

# --- artifacts -----------------------------------------------------------------------------------


def test_keys_change_when_and_only_when_a_setting_or_an_input_changes(tmp_path):
    store = ArtifactStore(tmp_path)
    key = store.key("train", {"epochs": 2, "lr": 0.1}, ["a", "b"])
    assert key == store.key("train", {"lr": 0.1, "epochs": 2}, ["a", "b"])  # order of settings is not identity
    assert key != store.key("train", {"epochs": 3, "lr": 0.1}, ["a", "b"])
    assert key != store.key("train", {"epochs": 2, "lr": 0.1}, ["a", "c"])
    assert key != store.key("train", {"epochs": 2, "lr": 0.1}, ["b", "a"])
    assert key != store.key("score", {"epochs": 2, "lr": 0.1}, ["a", "b"])


def test_a_done_artifact_is_made_once_and_reused(tmp_path):
    store, calls = ArtifactStore(tmp_path), []

    def make(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("made")
        return {"size": 4}

    first = store.produce("stage", {"x": 1}, [], make)
    second = store.produce("stage", {"x": 1}, [], make)
    assert first == second and len(calls) == 1
    assert store.summary(first) == {"size": 4}
    assert store.produce("stage", {"x": 2}, [], make) != first
    assert len(calls) == 2


def test_an_interrupted_artifact_resumes_and_is_never_marked_done_early(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sepclean")
    store = ArtifactStore(tmp_path)

    def crash(folder):
        (folder / "part1").write_text("kept")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.produce("stage", {}, [], crash)
    folder = store.folder("stage", store.key("stage", {}, []))
    assert not (folder / "done.json").exists()

    def finish(folder):
        assert (folder / "part1").read_text() == "kept"  # what the first attempt finished is there
        return {}

    store.produce("stage", {}, [], finish)
    assert any("resuming an interrupted attempt" in m for m in caplog.messages)
    assert (folder / "done.json").is_file()


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_recorded_paths_are_relative_and_old_absolute_records_still_resolve(tmp_path):
    old = ArtifactStore(tmp_path / "old" / "artifacts")

    def make(folder):
        (folder / "model").mkdir()
        return {"relative": old.record(folder / "model"), "absolute": str(folder / "model"),
                "gone": str(tmp_path / "nowhere" / "model.pth")}

    folder = old.produce("train", {}, [], make)
    assert old.summary(folder)["relative"] == f"train/{folder.name}/model"
    assert old.record(tmp_path / "old" / "demucs" / "xps" / "abc") == "../demucs/xps/abc"  # beside the store
    (tmp_path / "old").rename(tmp_path / "new")
    new = ArtifactStore(tmp_path / "new" / "artifacts")
    moved = new.produce("train", {}, [], lambda folder: pytest.fail("made again"))
    summary = new.summary(moved)
    assert new.resolve(summary["relative"], moved) == moved / "model"
    assert new.resolve(summary["absolute"], moved) == moved / "model"  # a record of before, its old place
    with pytest.raises(PipelineError, match=f"done.json: records {tmp_path / 'nowhere' / 'model.pth'}, which does "
                                            "not exist"):
        new.resolve(summary["gone"], moved)


def test_an_artifact_keyed_by_an_absolute_path_before_is_still_found(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    model = tmp_path / "artifacts" / "train" / "k" / "model"
    before = store.produce("scores", {}, ["h", str(model)], lambda folder: {})  # as keyed before
    found = store.produce("scores", {}, ["h", store.record(model)], lambda folder: pytest.fail("made again"),
                          legacy_inputs=["h", str(model)])
    assert found == before


def test_a_copied_or_moved_store_reads_its_own_synthetic_audio(tmp_path):
    """The data stage's manifests named the audio where the store was made: a copied store read the
    original's songs, a moved one none."""
    import shutil

    def data(outputs: Path) -> stages.Data:
        return stages.synthetic_data(ArtifactStore(outputs / "artifacts"), profile="tiny",
                                     sizes={"train": 2, "valid": 1, "reference": 1, "test": 1}, workers=1,
                                     progress=False)

    first = data(tmp_path / "outputs")
    original = {split: first.manifest(split) for split in first.manifests}
    shutil.copytree(tmp_path / "outputs", tmp_path / "copy")
    for outputs in (tmp_path / "copy", tmp_path / "moved"):
        if outputs.name == "moved":
            shutil.move(tmp_path / "outputs", outputs)
        here = data(outputs)
        for split in here.manifests:
            manifest = here.manifest(split)
            assert manifest.hash == original[split].hash and manifest.roots
            assert all(Path(root).is_relative_to(outputs) for root in [*manifest.roots, *(t.root for t in manifest)])
            assert all(path.is_file() for t in manifest for stem in t.stems for path in t.files(stem))


def test_a_moved_or_copied_store_resumes_with_every_stage_done(tiny_data, tmp_path):
    import shutil

    from sepclean.pipeline.experiment import Experiment

    archs = {"openunmix": {"toolkit": "openunmix", "preset": "tiny", "targets": ["vocals"], "epochs": 1,
                           "epoch_updates": 1}}
    cfg = {"arch": "openunmix", "method": "loss", "ratio": 0.75, "mode": "per-target", "seed": 0, "archs": archs,
           "scoring": {"baseline": "openunmix", "loss": {}}}
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    test = data.manifest("test").subset(data.manifest("test").ids[:1])

    def run(outputs: Path):
        store = ArtifactStore(outputs / "artifacts")
        experiment = Experiment(cfg, store, outputs / "demucs", progress=False)
        scores, clean = experiment.cleaning(data, "loss", 0.75, "per-target")
        model = experiment.train("openunmix", data, "train", clean)
        evaluation = stages.evaluate(store, "openunmix", model, test, ["vocals"], progress=False)
        return model.checkpoint, scores, clean, evaluation

    first = run(tmp_path / "outputs")
    made = _files(tmp_path / "outputs")
    shutil.move(tmp_path / "outputs", tmp_path / "elsewhere")
    shutil.copytree(tmp_path / "elsewhere", tmp_path / "copy")
    shutil.rmtree(tmp_path / "elsewhere")  # the copy cannot read it: it must read itself
    again = run(tmp_path / "copy")
    assert _files(tmp_path / "copy") == made  # nothing made again, nothing rewritten
    assert [Path(p).relative_to(tmp_path / "copy") for p in again[:3]] == \
        [Path(p).relative_to(tmp_path / "outputs") for p in first[:3]]
    assert again[3] == first[3]


def test_the_data_stage_says_what_it_made_and_where_in_one_line(tmp_path, caplog):
    from sepclean.pipeline.experiment import Experiment

    synth = {"preset": "mixed23", "profile": "tiny", "severity": "heavy", "contaminated_fraction": None, "seed": 0,
             "sizes": {"train": 2, "valid": 1, "reference": 1, "test": 1, "duration": 2.0}}
    caplog.set_level(logging.INFO, logger="sepclean")
    experiment = Experiment({"data": {"synth": synth}}, ArtifactStore(tmp_path), tmp_path / "demucs", progress=False)
    for _ in range(2):  # made, then found
        data = experiment.data()
        assert caplog.messages == [f"[data] synthetic mixed23, profile tiny, severity heavy, seed 0: train 2, "
                                   f"train_clean 2, valid 1, reference 1, test 1 songs; manifests in "
                                   f"{data.folder / 'manifests'}"]
        assert sorted(p.name for p in (data.folder / "manifests").iterdir()) == \
            ["reference.jsonl", "test.jsonl", "train.jsonl", "train_clean.jsonl", "valid.jsonl"]
        caplog.clear()


def test_an_artifact_changed_by_hand_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    folder = store.produce("stage", {"x": 1}, [], lambda folder: {})
    (folder / "spec.json").write_text('{"stage": "stage", "config": {"x": 2}}')
    with pytest.raises(PipelineError, match="holds another artifact"):
        store.produce("stage", {"x": 1}, [], lambda folder: {})


def _slow_make(root: str, counter: str, barrier) -> None:
    def make(folder):
        with open(counter, "a") as f:
            f.write("made\n")
        time.sleep(1.0)
        return {}

    barrier.wait()
    ArtifactStore(root).produce("stage", {"shared": True}, [], make)


def test_concurrent_processes_make_a_shared_artifact_once(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    counter = tmp_path / "count"
    processes = [context.Process(target=_slow_make, args=(str(tmp_path / "store"), str(counter), barrier))
                 for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    assert counter.read_text().count("made") == 1


# --- scorers -------------------------------------------------------------------------------------


def test_registry_knows_every_method_and_rejects_unknown_ones_and_settings():
    assert {"fad", "mlp", "attribute", "loss", "oracle", "random"} <= set(names())
    with pytest.raises(ScorerError, match="no scoring method 'nope'"):
        create("nope")
    with pytest.raises(ScorerError, match="fad has no setting bogus"):
        create("fad", bogus=1)
    with pytest.raises(ScorerError, match="scoring must be one of"):
        create("attribute", scoring="sideways")


def test_config_holds_what_changes_scores_and_not_where_or_how_fast():
    fad = create("fad", draws=4)
    assert fad.config()["draws"] == 4 and fad.config()["method"] == "fad"
    assert create("fad", draws=4, cache="/elsewhere", batch_size=64).config() == fad.config()
    assert create("fad", draws=5).config() != fad.config()
    assert create("attribute", shard="1/4").config() == create("attribute").config()


def test_controls_score_by_the_truth_and_by_chance(tiny_data, tmp_path):
    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"),
                       contamination=tiny_data.contamination)
    oracle = create("oracle").score(task, tmp_path)
    truth = tiny_data.contamination["tracks"]
    for track in task.train.ids:
        assert oracle.scores[track]["all"] == (0.0 if truth[track]["contaminated"] else 1.0)
        for stem in task.train.stems:
            assert oracle.scores[track][stem] == (0.0 if stem in truth[track]["stems"] else 1.0)
    with pytest.raises(ScorerError, match="needs the dataset's ground truth"):
        create("oracle").score(ScoringTask(task.train, task.reference), tmp_path)

    drawn = create("random", seed=3).score(task, tmp_path).column()
    assert drawn == create("random", seed=3).score(task, tmp_path).column()
    assert drawn != create("random", seed=4).score(task, tmp_path).column()
    # A song's score does not depend on the rest of the pool.
    alone = ScoringTask(task.train.subset(task.train.ids[:3]), task.reference)
    assert create("random", seed=3).score(alone, tmp_path).column() == {t: drawn[t] for t in task.train.ids[:3]}


def test_scores_are_shared_by_settings_and_inputs(tiny_data, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    cache = str(tmp_path / "cache")
    first = stages.score(store, create("fad", draws=2, cache=cache), data, progress=False)
    assert stages.score(store, create("fad", draws=2, cache=cache, batch_size=2), data, progress=False) == first
    assert stages.score(store, create("fad", draws=3, cache=cache), data, progress=False) != first
    table = ScoreTable.read(first)
    assert sorted(table.tracks) == sorted(tiny_data.manifest("train").ids)
    clean = stages.filter_scores(store, first, 0.75, "per-target")
    assert clean == stages.filter_scores(store, first, 0.75, "per-target")
    assert clean != stages.filter_scores(store, first, 0.5, "per-target")


@pytest.mark.parametrize("how", ["rewritten", "rewritten, size and mtime restored"])
def test_a_table_is_never_served_for_a_manifest_whose_audio_changed_on_disk(tiny_data, tmp_path, how):
    """The scores are keyed by the manifests' hashes, which a file rewritten afterwards leaves as they
    were: a done table is then refused, naming the file, for every method (``random`` reads no audio)."""
    copy = copy_splits(tiny_data, tmp_path / "copy", "train", "reference")
    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(copy.root, copy.manifests, None)
    made = stages.score(store, create("random", seed=1), data, progress=False)
    stem = copy.root / "train" / "song_0002" / "bass.wav"
    stem.write_bytes(stem.read_bytes())  # touched, same audio: verified once more, and served
    assert stages.score(store, create("random", seed=1), data, progress=False) == made

    before = stem.stat()
    samples, rate = audio.read(stem)
    audio.write(stem, samples * 0.5, rate)
    if how != "rewritten":
        os.utime(stem, ns=(before.st_atime_ns, before.st_mtime_ns))
    stamps = tree_state(store.root)
    for seed in (1, 2):  # done, and not made yet
        with pytest.raises(ManifestError, match=f"{stem} \\(song_0002, bass\\) no longer holds the audio its "
                                                "manifest hashed.*sepclean manifest"):
            stages.score(store, create("random", seed=seed), data, progress=False)
    assert tree_state(store.root) == stamps



@dataclasses.dataclass(frozen=True)
class SharedWork(Scorer):
    """A method whose costly work (``delta.txt``) every ``sign`` reads."""

    name = "shared-work"
    sign: int = 1

    def run_config(self) -> dict:
        return {"method": self.name}

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        (Path(workdir) / "delta.txt").write_text("computed")
        column = {t: self.sign * float(i) for i, t in enumerate(task.train.ids)}
        return ScoreTable.from_columns(self.name, task.train.ids, {"vocals": column}, self.record(task))


def test_scorings_that_read_one_costly_work_share_its_folder(tiny_data, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    plus, minus = (stages.score(store, SharedWork(sign), data, progress=False) for sign in (1, -1))
    assert plus != minus and ScoreTable.read(plus).column() != ScoreTable.read(minus).column()
    [work] = [path.parent for path in (tmp_path / "store").rglob("delta.txt")]
    assert work.parent == tmp_path / "store" / "work"


def test_a_control_keeps_as_many_songs_as_another_method_chose(tiny_data, tmp_path):
    """``random`` at ratio ``oracle@auto``: per target, as many random songs as the oracle keeps itself."""
    from sepclean.clean_manifest import CleanManifest
    from sepclean.pipeline.experiment import Experiment, matched_ratio

    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    experiment = Experiment({"seed": 0, "scoring": {}}, store, tmp_path, progress=False)
    _, oracle = experiment.cleaning(data, "oracle", "auto", "per-target")
    _, matched = experiment.cleaning(data, "random", "oracle@auto", "per-target")
    like, clean = CleanManifest.load(oracle), CleanManifest.load(matched)
    assert {t: len(k) for t, k in clean.keep.items()} == {t: len(k) for t, k in like.keep.items()}
    assert clean.methods == ["random"] and clean.extra["matched"]["methods"] == ["oracle"]
    random_scores = ScoreTable.read(experiment.cleaning(data, "random", 0.5, "per-target")[0])
    for target, kept in clean.keep.items():  # the best random scores, not the oracle's songs
        ranked = sorted(random_scores.tracks, key=lambda t: -random_scores.column(target)[t])
        assert set(kept) == set(ranked[:len(kept)])
    assert experiment.cleaning(data, "random", "oracle@auto", "per-target")[1] == matched  # one shared artifact

    assert matched_ratio("mlp@0.5") == ("mlp", 0.5) and matched_ratio(0.5) is None and matched_ratio("auto") is None
    for bad, message in [("dirty@auto", "names a scoring method"), ("@auto", "names a scoring method"),
                         ("fad@most", "neither a fraction nor auto"), ("fad@mlp@auto", "names a scoring method")]:
        with pytest.raises(PipelineError, match=message):
            experiment.cleaning(data, "random", bad, "per-target")


# --- grids ---------------------------------------------------------------------------------------


def test_a_fusion_fuses_the_tables_its_methods_make_alone_for_that_seed(tiny_data, tmp_path):
    """Each component is scored as the XP would score that method alone (its scoring settings, its
    seed), through the store: the fusion reads those very artifacts, and fuses them by content."""
    from sepclean.pipeline.experiment import Experiment

    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    cfg = {"seed": 3, "scoring": {"random": {"seed": None},
                                  "fusion": {"methods": [{"method": "random"}, {"method": "oracle"}], "weights": None}}}
    experiment = Experiment(cfg, store, tmp_path, progress=False)
    fused, _ = experiment.cleaning(data, "fusion", 0.5, "per-target")
    alone = {m: experiment.cleaning(data, m, 0.5, "per-target")[0] for m in ("random", "oracle")}
    assert ScoreTable.read(alone["random"]).metadata["seed"] == 3  # the XP's seed
    assert len(list((tmp_path / "store" / "scores").iterdir())) == 3  # random, oracle, their fusion: no copies
    table = ScoreTable.read(fused)
    assert table.method == "fusion" and [c["method"] for c in table.metadata["components"]] == ["random", "oracle"]
    expected = create("fusion", methods=[str(alone["random"]), str(alone["oracle"])]).score(
        ScoringTask(data.manifest("train"), data.manifest("reference"), progress=False), tmp_path / "w")
    assert table.scores == expected.scores


def test_grids_list_exactly_their_experiments():
    from sepclean.experiments.local_grid import xps

    sheeps = xps("sepclean.mixed23")
    conditions = [(s.xp.cfg.arch, s.xp.cfg.method, s.xp.cfg.ratio, s.xp.cfg.mode, s.xp.cfg.seed) for s in sheeps]
    # 2 architectures x 3 seeds x (3 controls + 7 (method, mode) pairs x 3 ratios), HDemucs per
    # stem: 3 seeds x 2 methods x 3 ratios, and 2 x 3 x 3 methods at ratio auto, each with 2 matched controls
    assert len(sheeps) == len({s.xp.sig for s in sheeps}) == 2 * 3 * (3 + 7 * 3) + 3 * 2 * 3 + 2 * 3 * 3 * 3 == 216
    assert ("openunmix", "random", "attribute@auto", "per-target", 1) in conditions
    assert ("hdemucs", "mlp", "auto", "per-target", 0) in conditions
    assert {c[0] for c in conditions} == {"openunmix", "hdemucs"}
    assert ("hdemucs", "attribute", 0.9, "unified", 2) in conditions
    per_stem = {c for c in conditions if c[3] == "per-stem"}
    assert {c[:2] for c in per_stem} == {("hdemucs", "attribute"), ("hdemucs", "fad")} and len(per_stem) == 18
    assert ("hdemucs", "attribute", 0.75, "per-target", 0) in conditions  # what per-stem compares to
    assert sum(c[1] == "dirty" for c in conditions) == 6  # controls are not repeated per ratio
    assert all(s.xp.cfg.archs.openunmix.preset is None for s in sheeps)  # full size for GPUs

    demo = xps("sepclean.demo")
    assert sorted((s.xp.cfg.arch, s.xp.cfg.method) for s in demo) == sorted(
        (arch, method) for arch in ("openunmix", "hdemucs")
        for method in ("dirty", "clean_twin", "oracle", "fad", "attribute"))
    assert all(s.xp.cfg.archs.openunmix.preset == "tiny" for s in demo)  # size=cpu
    sdr_cpu = [(s.xp.cfg.method, s.xp.cfg.ratio, s.xp.cfg.seed) for s in xps("sepclean.sdr_cpu")]
    assert len(sdr_cpu) == len(set(sdr_cpu)) == 7 * 3
    assert ("fad", "auto", 2) in sdr_cpu and ("random", 0.75, 1) in sdr_cpu
    assert all(s.xp.cfg.data.synth.sizes.test == 40 and s.xp.cfg.archs.openunmix.epochs == 150
               for s in xps("sepclean.sdr_cpu"))
    scaling = xps("sepclean.scaling")
    assert len(scaling) == 3 * 3 * 3 and {s.xp.cfg.method for s in scaling} == {"dirty", "clean_twin", "attribute"}
    with pytest.raises(PipelineError, match="no grid 'sepclean.nope'"):
        xps("sepclean.nope")


# --- results -------------------------------------------------------------------------------------


def _run(method, seed, avg, arch="openunmix", ratio=0.75, mode="unified"):
    return ({"arch": arch, "method": method, "ratio": ratio, "mode": mode, "seed": seed},
            {"sdr": {"vocals": avg, "avg": avg}, "kept": 10, "converged": True})


def test_paired_interval_and_gap_closed():
    dirty = [1.0, 2.0, 3.0]
    clean = [2.0, 3.0, 4.0]
    method = [1.5, 2.7, 3.4]  # differences 0.5, 0.7, 0.4
    runs = [_run("dirty", s, v) for s, v in enumerate(dirty)] + [_run("clean_twin", s, v) for s, v in enumerate(clean)]
    runs += [_run("fad", s, v) for s, v in enumerate(method)]
    rows = {r["method"]: r for r in results.summarise(runs)}
    fad = rows["fad"]
    assert fad["delta"] == pytest.approx(0.5333333)
    sd = math.sqrt(((0.5 - 0.5333333) ** 2 + (0.7 - 0.5333333) ** 2 + (0.4 - 0.5333333) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert fad["delta_low"] == pytest.approx(0.5333333 - half) and fad["delta_high"] == pytest.approx(0.5333333 + half)
    assert fad["gap_closed"] == pytest.approx(0.5333333)  # the clean twin is 1 dB above dirty
    assert fad["sdr_avg"] == pytest.approx(2.5333333) and fad["sdr_avg_std"] == pytest.approx(0.9609024)
    assert rows["dirty"]["ratio"] is None and "delta" not in rows["dirty"]
    # Where the clean twin is no better than dirty there is no gap to share: no figure, not 154%.
    level = [_run("dirty", s, v) for s, v in enumerate(dirty)] + [_run("clean_twin", s, v - 0.1)
                                                                   for s, v in enumerate(dirty)]
    level += [_run("fad", s, v) for s, v in enumerate(method)]
    assert math.isnan({r["method"]: r for r in results.summarise(level)}["fad"]["gap_closed"])
    table = results.markdown(results.summarise(runs))
    assert "+0.53 [" in table and "53%" in table


def test_the_share_of_the_gap_has_fiellers_interval():
    # A gap of exactly 1 dB on every seed: the share's interval is the Δ's own t-interval.
    runs = [_run("dirty", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    runs += [_run("clean_twin", s, v) for s, v in enumerate([2.0, 3.0, 4.0])]
    runs += [_run("fad", s, v) for s, v in enumerate([1.5, 2.7, 3.4])]
    fad = next(r for r in results.summarise(runs) if r["method"] == "fad")
    assert (fad["gap_low"], fad["gap_high"]) == (pytest.approx(fad["delta_low"]), pytest.approx(fad["delta_high"]))
    assert "53% [" in results.markdown(results.summarise(runs))

    # A gap that varies: at each bound, the paired t-statistic of (method − dirty) − ρ (clean − dirty)
    # is exactly the 95% critical value, and the share itself lies between them.
    dirty = {0: 4.0, 1: 3.9, 2: 4.1, 3: 3.8, 4: 4.0}
    clean = {0: 5.1, 1: 4.8, 2: 5.3, 3: 4.7, 4: 5.0}
    method = {0: 4.4, 1: 4.3, 2: 4.6, 3: 4.1, 4: 4.3}
    share = results.gap_share(method, dirty, clean)
    a = np.array([method[s] - dirty[s] for s in dirty])
    b = np.array([clean[s] - dirty[s] for s in dirty])
    critical = 2.7764451051977987  # t(0.975, 4)
    for rho in (share["low"], share["high"]):
        d = a - rho * b
        assert abs(d.mean() / (d.std(ddof=1) / math.sqrt(5))) == pytest.approx(critical)
    assert share["share"] == pytest.approx(a.mean() / b.mean()) and share["low"] < share["share"] < share["high"]

    # A gap its own seeds cannot tell from zero bounds no share.
    noisy = {0: 5.0, 1: 3.0, 2: 4.6, 3: 3.2, 4: 4.4}
    unbounded = results.gap_share(method, dirty, noisy)
    assert math.isnan(unbounded["low"]) and math.isnan(unbounded["high"])


def test_repairs_by_another_model_are_rows_of_their_own():
    runs = [_run("dirty", 0, 1.0)]
    for model, avg in (("reference", 1.2), ("baseline", 1.4), (None, 1.1)):
        cfg, metrics = _run("mlp", 0, avg, mode="per-target")
        runs.append(({**cfg, "action": "repair", "repair": {"model": model}, "seed": 0 if model else 1}, metrics))
    names = [r["name"] for r in results.summarise(runs)]
    assert names == ["dirty", "mlp, repair", "mlp, repair (baseline model)"]  # no model named: the reference's row
    assert results.Condition.of({**runs[2][0]}).control("dirty") == results.Condition.of(runs[0][0])


def test_fusions_of_other_components_are_rows_of_their_own_named_by_them():
    runs = [_run("dirty", 0, 1.0)]
    for methods, weights, avg in (([{"method": "mlp"}, {"method": "attribute"}], None, 1.5),
                                  ([{"method": "mlp"}, {"method": "fad", "frames": 300}], [2, 1], 1.25)):
        cfg, metrics = _run("fusion", 0, avg, mode="per-target")
        runs.append(({**cfg, "scoring": {"fusion": {"methods": methods, "weights": weights}}}, metrics))
    rows = {r["name"]: r for r in results.summarise(runs)}
    assert set(rows) == {"dirty", "fusion of mlp + attribute", "fusion of mlp + fad (frames=300), weights [2, 1]"}
    assert rows["fusion of mlp + attribute"]["delta"] == pytest.approx(0.5)


def test_seed_pairs_only_count_seeds_both_conditions_have():
    runs = [_run("dirty", 0, 1.0), _run("dirty", 1, 2.0), _run("fad", 1, 2.5)]
    fad = next(r for r in results.summarise(runs) if r["method"] == "fad")
    assert fad["delta"] == pytest.approx(0.5) and math.isnan(fad["delta_low"])


def test_unknown_condition_names_the_controls_and_methods(tmp_path):
    from sepclean.pipeline.experiment import Experiment

    experiment = Experiment({"method": "magic", "seed": 0, "scoring": {}}, ArtifactStore(tmp_path), Path(tmp_path))
    with pytest.raises(PipelineError, match="no cleaning condition 'magic': the controls are dirty, clean_twin"):
        experiment.scorer("magic")


def test_robust_conditions_are_rows_of_their_own_against_plain_dirty():
    robust = {"truncate": 0.25, "mask": 0.0, "warmup": 0}
    runs = [_run("dirty", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    runs += [_run("clean_twin", s, v) for s, v in enumerate([2.0, 3.0, 4.0])]
    runs += [({**cfg, "robust": robust}, m) for cfg, m in
             (_run("dirty", s, v) for s, v in enumerate([1.5, 2.5, 3.5]))]
    rows = {(r["method"], r["robust"]): r for r in results.summarise(runs)}
    assert set(rows) == {("dirty", None), ("clean_twin", None), ("dirty", "truncate 0.25")}
    alone = rows["dirty", "truncate 0.25"]
    assert alone["delta"] == pytest.approx(0.5) and alone["gap_closed"] == pytest.approx(0.5)
    assert "delta" not in rows["dirty", None]
    assert "| dirty + truncate 0.25 |" in results.markdown(results.summarise(runs))


def _on(preset, run, overrides=()):
    cfg, metrics = run
    return ({**cfg, "data": {"synth": {"preset": preset, "severity": "heavy"}, "roots": {"train": []}},
             "archs": {cfg["arch"]: {"overrides": list(overrides)}}}, metrics)


def test_conditions_on_other_data_are_rows_of_their_own_against_their_own_dirty():
    runs = [_on("mixed23", _run("dirty", s, v)) for s, v in enumerate([1.0, 2.0])]
    runs += [_on("heldout", _run("dirty", s, v)) for s, v in enumerate([5.0, 6.0])]
    runs += [_on("heldout", _run("clean_twin", s, v)) for s, v in enumerate([7.0, 8.0])]
    runs += [_on("heldout", _run("mlp", s, v)) for s, v in enumerate([6.0, 7.0])]
    rows = {r["name"]: r for r in results.summarise(runs)}
    assert set(rows) == {"dirty", "dirty on heldout", "clean_twin on heldout", "mlp on heldout"}
    assert rows["dirty"]["sdr_avg"] == pytest.approx(1.5) and rows["dirty on heldout"]["sdr_avg"] == pytest.approx(5.5)
    mlp = rows["mlp on heldout"]
    assert mlp["delta"] == pytest.approx(1.0) and mlp["gap_closed"] == pytest.approx(0.5)
    assert {r["name"] for r in results.summarise([_on("mixed23", _run("dirty", 0, 1.0), ["x=1"])])} == {"dirty"}


def test_two_xps_of_one_condition_and_seed_are_an_error_not_one_hiding_the_other():
    runs = [_run("dirty", 0, 1.0), ({**_run("dirty", 0, 2.0)[0], "size": "gpu"}, _run("dirty", 0, 2.0)[1])]
    with pytest.raises(PipelineError, match="two XPs are seed 0 of condition openunmix dirty"):
        results.summarise(runs)
