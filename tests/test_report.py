"""``sepclean report``: a grid summary built by hand (2 architectures, the dirty and clean-twin
controls, 2 scoring methods at 2 ratios, 2 seeds) with real scores tables, clean manifests and
ground truth written by the project's own classes; no training. The report from a real grid is in
test_grid.py."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import sepclean
from sepclean.clean_manifest import CleanManifest
from sepclean.cli import main
from sepclean.detection import auroc, roc_curve
from sepclean.experiments import report, results
from sepclean.filtering import clean_manifest
from sepclean.manifest import Manifest, Track
from sepclean.pipeline.artifacts import ArtifactStore, write_json
from sepclean.pipeline.experiment import metrics
from sepclean.pipeline.stages import Data
from sepclean.scores import ScoreTable, dataset_record
from sepclean.toolkit import TrainResult

ARCHS = ("openunmix", "hdemucs")
METHODS = (("fad", "per-target"), ("loss", "unified"))
RATIOS = (0.5, 0.75)
SEEDS = (0, 1)
POOL = [f"song_{i:04d}" for i in range(16)]
KINDS = {1: ("label_noise", ["vocals", "other"]), 4: ("bleeding", ["bass"]), 7: ("bleeding", ["vocals"]),
         10: ("label_noise", ["drums", "bass"]), 13: ("bleeding", ["other"])}
PLOTS = ("gains.png", "sdr_avg.png", "sdr_per_target.png", "score_histograms.png", "roc.png")


def _truth() -> dict:
    tracks = {}
    for i, track in enumerate(POOL):
        kind, stems = KINDS.get(i, (None, []))
        tracks[track] = {"contaminated": kind is not None, "kind": kind, "stems": stems, "params": {}}
    return {"format": "sepclean.contamination", "format_version": 1, "preset": "mixed23", "tracks": tracks}


def _pool(folder: Path) -> Manifest:
    """The train manifest of the pool (its records need no audio: the report reads ids only)."""
    tracks = [Track(t, str(folder), None, {s: f"{t}/{s}.wav" for s in sepclean.STEMS}, 44100, 2, 44100,
                    {s: f"{t}-{s}" for s in sepclean.STEMS}, t) for t in POOL]
    manifest = Manifest(tracks)
    manifest.write(folder / "manifests" / "train.jsonl")
    return manifest


def _scores(method: str, seed: int, truth: dict, pool: Manifest) -> ScoreTable:
    """Scores that find the contaminated stems, with noise: lower for a target whose stem was hit."""
    rng = np.random.default_rng([seed, *map(ord, method)])
    columns = {t: {track: float(rng.normal(0.0, 1.0) - 2.0 * (t in truth["tracks"][track]["stems"]))
                   for track in POOL} for t in sepclean.STEMS}
    return ScoreTable.from_columns(method, POOL, columns, {"dataset": dataset_record(pool)})


def _evaluation(arch: str, method: str, ratio: float | None, seed: int) -> dict:
    base = {"openunmix": 3.0, "hdemucs": 4.0}[arch] + 0.1 * seed
    lift = {"dirty": 0.0, "clean_twin": 0.6, "robust": 0.3}.get(method, 0.1 * len(method) * (ratio or 0))
    rng = np.random.default_rng([ARCHS.index(arch), *map(ord, method), int(100 * (ratio or 0)), seed])
    sdr = {t: base + lift + 0.5 * i + float(rng.normal(0, 0.15)) for i, t in enumerate(sepclean.STEMS)}
    return {"median": sdr, "average": float(np.mean(list(sdr.values())))}


def _xp(root: Path, data: Data, arch: str, method: str, seed: int, ratio=0.75, mode="per-target", scores=None,
        clean=None, robust=None, store=None) -> tuple[dict, dict]:
    """One XP's (config, metrics), as the pipeline records them."""
    kept = CleanManifest.load(clean) if clean else None
    if arch == "openunmix":  # one model per target, each on its own kept list
        tracks = {t: kept.kept(t) if kept else POOL for t in sepclean.STEMS}
    else:  # one joint model, on the songs kept for every target
        tracks = {"all": kept.kept(None) if kept else POOL}
    model = TrainResult(root / "models" / arch / method, tracks, {u: 3 for u in tracks}, {u: 5 for u in tracks})
    cfg = {"arch": arch, "method": method, "ratio": ratio, "mode": mode, "seed": seed, "robust": robust}
    evaluated = "robust" if robust else method
    return cfg, metrics(data, model, _evaluation(arch, evaluated, ratio if scores else None, seed), scores, clean, store)


def build_grid(root: Path, archs=ARCHS, methods=METHODS, ratios=RATIOS, seeds=SEEDS, truth=True,
               store: ArtifactStore | None = None) -> Path:
    """A summary.json as ``sepclean grid`` writes it: every XP's metrics made by the pipeline's own
    ``experiment.metrics``, naming real artifact files (scores tables, clean manifests, ground truth);
    with ``store`` (at ``root/artifacts``), relative to it, as an XP records them."""
    folder = root / "artifacts" / "data" / "d0"
    pool = _pool(folder)
    ground = _truth()
    if truth:
        (folder / "contamination.json").write_text(json.dumps(ground))
    data = Data(folder, {"train": folder / "manifests" / "train.jsonl"}, ground if truth else None)
    runs = []
    for seed in seeds:
        tables = {}
        for method, _ in methods:
            tables[method] = root / "artifacts" / "scores" / f"{method}-{seed}" / "table"
            _scores(method, seed, ground, pool).write(tables[method])
        for arch in archs:
            runs.append(_xp(root, data, arch, "dirty", seed, store=store))
            runs.append(_xp(root, data, arch, "clean_twin", seed, store=store))
            runs.append(_xp(root, data, arch, "dirty", seed, robust={"truncate": 0.25}, store=store))
            for method, mode in methods:
                for ratio in ratios:
                    path = root / "artifacts" / "filter" / f"{method}-{seed}-{ratio}" / "clean.json"
                    if not path.exists():
                        clean_manifest(ScoreTable.read(tables[method]), ratio, mode).write(path)
                    runs.append(_xp(root, data, arch, method, seed, ratio, mode, tables[method], path, store=store))
    summary = root / "grid_results" / "hand" / "summary.json"
    write_json(summary, {"grid": "hand", "conditions": results.summarise(runs),
                         "xps": [{"config": c, "metrics": m} for c, m in runs]})
    return summary


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    summary = build_grid(root)
    return summary, report.write(str(summary), root / "report")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name}: not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_real_png(path: Path) -> None:
    from matplotlib.image import imread

    width, height = png_size(path)
    assert width >= 400 and height >= 300, (path.name, width, height)
    pixels = imread(path)
    colours = np.unique((pixels[..., :3].reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 50, f"{path.name}: {len(colours)} distinct colours: a blank or trivial picture"
    assert (pixels[..., :3] < 0.5).mean() > 0.002, f"{path.name}: hardly any dark pixel (no text or lines)"


def test_every_plot_is_a_png_with_real_content(written):
    _, out = written
    assert sorted(p.name for p in out.plots) == sorted(PLOTS)
    for path in out.plots:
        assert path.parent == out.folder
        assert_real_png(path)
    assert out.problems == []


def test_the_markdown_names_every_condition_and_links_every_plot(written):
    summary, out = written
    text = out.markdown.read_text()
    for row in json.loads(summary.read_text())["conditions"]:
        ratio = "-" if row["ratio"] is None else format(row["ratio"], "")
        method = row["method"] + (f" + {row['robust']}" if row.get("robust") else "")
        assert f"| {row['arch']} | {method} | {ratio} | {row['mode'] or '-'} |" in text, row
    assert "| openunmix | dirty + truncate 0.25 | - | - |" in text
    for name in PLOTS:
        assert f"]({name})" in text
    assert "What cannot be drawn" not in text  # everything could be drawn


def test_the_html_page_is_self_contained(written):
    _, out = written
    page = out.html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = re.findall(r"<img src='([^']*)'", page)
    assert len(images) == len(PLOTS)
    assert all(src.startswith("data:image/png;base64,") for src in images)  # no file it needs beside it
    assert "<td>openunmix</td><td>fad</td><td class=n>0.5</td><td>per-target</td>" in page


def _removed_tables(text: str) -> dict[str, list[list[str]]]:
    """Heading of each removed-songs table -> its rows (cells)."""
    section = text.split("## Removed songs", 1)[1]
    tables = {}
    for part in section.split("\n### ")[1:]:
        heading, _, body = part.partition("\n")
        rows = [line.strip("|").split("|") for line in body.splitlines() if line.startswith("| song_")]
        tables[heading] = [[c.strip() for c in row] for row in rows]
    return tables


def test_the_removed_songs_are_exactly_what_each_clean_manifest_drops(written, tmp_path):
    summary, out = written
    tables = _removed_tables(out.markdown.read_text())
    truth = _truth()["tracks"]
    assert sorted(tables) == sorted(f"{m}, ratio {r}, {mode} (seed 0)" for m, mode in METHODS for r in RATIOS)
    for method, mode in METHODS:
        for ratio in RATIOS:
            rows = tables[f"{method}, ratio {ratio}, {mode} (seed 0)"]
            clean = CleanManifest.load(summary.parent.parent.parent / "artifacts" / "filter" /
                                       f"{method}-0-{ratio}" / "clean.json")
            kept = clean.kept(None)  # kept for every target
            assert sorted(row[0] for row in rows) == sorted(set(POOL) - set(kept))
            table = ScoreTable.read(summary.parent.parent.parent / "artifacts" / "scores" / f"{method}-0" / "table")
            for row in rows:
                track = row[0]
                assert row[1] == ("no" if not truth[track]["contaminated"] else f"yes: {truth[track]['kind']} "
                                  f"({', '.join(truth[track]['stems'])})")
                if clean.per_target:
                    dropped = [t for t in sepclean.STEMS if track not in clean.kept(t)]
                    assert row[2] == ", ".join(dropped)
                    scores = row[3:]
                else:
                    scores = row[2:]
                assert [float(s) for s in scores] == pytest.approx(
                    [table.scores[track][c] for c in ["all", *sepclean.STEMS]], rel=1e-3)
            unified = [table.scores[row[0]]["all"] for row in rows]
            assert unified == sorted(unified)  # lowest score first


def test_a_summary_without_a_finished_xp_is_a_clear_error(tmp_path, capsys):
    summary = tmp_path / "summary.json"
    write_json(summary, {"grid": "empty", "conditions": [], "xps": []})
    with pytest.raises(report.ReportError, match="no finished XP"):
        report.write(str(summary), tmp_path / "out")
    assert main(["report", str(summary), "-o", str(tmp_path / "out")]) == 2
    assert "no finished XP to report" in capsys.readouterr().err


@pytest.mark.parametrize("source, message", [
    ("nowhere/summary.json", "no such file"),
    ("{folder}", "a folder without summary.json"),
    ("{bad}", "not a grid summary"),
    ("sepclean.no_such_grid", "no grid 'sepclean.no_such_grid' (known: sepclean.actions_cpu, sepclean.ci,"),
])
def test_a_source_that_is_no_grid_is_a_clear_error(tmp_path, capsys, source, message):
    (tmp_path / "bad.json").write_text(json.dumps({"grid": "x", "conditions": []}))
    source = source.format(folder=tmp_path, bad=tmp_path / "bad.json")
    assert main(["report", source, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_without_ground_truth_the_report_says_what_it_cannot_draw(tmp_path):
    out = report.write(str(build_grid(tmp_path, truth=False)), tmp_path / "report")
    text = out.markdown.read_text()
    assert "No ground truth (contamination.json)" in text and "No ROC curves" in text
    assert sorted(p.name for p in out.plots) == ["gains.png", "score_histograms.png", "sdr_avg.png", "sdr_per_target.png"]
    assert "| song_0000 | unknown |" in text or "| unknown |" in text
    for path in out.plots:
        assert_real_png(path)


def test_one_ratio_one_seed_and_an_old_summary(tmp_path):
    summary = build_grid(tmp_path, ratios=(0.75,), seeds=(0,))
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "roc.png").write_bytes(b"stale")  # a figure of an earlier report, that this one cannot draw
    old = json.loads(summary.read_text())
    for xp in old["xps"]:
        del xp["metrics"]["artifacts"]  # written before metrics named their artifacts
    summary.write_text(json.dumps(old))
    out = report.write(str(summary), folder)
    text = out.markdown.read_text()
    assert "One ratio only (0.75): SDR is drawn as points, not lines." in text
    assert "One seed per condition: no error bars" in text
    assert "10 of 10 XPs' metrics name no artifacts" in text
    assert "Not drawn: no XP names a scores table." in text and "Not drawn: no XP names a clean manifest." in text
    assert sorted(p.name for p in out.plots) == ["gains.png", "sdr_avg.png", "sdr_per_target.png"]
    assert not (folder / "roc.png").exists()
    for path in out.plots:
        assert_real_png(path)


def test_a_recorded_artifact_that_cannot_be_read_is_a_problem_and_exit_status_1(tmp_path, capsys):
    summary = build_grid(tmp_path, seeds=(0,))
    shutil.rmtree(tmp_path / "artifacts" / "scores" / "loss-0")
    assert main(["report", str(summary), "-o", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert "loss-0/table cannot be read" in err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Problems: recorded files that could not be read" in text and "loss-0/table" in text
    assert "fad, ratio 0.5, per-target (seed 0)" in text  # the rest is still drawn


def _set_sdr(summary: Path, value, keep=lambda cfg: False) -> None:
    """Every XP's SDRs set to ``value``, but for the XPs ``keep`` picks."""
    grid = json.loads(summary.read_text())
    for xp in grid["xps"]:
        if not keep(xp["config"]):
            xp["metrics"]["sdr"] = {target: value for target in xp["metrics"]["sdr"]}
    summary.write_text(json.dumps(grid))  # NaN as JSON's NaN, as write_json writes it


def test_results_whose_sdrs_are_all_nan_say_so_and_exit_1(tmp_path, capsys):
    summary = build_grid(tmp_path, archs=("openunmix",), ratios=(0.75,), seeds=(0,))
    _set_sdr(summary, float("nan"))
    assert main(["report", str(summary), "-o", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert "sepclean report: no XP has a finite SDR: all 5 XPs' SDRs are NaN" in err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "No XP has a finite SDR" in text and text.count("Not drawn: every SDR is NaN.") == 2
    assert not (tmp_path / "report" / "sdr_avg.png").exists() and "was not trained" not in text


def test_some_nan_sdrs_are_listed_and_the_rest_drawn(tmp_path, capsys):
    summary = build_grid(tmp_path, archs=("openunmix",), ratios=(0.75,), seeds=(0,))
    _set_sdr(summary, float("nan"), keep=lambda cfg: cfg["method"] in ("dirty", "clean_twin"))
    assert main(["report", str(summary), "-o", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "2 of 5 XPs have no finite SDR (NaN): fad openunmix seed 0, loss openunmix seed 0" in text
    assert (tmp_path / "report" / "sdr_avg.png").exists()


@pytest.mark.parametrize("damage, problem", [
    (lambda sdr: {**sdr, "avg": "banana"}, "sdr.avg='banana' is not a number"),
    (lambda sdr: "banana", "sdr='banana' is not a mapping of target to SDR with 'avg'"),
])
def test_an_sdr_that_is_not_a_number_is_one_line_naming_the_summary(tmp_path, capsys, damage, problem):
    summary = build_grid(tmp_path, archs=("openunmix",), ratios=(0.75,), seeds=(0,))
    grid = json.loads(summary.read_text())
    grid["xps"][2]["metrics"]["sdr"] = damage(grid["xps"][2]["metrics"]["sdr"])
    summary.write_text(json.dumps(grid))
    assert main(["report", str(summary), "-o", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == f"sepclean report: error: {summary}: XP 3 of 5 is damaged: {problem}\n"


def test_sdr_panels_span_half_a_db_and_single_points_get_no_legend_line(tmp_path, monkeypatch):
    """Differences of 0.0004 dB once filled a whole panel, and the legend drew lines for points."""
    from sepclean.experiments import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig) or path)
    rows = [{"arch": "openunmix", "method": method, "ratio": ratio, "mode": mode, "seeds": 1, "sdr_avg": sdr}
            for method, ratio, mode, sdr in (("dirty", None, None, 4.0), ("fad", 0.75, "per-target", 4.0004),
                                             ("loss", 0.75, "unified", 3.9998))]
    plots.sdr_vs_ratio(rows, ["openunmix"], ["avg"], path=tmp_path / "sdr.png", title="one ratio")
    (ax,) = drawn[0].axes
    low, high = ax.get_ylim()
    assert high - low >= plots.MIN_SDR_SPAN and low < 3.9998 and high > 4.0004
    legend = drawn[0].legends[0]
    styles = {text.get_text(): handle.get_linestyle() for text, handle in zip(legend.get_texts(), legend.legend_handles)}
    assert styles == {"dirty (whole pool)": "-", "fad (per-target)": "None", "loss (unified)": "None"}


def test_roc_curve_area_is_the_auroc():
    rng = np.random.default_rng(0)
    scores = {f"t{i}": float(v) for i, v in enumerate(rng.normal(size=40).round(1))}  # with ties
    bad = {t: bool(rng.random() < 0.3) for t in scores}
    fpr, tpr = roc_curve(scores, bad)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(auroc(scores, bad))


def test_xp_metrics_name_their_artifacts_as_strings(written):
    summary, _ = written
    for xp in json.loads(summary.read_text())["xps"]:
        art = xp["metrics"]["artifacts"]
        assert set(art) == {"data", "model", "scores", "clean"}
        assert Path(art["data"], "contamination.json").is_file() and isinstance(art["model"], str)
        if xp["config"]["method"] in ("dirty", "clean_twin"):
            assert art["scores"] is None and art["clean"] is None
        else:
            assert ScoreTable.read(art["scores"]).method == xp["config"]["method"]
            assert CleanManifest.load(art["clean"]).ratio == xp["config"]["ratio"]


def test_the_gains_figure_of_a_two_condition_grid_is_readable(tmp_path):
    """The smallest grid (one condition beside the clean twin) still gets a full-height figure: the
    ci grid's two rows once made it 268 pixels tall."""
    from sepclean.experiments import plots

    rows = [{"arch": "openunmix", "method": name, "ratio": None, "mode": None, "seeds": 2, "delta": delta,
             "delta_low": delta - 0.3, "delta_high": delta + 0.3} for name, delta in (("clean_twin", 0.9), ("random", 0.1))]
    assert_real_png(plots.gains(rows, ["openunmix"], tmp_path / "gains.png", "two conditions"))


def test_a_moved_store_reports_from_its_own_artifacts(tmp_path, monkeypatch):
    """XPs record their artifacts relative to the store: after ``mv outputs elsewhere`` (and
    ``SEPCLEAN_DORA_DIR=elsewhere``) the report reads the scores, clean manifests and ground truth
    where they are now, and never a tree left behind."""
    from sepclean.train import main as dora_main

    old, new = tmp_path / "old", tmp_path / "new"
    build_grid(old, archs=ARCHS[:1], seeds=SEEDS[:1], store=ArtifactStore(old / "artifacts"))
    xp = json.loads((old / "grid_results" / "hand" / "summary.json").read_text())["xps"][-1]["metrics"]
    assert not any(Path(p).is_absolute() for p in xp["artifacts"].values())
    old.rename(new)
    monkeypatch.setattr(dora_main.dora, "dir", new)
    written = report.write(str(new / "grid_results" / "hand" / "summary.json"), tmp_path / "report")
    assert not written.problems and {p.name for p in written.plots} >= {"score_histograms.png", "roc.png"}
