"""One base for every error a user can act on.

The CLI catches ``SepcleanError`` once and prints it without a traceback (exit status 2); anything
else is a bug and keeps its traceback. Each area raises its own subclass, defined beside the code
that raises it (``ManifestError`` in manifest.py, ``ScoresError`` in scores.py, ...). Subclasses
that used to derive from a builtin (``ValueError``, ``RuntimeError``) still do, so callers that
catch the builtin keep working.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager


class SepcleanError(Exception):
    """A problem the user can fix: bad input, a wrong setting, a stale or corrupt file."""


class PipelineError(SepcleanError):
    """An experiment pipeline stage cannot run: a missing input, a locked or foreign artifact."""


class OutputError(SepcleanError):
    """An output that cannot be written: a read-only or full file system, a missing permission."""


@contextmanager
def writing(path):
    """Report an ``OSError`` raised while writing ``path`` as an ``OutputError`` naming it."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


@contextmanager
def exit_on_user_error(prog: str):
    """For a process's main that is not the CLI (the dora mains, run by hydra): a ``SepcleanError``
    is printed as one line, ``prog: error: message``, and the process exits with status 2, as the
    CLI does. Without it, hydra prints the message at the bottom of its traceback."""
    try:
        yield
    except SepcleanError as e:
        print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
