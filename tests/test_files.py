"""The one atomic writer: whole files or none, even with writers racing for the same file."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from sepclean.errors import OutputError
from sepclean.files import atomic_file, atomic_write_text


def _write_many(path: str, text: str, times: int) -> None:
    for _ in range(times):
        atomic_write_text(path, text)


def test_two_processes_and_two_threads_finishing_one_file_at_once_each_leave_it_whole(tmp_path):
    """Shards of one job on SLURM finish the same table: no writer fails or reads another's
    temporary file, and the file is always one writer's whole text."""
    path = tmp_path / "scores.csv"
    texts = [f"{k}\n" * 50_000 for k in "abcd"]
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_many, args=(str(path), text, 30)) for text in texts[:2]]
    failures = []

    def in_thread(text):
        try:
            _write_many(str(path), text, 30)
        except Exception as e:  # a thread's exception does not reach the test by itself
            failures.append(e)

    threads = [threading.Thread(target=in_thread, args=(text,)) for text in texts[2:]]
    errors = []
    for worker in (*processes, *threads):
        worker.start()
    seen = set()
    while any(p.is_alive() for p in processes) or any(t.is_alive() for t in threads):
        if path.exists():
            seen.add(path.read_text())
    for p in processes:
        p.join()
        errors.append(p.exitcode)
    for t in threads:
        t.join()
    assert errors == [0, 0] and failures == []
    assert seen <= set(texts) and path.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_names_the_path(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(OutputError, match=f"cannot write {blocked / 'x.json'}"):
        atomic_write_text(blocked / "x.json", "{}")
