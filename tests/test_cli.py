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
