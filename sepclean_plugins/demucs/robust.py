"""Robust training inside demucs' own solver: its per-source loss, made robust where it is computed.

``demucs.solver.Solver._run_one_epoch`` computes the reconstruction loss as
``F.l1_loss(estimate, sources, reduction='none')`` (or ``F.mse_loss``), shape ``(batch, sources,
channels, time)``, then averages it over channels, time and batch per source. The one change robust
training needs is there: the element-wise loss multiplied by ``RobustLoss.weights`` before those
means. :func:`robust_losses` replaces the solver module's ``F`` (its name for
``torch.nn.functional``) by :class:`RobustFunctional` while the solver trains; nothing else of demucs
changes. Validation runs under ``torch.no_grad()`` and stays plain, so early stopping and the best
epoch watch the ordinary loss.

The same hook weights the loss per (example, source) for a clean manifest's ``weight`` action
(:class:`PairWeights`): the weights travel from the dataset (``data.WeightedSet``) through the
loader and through demucs' own augmentation, whose ``Remix`` moves sources between the examples
of a batch (the weights move with them), to the element-wise loss, which is multiplied by them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable
from unittest import mock

import demucs.augment
import demucs.solver
import torch
import torch.nn.functional

from sepclean.robust import RobustLoss


class RobustFunctional:
    """``torch.nn.functional`` with ``l1_loss`` and ``mse_loss`` robust (and weighted per pair) while
    gradients are on."""

    def __init__(self, robust: RobustLoss | None, epoch: Callable[[], int], bin_size: int,
                 pair_weights: "PairWeights | None" = None):
        self.robust, self.epoch, self.bin_size, self.pair_weights = robust, epoch, bin_size, pair_weights

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def l1_loss(self, estimate, target, *args, **kwargs):
        return self._robust(torch.nn.functional.l1_loss(estimate, target, *args, **kwargs), kwargs, target.abs())

    def mse_loss(self, estimate, target, *args, **kwargs):
        return self._robust(torch.nn.functional.mse_loss(estimate, target, *args, **kwargs), kwargs, target.pow(2))

    def _robust(self, loss: torch.Tensor, kwargs: dict, energy: torch.Tensor) -> torch.Tensor:
        """``energy``: the target's, in the loss's units (``robust.relative`` ranks against it)."""
        if kwargs.get("reduction") != "none" or not torch.is_grad_enabled():
            return loss
        if self.robust is not None:
            loss = loss * self.robust.weights(loss, self.epoch(), self.bin_size, energy=energy)
        if self.pair_weights is not None:
            weights = self.pair_weights.take()
            loss = loss * weights.to(loss).reshape(*weights.shape, *[1] * (loss.dim() - 2))
        return loss


class PairWeights:
    """Carries each training batch's ``(batch, sources)`` loss weights from the loader
    (:meth:`loader`), through the solver's augmentation (:meth:`augment`), to the loss, which takes
    them once (:meth:`take`)."""

    def __init__(self):
        self.batch: torch.Tensor | None = None
        self.augmented: torch.Tensor | None = None

    def loader(self, loader) -> "_WeightedLoader":
        return _WeightedLoader(loader, self)

    def augment(self, augment: torch.nn.Module) -> "_WeightedAugment":
        return _WeightedAugment(augment, self)

    def take(self) -> torch.Tensor:
        if self.augmented is None:
            raise RuntimeError("a weighted training loss without its batch's weights")
        weights, self.augmented = self.augmented, None
        return weights


class _WeightedLoader:
    """Yields the sources of ``(sources, weights)`` batches, as the solver expects, keeping the weights."""

    def __init__(self, loader, carrier: PairWeights):
        self.inner, self.carrier = loader, carrier

    def __len__(self):
        return len(self.inner)

    def __getattr__(self, name):  # dataset, sampler, batch_size: the inner loader's
        return getattr(self.inner, name)

    def __iter__(self):
        for sources, weights in self.inner:
            self.carrier.batch = weights
            yield sources


class _WeightedAugment(torch.nn.Module):
    """demucs' augmentation (a ``Sequential``), each module as it is, except that ``Remix`` moves
    the weights with the sources: it runs on the sources with the weights as one more channel, so the
    same random permutation (its draw does not depend on the channels) moves both."""

    def __init__(self, augment: torch.nn.Module, carrier: PairWeights):
        super().__init__()
        self.inner, self.carrier = augment, carrier

    def forward(self, sources: torch.Tensor) -> torch.Tensor:
        weights = self.carrier.batch.to(sources)
        modules = list(self.inner) if isinstance(self.inner, torch.nn.Sequential) else [self.inner]
        for module in modules:
            if isinstance(module, demucs.augment.Remix):
                batch, count, _, time = sources.shape
                joint = module(torch.cat([sources, weights[:, :, None, None].expand(batch, count, 1, time)], dim=2))
                sources, weights = joint[:, :, :-1], joint[:, :, -1, 0]
            else:
                sources = module(sources)
        self.carrier.augmented = weights
        return sources


@contextmanager
def robust_losses(solver, robust: RobustLoss | None, bin_size: int, pair_weights: PairWeights | None = None):
    """While in the block, ``solver`` trains robustly and/or with per-pair weights (no-op for
    neither). The epoch is the number of epochs its history holds: a resumed XP continues the
    schedule where it was."""
    if robust is None and pair_weights is None:
        yield
        return
    functional = RobustFunctional(robust, lambda: len(solver.history), bin_size, pair_weights)
    with mock.patch.object(demucs.solver, "F", functional):
        yield
