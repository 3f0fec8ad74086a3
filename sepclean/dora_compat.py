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
"""

from __future__ import annotations

import functools
import getpass
import logging
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from dora.main import DecoratedMain
from dora.shep import Shepherd

from sepclean.errors import OutputError, exit_on_user_error

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


Shepherd._check_orphans = check_orphans
Shepherd.__init__ = naming_unwritable_folders(Shepherd.__init__)
DecoratedMain.init_xp = naming_unwritable_folders(DecoratedMain.init_xp)
