"""The dora main of sepclean's experiments: ``dora grid sepclean.mixed23``, ``dora -P sepclean run``.

One XP trains one architecture under one cleaning condition and evaluates it (see
``sepclean.pipeline.experiment``); its metrics go to the XP's history, which the grids' explorer
tables. The stages are shared artifacts in ``store`` (default ``<dora.dir>/artifacts``), Demucs
trainings are XPs of the Demucs plugin's own dora main in ``<dora.dir>/demucs``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dora
import torch
from omegaconf import DictConfig, OmegaConf

import sepclean.dora_compat  # noqa: F401  (dora's orphan check without a terminal; its folders named when unwritable)
from sepclean.errors import exit_on_user_error
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.pipeline.checks import check
from sepclean.pipeline.experiment import Experiment
from sepclean.cpus import use_allotted_cpus
from sepclean.progress import bars

logger = logging.getLogger(__name__)


def store_root(cfg) -> Path:
    """Where an XP's artifact store is: its ``store`` when the config names one, else
    ``<dora.dir>/artifacts`` (the ``dora.dir`` of this process: a moved store is found where it is now)."""
    return Path(dora.to_absolute_path(cfg["store"])) if cfg.get("store") else Path(main.dora.dir) / "artifacts"


def experiment(cfg: DictConfig, progress: bool | None = None) -> Experiment:
    """The XP's experiment; progress bars (``progress`` None) only when stderr is a terminal."""
    root = main.dora.dir
    store = store_root(cfg)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Experiment(OmegaConf.to_container(cfg, resolve=True), ArtifactStore(store), root / "demucs", device,
                      bars() if progress is None else progress)


@dora.hydra_main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    xp = dora.get_xp()
    with exit_on_user_error(f"sepclean XP {xp.sig}"):
        logging.getLogger("sepclean").setLevel(logging.INFO)
        use_allotted_cpus()
        if xp.link.history:
            logger.info("XP %s is done: %s", xp.sig, xp.link.history[-1])
            return
        check(OmegaConf.to_container(cfg, resolve=True))  # before the data stage
        logger.info("XP %s: %s, %s, ratio %s, %s, action %s, seed %s", xp.sig, cfg.arch, cfg.method, cfg.ratio,
                    cfg.mode, cfg.get("action") or "drop", cfg.seed)
        metrics = experiment(cfg).run()
        xp.link.push_metrics(metrics)
        logger.info("XP %s done: %s", xp.sig, metrics)
