"""The one change sepclean makes to dora (0.1.13), installed by importing this module.

``dora.shep.Shepherd._check_orphans`` runs whenever a grid is launched or listed. When it finds a
token left in ``<dora.dir>/orphans`` (dora was killed between submitting a job and saving its id),
it asks ``squeue`` for the jobs of ``os.getlogin()``. ``getlogin`` reads the login record of the
controlling terminal, and a process without one (CI, cron, nohup, a SLURM job, an agent's shell)
gets ``OSError: [Errno 6] No such device or address``, so every later dora command fails until
someone deletes the token by hand. The replacement asks for the user by ``getpass.getuser()``
(``$LOGNAME``, ``$USER``, then the password database), and does the rest as dora does: cancel
the orphaned jobs, then remove the token.
"""

from __future__ import annotations

import getpass
import logging
import subprocess

from dora.shep import Shepherd

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


Shepherd._check_orphans = check_orphans
