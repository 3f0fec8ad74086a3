"""The changes sepclean makes to dora (0.1.13), installed by importing this module (both dora mains,
``sepclean.train`` and ``sepclean_plugins.demucs.train``, import it).

**The orphan check.** ``dora.shep.Shepherd._check_orphans`` runs whenever a grid is launched or
listed. When it finds a token left in ``<dora.dir>/orphans`` (dora was killed between submitting a
job and saving its id), it asks ``squeue`` for the jobs of ``os.getlogin()``. ``getlogin`` reads the
login record of the controlling terminal, and a process without one (CI, cron, nohup, a SLURM job,
an agent's shell) gets ``OSError: [Errno 6] No such device or address``, so every later dora command
fails until someone deletes the token by hand. The replacement asks for the user by
``getpass.getuser()`` (``$LOGNAME``, ``$USER``, then the password database), and does the rest as
dora does: cancel the orphaned jobs, then remove the token.

**dora's own folders.** Every dora command makes ``<dora.dir>/by_id``, ``orphans`` and ``arrays``
(``Shepherd.__init__``), and ``dora run`` makes the XP's folder and its ``.argv.json``
(``DecoratedMain.init_xp``) before the XP's main runs. A read-only or full ``dora.dir`` was a
traceback there, ending in ``OSError: [Errno 30] Read-only file system``. Both now raise an
``OutputError`` naming the path and ``dora.dir``: the ``sepclean`` commands print it as one line;
on dora's own command line, where nothing of sepclean's is running yet to catch it, it is printed
as one line and the process exits with status 2, as an error inside an XP does.

**The job files.** A ``dora grid`` that submits to SLURM pickles the XP's submitit jobs into
``<xp>/job.pkl``, and every later ``dora grid``, ``dora info``, ``sepclean grid --table`` and
``sepclean report`` unpickles it in full (``dora.utils.try_load`` with ``pickle.load``): a planted
``job.pkl`` ran its code there. It is now read with ``checkpoints.load_pickle``, which resolves only
what dora writes (submitit's ``SlurmJob`` and ``JobPaths``, and paths), and its jobs are checked to
be SLURM job ids that nothing cancels when they are dropped. Anything else, and a damaged file, is
an ``OutputError`` naming the file (dora used to ignore a damaged one with a warning, so the XP
looked as if it had never been submitted). dora reads the files in a pool of processes that turns
every error into a ``ProcessException`` holding its repr; a ``SepcleanError`` now comes through as
itself, so it is printed as one line like any other.

**The monitor's countdown.** ``dora grid`` (and ``--dry_run``) shows its table every ``-i``
minutes and, in between, counts down to the next update once a second, each count ended by a
carriage return and the last one blanked: on a terminal one line that changes, in a log file a
line a second (300 for the default 5 minutes, red escape codes for the last 10). ``dora.grid``'s
``print`` is replaced by ``monitor_print``, which off a terminal prints each countdown once, as a
plain line, and everything else as it is. dora's own log lines ("Parser Injecting argv ...",
"Info: ...", in every XP's log) are bold on a terminal only (``dora.log.colorize``).
"""

from __future__ import annotations

import functools
import getpass
import itertools
import logging
import pickle
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import dora.explore
import dora.grid
import dora.log
import dora.shep
from dora.main import DecoratedMain
from dora.shep import Shepherd
from dora.utils import try_load
from submitit import SlurmJob

from sepclean import checkpoints
from sepclean.errors import OutputError, SepcleanError, exit_on_user_error

logger = logging.getLogger(__name__)


def check_orphans(self: Shepherd) -> None:
    for token in self._orphans.iterdir():
        logger.warning("found dora's token %s: a job may have been submitted without its id being saved; "
                       "cancelling any job of that name", token.name)
        listed = subprocess.run(["squeue", "-u", getpass.getuser(), "-n", token.name, "-o", "%i", "-h"],
                                capture_output=True, text=True, check=True)
        ids = sorted({line.split("_")[0] for line in listed.stdout.split()})
        if ids:
            logger.warning("cancelling orphaned job(s) %s", ", ".join(ids))
            subprocess.run(["scancel", *ids], check=True)
        token.unlink()


def on_dora_command_line() -> bool:
    """Whether this process is dora's command line (``dora ...`` or ``python -m dora ...``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == "dora.__main__" or Path(sys.argv[0]).name == "dora"


def naming_unwritable_folders(method):
    """``method`` of a Shepherd or a DecoratedMain, an ``OSError`` it raises as an ``OutputError``."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            dora_dir = (self.main if isinstance(self, Shepherd) else self).dora.dir
            error = OutputError(f"cannot write {e.filename or dora_dir}: {e.strerror or e} "
                                f"(dora's folder dora.dir={dora_dir})")
        with exit_on_user_error("dora") if on_dora_command_line() else nullcontext():
            raise error

    return wrapped


JOB_FILE_GLOBALS = {("submitit.slurm.slurm", "SlurmJob"), ("submitit.core.utils", "JobPaths"),
                    ("pathlib", "PosixPath")}
"""What dora's ``job.pkl`` holds: ``(job, jobs of its array, dependent jobs)``, submitit's SLURM jobs."""


def _jobs_in(content) -> list:
    """The jobs in a job file as dora writes it: ``(job, its array's jobs, dependent jobs)``, or one job."""
    if isinstance(content, tuple) and len(content) in (2, 3) and all(isinstance(g, list) for g in content[1:]):
        return [content[0], *itertools.chain(*content[1:])]
    return [content]


def load_job_file(path, load=pickle.load, mode: str = "rb"):
    """``dora.utils.try_load`` as dora's Shepherd and grid call it for ``job.pkl``, without running code."""
    if load is not pickle.load:
        return try_load(path, load=load, mode=mode)
    with exit_on_user_error("dora") if on_dora_command_line() else nullcontext():
        content = checkpoints.load_pickle(path, OutputError, JOB_FILE_GLOBALS)
        for job in _jobs_in(content):
            cancels = getattr(job, "_cancel_at_deletion", False)
            if isinstance(job, SlurmJob):
                job._cancel_at_deletion = False  # a refused job must not be scancelled when dropped
            if not (isinstance(job, SlurmJob) and re.fullmatch(r"\d+(_\d+)?", str(job.job_id)) and not cancels):
                raise OutputError(f"{path}: not a job file dora wrote (it holds {job!r}, not a SLURM job "
                                  "id that is left running when the file is read); delete it to let dora "
                                  "forget the XP's job")
        return content


ESCAPE_CODES = re.compile(r"\x1b\[[0-9;]*m")


def on_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


_colorize = dora.log.colorize


def colorize(text: str, color: str) -> str:
    """``dora.log.colorize`` (its ``bold``, ``simple_log`` and ``fatal`` write to stderr), escape codes
    only where stderr is a terminal."""
    return _colorize(text, color) if on_terminal(sys.stderr) else text


class MonitorPrint:
    """``print`` for ``dora.grid``: its ``run_grid`` prints through ``maybe_print = print``."""

    counting_down = False

    def __call__(self, *args, end="\n", **kwargs):
        text = " ".join(map(str, args))
        if on_terminal(sys.stdout):
            print(*args, end=end, **kwargs)
        elif end == "\r":  # one second of a countdown: its first, as a line
            if not self.counting_down:
                print(ESCAPE_CODES.sub("", text).strip(), **kwargs)
            self.counting_down = True
        elif self.counting_down and not text.strip():  # the blank that erases the countdown
            self.counting_down = False
        else:
            self.counting_down = False
            print(*args, end=end, **kwargs)


monitor_print = MonitorPrint()


def get_sheep_in_pool(shepherd: Shepherd, argv, slurm, job_array_index=None):
    """``dora.explore._process``, which dora's grid runs in a process pool, with a ``SepcleanError``
    passed on as itself instead of as a ``ProcessException`` holding its repr."""
    try:
        return shepherd.get_sheep_from_argv(argv), slurm, job_array_index
    except SepcleanError:
        raise
    except Exception as exc:
        raise dora.explore.ProcessException(repr(exc))


Shepherd._check_orphans = check_orphans
Shepherd.__init__ = naming_unwritable_folders(Shepherd.__init__)
DecoratedMain.init_xp = naming_unwritable_folders(DecoratedMain.init_xp)
dora.shep.try_load = dora.grid.try_load = load_job_file
dora.explore._process = get_sheep_in_pool
dora.grid.print = monitor_print
dora.log.colorize = colorize
