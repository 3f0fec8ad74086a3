"""Whether to draw progress bars.

tqdm redraws its bar with carriage returns and escape codes: on a terminal that is one line, in a
log file (a grid XP's ``run.log``, SLURM's output, a pipe) it is hundreds of lines and tens of KB a
run. Bars are drawn only when asked for and stderr (where tqdm writes) is a terminal; the stages
log their own lines either way.
"""

from __future__ import annotations

import sys


def bars(progress: bool = True, stream=None) -> bool:
    """``progress`` and ``stream`` (stderr by default) a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(progress) and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
