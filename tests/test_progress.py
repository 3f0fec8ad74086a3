"""Progress bars only on a terminal: a log file gets the stages' lines, not redrawn bars."""

from __future__ import annotations

import io

from sepclean.progress import bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_when_asked_for_and_on_a_terminal():
    assert bars(True, Terminal()) is True
    assert bars(False, Terminal()) is False
    assert bars(True, io.StringIO()) is False  # a log file, a pipe
    closed = io.StringIO()
    closed.close()
    assert bars(True, closed) is False and bars(True, object()) is False  # closed; no isatty at all


def test_an_xp_draws_no_bars_into_its_log(monkeypatch):
    from omegaconf import OmegaConf

    from sepclean import train

    monkeypatch.setattr("sys.stderr", io.StringIO())
    cfg = train.main.get_xp([]).cfg
    assert train.experiment(cfg).progress is False
    monkeypatch.setattr("sys.stderr", Terminal())
    assert train.experiment(cfg).progress is True
    assert train.experiment(OmegaConf.create(cfg), progress=False).progress is False
