"""The `sepclean` entry point."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest

from sepclean.cli import COMMANDS, library_output, main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sepclean", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_what_the_library_logs_is_printed_while_a_command_runs(capsys):
    """The stages and the grid runner log; a command prints their lines as its own output, as plain lines."""
    before = logging.getLogger("sepclean").handlers[:]
    with library_output():
        logging.getLogger("sepclean.experiments.local_grid").info("grid g: 2 XPs")
        logging.getLogger("sepclean.pipeline.artifacts").warning("waiting")
        logging.getLogger("sepclean.pipeline.stages").debug("not said")
    logging.getLogger("sepclean.pipeline.stages").info("not a command's")
    out, err = capsys.readouterr()
    assert (out, err) == ("grid g: 2 XPs\n", "waiting\n")
    assert logging.getLogger("sepclean").handlers == before


def test_demo_runs_the_demo_grid():
    """The demo is the grid sepclean.demo (run end to end, at the ci grid's size, in test_grid.py)."""
    from sepclean.commands import demo
    from sepclean.experiments.local_grid import explorer

    assert demo.GRID == "sepclean.demo"
    assert explorer(demo.GRID) is not None


# --- sepclean score METHOD: generated from the registry ---------------------------------------------

def _score_parser():
    import argparse

    from sepclean.commands import score

    parser = argparse.ArgumentParser(prog="sepclean score")
    score.configure(parser)
    return parser


def test_score_offers_every_registered_method_with_each_setting_documented(capsys):
    from sepclean.scorers import names, scorer_class
    from sepclean.scorers.base import settings

    for name in names():
        with pytest.raises(SystemExit) as exit_:
            main(["score", name, "--help"])
        assert exit_.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for setting in settings(scorer_class(name)):
            assert setting.doc, f"{name}.{setting.name} has no documented meaning"
            assert "--" + setting.name.replace("_", "-") in text
            assert " ".join(setting.doc.split()[:4]) in text, (name, setting.name)


def test_score_options_left_out_keep_the_dataclass_defaults_and_given_ones_are_typed():
    from sepclean.scorers import create, names, scorer_class
    from sepclean.scorers.base import settings

    parser = _score_parser()
    required = ["--train", "t", "--reference", "r", "-o", "o"]
    for name in names():
        args = parser.parse_args([name, *required])
        assert not [s.name for s in settings(scorer_class(name)) if hasattr(args, s.name)]  # nothing but defaults
    args = parser.parse_args(["fad", *required, "--stems", "vocals,bass", "--frames", "40", "--silence-db", "-50"])
    assert (args.stems, args.frames, args.silence_db) == (("vocals", "bass"), 40, -50.0)
    assert parser.parse_args(["fad", *required, "--frames", "all"]).frames == "all"
    args = parser.parse_args(["attribute", *required, "--checkpoints", "10,20", "--per-stem", "--targets", "vocals"])
    assert (args.checkpoints, args.per_stem, args.targets) == ((10, 20), True, ("vocals",))
    args = parser.parse_args(["refsdr", *required, "--overrides", "{nb-workers: 0}"])
    assert args.overrides == {"nb-workers": 0}
    assert create("attribute", checkpoints=(10, 20), per_stem=True).checkpoints == (10, 20)


def test_score_random_and_oracle_write_the_tables_their_scorers_make(tiny_data, tmp_path):
    from sepclean.scorers import ScoringTask, create
    from sepclean.scores import ScoreTable

    base = ["--train", str(tiny_data.manifests["train"]), "--reference", str(tiny_data.manifests["reference"]),
            "--quiet"]
    assert main(["score", "random", *base, "-o", str(tmp_path / "random"), "--seed", "3"]) == 0
    task = ScoringTask(tiny_data.manifest("train"), tiny_data.manifest("reference"),
                       contamination=tiny_data.contamination)
    assert ScoreTable.read(tmp_path / "random").scores == create("random", seed=3).score(task, tmp_path).scores
    truth = tiny_data.root / "contamination.json"
    assert main(["score", "oracle", *base, "-o", str(tmp_path / "oracle"), "--contamination", str(truth)]) == 0
    assert ScoreTable.read(tmp_path / "oracle").scores == create("oracle").score(task, tmp_path).scores
    fused = ["score", "fusion", *base, "-o", str(tmp_path / "fusion"),
             "--methods", f"{tmp_path / 'random'},{tmp_path / 'oracle'}", "--weights", "1,3"]
    assert main(fused) == 0 and ScoreTable.read(tmp_path / "fusion").method == "fusion"
    first = ScoreTable.read(tmp_path / "fusion").scores
    # A component table written again in place is another fusion: made again, never the old one served.
    assert main(["score", "random", *base, "-o", str(tmp_path / "random"), "--seed", "4"]) == 0
    assert main(fused) == 0
    fusion = create("fusion", methods=[str(tmp_path / "random"), str(tmp_path / "oracle")], weights=[1, 3])
    assert ScoreTable.read(tmp_path / "fusion").scores == fusion.score(task, tmp_path / "work").scores != first


TINY_REFERENCE = (dict(targets=("vocals", "bass"), preset="tiny", epochs=2, overrides={"hidden_size": 16}),
                  ["--targets", "vocals,bass", "--preset", "tiny", "--epochs", "2", "--overrides", "{hidden_size: 16}"])


@pytest.mark.parametrize("method, settings, extra", [  # every registered method (checked below)
    ("random", {"seed": 3}, ["--seed", "3"]), ("oracle", {}, []),
    ("loss", {"targets": ("vocals", "bass")}, ["--targets", "vocals,bass"]),
    ("attribute", {"targets": ("vocals", "bass"), "strength": 0.05, "segment": 2.0},
     ["--targets", "vocals,bass", "--strength", "0.05", "--segment", "2.0"]),
    ("fad", {"embedding": "spectral"}, ["--embedding", "spectral"]),
    ("mlp", {"embedding": "spectral", "epochs": 2}, ["--embedding", "spectral", "--epochs", "2"]),
    ("fusion", {"methods": [{"method": "random"}, {"method": "oracle"}], "weights": [1, 3]},
     ["--methods", "[{method: random}, {method: oracle}]", "--weights", "1,3"]),
    ("refloss", TINY_REFERENCE[0], TINY_REFERENCE[1]),
    ("refsdr", {**TINY_REFERENCE[0], "workers": 1}, [*TINY_REFERENCE[1], "--workers", "1"])])
def test_score_makes_its_table_by_the_pipeline_stage_and_finds_the_one_made_there(tiny_data, umx, tmp_path, method,
                                                                                 settings, extra):
    from sepclean.pipeline import stages
    from sepclean.pipeline.artifacts import ArtifactStore
    from sepclean.scorers import Baseline, create
    from sepclean.scores import ScoreTable

    store = ArtifactStore(tmp_path / "store")
    data = stages.Data(tiny_data.root, tiny_data.manifests, tiny_data.contamination)
    scorer = create(method, **settings)
    made = stages.score(store, scorer, data, Baseline("openunmix", umx), progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in store.root.rglob("*")}

    argv = ["score", method, "--train", str(tiny_data.manifests["train"]), "--reference",
            str(tiny_data.manifests["reference"]), "--store", str(store.root), "-o", str(tmp_path / "out"), "--quiet",
            *extra]
    if scorer.needs_truth:
        argv += ["--contamination", str(tiny_data.root / "contamination.json")]
    if scorer.needs_baseline:
        argv += ["--baseline", str(umx)]
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*")} == stamps  # found, not made again
    assert ScoreTable.read(tmp_path / "out").scores == ScoreTable.read(made).scores

    if method == "random":  # another setting: another artifact (the later options win)
        assert main([*argv, "--seed", "4", "-o", str(tmp_path / "other")]) == 0
        assert len(list((store.root / "scores").iterdir())) == 2


def test_the_cli_and_stage_test_covers_every_registered_method():
    from sepclean.scorers import names

    marks = test_score_makes_its_table_by_the_pipeline_stage_and_finds_the_one_made_there.pytestmark
    assert sorted(case[0] for case in marks[0].args[1]) == sorted(names())


def test_a_baseline_outside_the_store_retrained_in_place_is_scored_again(tiny_data, umx, tmp_path):
    """Its path does not name what it holds, as a training artifact's does: its files key the table too."""
    import torch

    from sepclean.scores import ScoreTable

    model = tmp_path / "runs" / "umx_dirty"
    shutil.copytree(umx, model)
    argv = ["score", "loss", "--train", str(tiny_data.manifests["train"]), "--reference",
            str(tiny_data.manifests["reference"]), "--baseline", str(model), "--targets", "vocals",
            "--store", str(tmp_path / "store"), "-o", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    first = ScoreTable.read(tmp_path / "out").scores
    assert main(argv) == 0 and len(list((tmp_path / "store" / "scores").iterdir())) == 1  # found
    weights = torch.load(model / "vocals.pth", weights_only=True)  # "retrained": other weights, same path
    torch.save({name: value * 0.9 if value.is_floating_point() else value for name, value in weights.items()},
               model / "vocals.pth")
    assert main(argv) == 0 and len(list((tmp_path / "store" / "scores").iterdir())) == 2  # made again
    assert ScoreTable.read(tmp_path / "out").scores != first


@pytest.mark.parametrize("argv, message", [
    (["oracle"], "oracle reads the ground truth: pass --contamination"),
    (["loss"], "loss scores with the model trained on the noisy set: pass --baseline CHECKPOINT"),
    (["refloss", "--scoring", "reducible"], "refloss scores with the model trained on the noisy set"),
    (["refloss", "--scoring", "nope"], "refloss: scoring must be one of"),
    (["fad", "--frames", "1"], "at least 2 frames"),
    (["oracle", "--contamination", "/nowhere.json"], "/nowhere.json: no such file (a synthetic dataset's contamination.json)"),
])
def test_score_errors_are_one_line(tiny_data, tmp_path, capsys, argv, message):
    base = ["--train", str(tiny_data.manifests["train"]), "--reference", str(tiny_data.manifests["reference"]),
            "-o", str(tmp_path / "out"), "--quiet", "--cache", str(tmp_path / "cache")] if argv[0] == "fad" else \
        ["--train", str(tiny_data.manifests["train"]), "--reference", str(tiny_data.manifests["reference"]),
         "-o", str(tmp_path / "out"), "--quiet"]
    assert main(["score", argv[0], *base, *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_conf_scoring_block_names_every_setting_and_declares_no_default():
    """A grid may set any field of a method (``scoring.fad.frames=all``) and leaves the default to the
    dataclass: the conf lists every field, each null, and nothing else."""
    from omegaconf import OmegaConf

    import sepclean
    from sepclean.pipeline.experiment import create_scorer
    from sepclean.scorers import create, names, scorer_class
    from sepclean.scorers.base import settings

    conf = OmegaConf.to_container(OmegaConf.load(sepclean.__path__[0] + "/conf/config.yaml"))["scoring"]
    for name in names():
        assert conf[name] == {s.name: None for s in settings(scorer_class(name))}, name
    cfg = {"scoring": conf, "seed": 0, "archs": {"openunmix": {}}}
    cfg["scoring"]["baseline"] = "openunmix"
    assert create_scorer(cfg, "mlp") == create("mlp")
    cfg["scoring"]["fad"]["frames"] = "all"
    assert create_scorer(cfg, "fad") == create("fad", frames="all")
