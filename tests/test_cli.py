"""The `sepclean` entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sepclean.cli import COMMANDS, main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sepclean", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs_the_demo_grid():
    """The demo is the grid sepclean.demo (run end to end, at the ci grid's size, in test_grid.py)."""
    from sepclean.commands import demo
    from sepclean.pipeline.local_grid import explorer

    assert demo.GRID == "sepclean.demo"
    assert explorer(demo.GRID) is not None
