"""One base for every error a user can act on.

The CLI catches ``SepcleanError`` once and prints it without a traceback (exit status 2); anything
else is a bug and keeps its traceback. Each area raises its own subclass, defined beside the code
that raises it (``ManifestError`` in manifest.py, ``ScoresError`` in scores.py, ...).
"""


class SepcleanError(Exception):
    """A problem the user can fix: bad input, a wrong setting, a stale or corrupt file."""


class PipelineError(SepcleanError):
    """An experiment pipeline stage cannot run: a missing input, a locked or foreign artifact."""
