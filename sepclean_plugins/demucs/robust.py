"""Robust training inside demucs' own solver: its per-source loss, made robust where it is computed.

``demucs.solver.Solver._run_one_epoch`` computes the reconstruction loss as
``F.l1_loss(estimate, sources, reduction='none')`` (or ``F.mse_loss``), shape ``(batch, sources,
channels, time)``, then averages it over channels, time and batch per source. The one change robust
training needs is there: the element-wise loss multiplied by ``RobustLoss.weights`` before those
means. :func:`robust_losses` replaces the solver module's ``F`` (its name for
``torch.nn.functional``) by :class:`RobustFunctional` while the solver trains; nothing else of demucs
changes. Validation runs under ``torch.no_grad()`` and stays plain, so early stopping and the best
epoch watch the ordinary loss.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable
from unittest import mock

import demucs.solver
import torch
import torch.nn.functional

from sepclean.robust import RobustLoss


class RobustFunctional:
    """``torch.nn.functional`` with ``l1_loss`` and ``mse_loss`` robust while gradients are on."""

    def __init__(self, robust: RobustLoss, epoch: Callable[[], int], bin_size: int):
        self.robust, self.epoch, self.bin_size = robust, epoch, bin_size

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def l1_loss(self, estimate, target, *args, **kwargs):
        return self._robust(torch.nn.functional.l1_loss(estimate, target, *args, **kwargs), kwargs)

    def mse_loss(self, estimate, target, *args, **kwargs):
        return self._robust(torch.nn.functional.mse_loss(estimate, target, *args, **kwargs), kwargs)

    def _robust(self, loss: torch.Tensor, kwargs: dict) -> torch.Tensor:
        if kwargs.get("reduction") != "none" or not torch.is_grad_enabled():
            return loss
        return loss * self.robust.weights(loss, self.epoch(), self.bin_size)


@contextmanager
def robust_losses(solver, robust: RobustLoss | None, bin_size: int):
    """While in the block, ``solver`` trains robustly (no-op for None). The epoch is the number of
    epochs its history holds: a resumed XP continues the schedule where it was."""
    if robust is None:
        yield
        return
    functional = RobustFunctional(robust, lambda: len(solver.history), bin_size)
    with mock.patch.object(demucs.solver, "F", functional):
        yield
