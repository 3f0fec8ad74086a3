"""The `sepclean` entry point and the demo, end to end on the tiny profile."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sepclean.cli import COMMANDS, main
from sepclean.manifest import Manifest


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sepclean", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_on_tiny_profile(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--profile", "tiny", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "the training pool:" in out and "detection AUROC" in out
    assert (tmp_path / "clean.json").is_file()
    assert len(Manifest.load(tmp_path / "manifests" / "train.jsonl")) == 8
    # A second run reuses the dataset instead of regenerating it.
    assert main(["demo", "--out", str(tmp_path), "--profile", "tiny", "--workers", "1"]) == 0
    assert "reusing the synthetic dataset" in capsys.readouterr().out


def test_user_errors_are_caught_once_and_bugs_keep_their_traceback(monkeypatch, capsys):
    from sepclean.commands import filter as filter_command
    from sepclean.scores import ScoresError

    argv = ["filter", "scores", "--ratio", "0.5", "-o", "clean.json"]

    def user_error(args):
        raise ScoresError("scores.csv is not what meta.json says")

    monkeypatch.setattr(filter_command, "run", user_error)
    assert main(argv) == 2
    assert capsys.readouterr().err == "sepclean filter: error: scores.csv is not what meta.json says\n"

    def bug(args):
        raise KeyError("score")

    monkeypatch.setattr(filter_command, "run", bug)
    with pytest.raises(KeyError):
        main(argv)


def test_every_error_class_is_a_sepclean_error():
    from sepclean.attribution.engine import AttributionError
    from sepclean.clean_manifest import CleanManifestError
    from sepclean.cli import CommandError
    from sepclean.embeddings import EmbeddingError, WeightsNotFoundError
    from sepclean.errors import OutputError, PipelineError, SepcleanError
    from sepclean.manifest import ManifestError
    from sepclean.scan import ScanError
    from sepclean.scores import ScoresError
    from sepclean.synth import EffectsBackendError
    from sepclean.toolkit import ToolkitError

    for error in (AttributionError, CleanManifestError, CommandError, EmbeddingError, WeightsNotFoundError,
                  OutputError, PipelineError, ManifestError, ScanError, ScoresError, EffectsBackendError,
                  ToolkitError):
        assert issubclass(error, SepcleanError), error
