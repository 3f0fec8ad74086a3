"""Robust training: the highest losses of each batch get no gradient.

Noisy labels are what a separation model cannot fit: a guitar filed as vocals, a leak the mixture
does not explain. Early in training, and for as long as the clean majority dominates, they sit in
the upper tail of the loss. The teams that won the noisy tracks of MDX23 trained through them
without knowing which they were:

``truncate``
    Loss truncation (CCOM, 1st on the label-noise track; after Kang & Hashimoto, ACL 2020): in each
    batch and for each source, the ``floor(truncate x batch)`` examples with the highest loss get no
    gradient. A mislabelled stem is dropped as a whole.
``mask``
    Loss masking (KUIELab, 1st on the bleeding track): in each batch and for each source, the
    ``floor(mask x cells)`` (example, time bin) cells with the highest loss get no gradient. A leak
    or a misplaced part that only sounds now and then is dropped where it sounds.

``relative``
    Rank by the loss relative to the target's own energy in the same elements (an error-to-signal
    ratio: the inverse of an SDR) instead of the loss itself. A squared or absolute error grows with
    the target's loudness, so plain ranking drops the loudest examples and frames, not the wrong
    ones (measured: truncation and masking lost 0.6 and 3 dB on Open-Unmix). The energy is floored
    at ``RELATIVE_FLOOR`` times the batch's mean energy of that source, so a silent target ranks by
    its loss against the batch's usual level rather than as infinitely wrong.

Both need no scoring and compose with any clean manifest. The loss of a batch is the mean over the
cells kept (per source), so its scale does not change with the fraction dropped. Validation is
never robust: early stopping watches the plain loss.

Toolkits hand their element-wise loss to :meth:`RobustLoss.weights` in one layout,
``(batch, sources, ..., time)``, and multiply: ``(loss * weights).mean()`` over every dimension but
the sources is the mean over the kept elements.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from sepclean.errors import SepcleanError


RELATIVE_FLOOR = 0.01
"""``relative``: the target energy below which (as a fraction of the batch's mean, -20 dB) an
element's loss is ranked against that floor."""


class RobustLossError(SepcleanError, ValueError):
    """A robust-training setting that cannot work."""


@dataclass(frozen=True)
class RobustLoss:
    truncate: float = 0.0
    """Fraction of the examples of each batch (per source) with the highest loss that get no gradient."""
    mask: float = 0.0
    """Fraction of the (example, time bin) cells of each batch (per source) with the highest loss that
    get no gradient."""
    warmup: int = 0
    """Epochs of plain training before truncation and masking start (0: from the first update, as
    CCOM trained)."""
    relative: bool = False
    """Rank by the loss relative to the target's energy in the same elements, not by the loss."""

    def __post_init__(self):
        for name in ("truncate", "mask"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or not 0 <= value < 1:
                raise RobustLossError(f"robust.{name} must be a fraction in [0, 1); got {value!r}")
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise RobustLossError(f"robust.warmup must be a whole number of epochs >= 0; got {self.warmup!r}")
        if not isinstance(self.relative, bool):
            raise RobustLossError(f"robust.relative must be true or false; got {self.relative!r}")

    @classmethod
    def of(cls, settings: dict | None) -> "RobustLoss | None":
        """From a config's ``robust:`` block; None when it asks for nothing (plain training)."""
        settings = dict(settings or {})
        unknown = sorted(set(settings) - {"truncate", "mask", "warmup", "relative"})
        if unknown:
            raise RobustLossError(f"robust: unknown setting(s) {', '.join(unknown)} "
                                  "(known: truncate, mask, warmup, relative)")
        robust = cls(**{k: v for k, v in settings.items() if v is not None})
        return robust if robust.active else None

    @property
    def active(self) -> bool:
        return bool(self.truncate or self.mask)

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        """Short name of the setting, e.g. ``truncate 0.25, mask 0.1``."""
        parts = [f"{name} {getattr(self, name):g}" for name in ("truncate", "mask") if getattr(self, name)]
        if self.relative:
            parts.append("relative")
        if self.warmup:
            parts.append(f"after {self.warmup} epochs")
        return ", ".join(parts)

    def check_batch(self, batch_size: int) -> None:
        """Truncation of a fraction smaller than one example of a batch would silently do nothing."""
        if self.truncate and math.floor(self.truncate * batch_size) < 1:
            raise RobustLossError(
                f"robust.truncate {self.truncate:g} drops no example of a batch of {batch_size}: "
                f"use at least {1 / batch_size:g}, or a larger batch")

    def weights(self, loss: torch.Tensor, epoch: int, bin_size: int = 1,
                energy: torch.Tensor | None = None) -> torch.Tensor:
        """Weights for an element-wise ``loss`` of layout ``(batch, sources, ..., time)``: 0 on the
        elements that get no gradient, and on the others the factor that makes the mean over every
        dimension but the sources the mean over the elements kept. All ones during ``warmup``
        (``epoch`` counts from 0). ``bin_size``: time steps per bin of ``mask`` (the last bin may be
        shorter). ``energy``: the target's energy in the same layout (its square for a squared
        error, its magnitude for an absolute one), which ``relative`` ranks against."""
        if loss.dim() < 3:
            raise RobustLossError(f"robust losses need (batch, sources, ..., time) losses; got shape {tuple(loss.shape)}")
        if self.relative and (energy is None or energy.shape != loss.shape):
            raise RobustLossError(f"robust.relative needs the target's energy in the loss's layout {tuple(loss.shape)}; "
                                  f"got {None if energy is None else tuple(energy.shape)}")
        loss = loss.detach()
        if self.relative:
            energy = energy.detach()
            floor = RELATIVE_FLOOR * energy.transpose(0, 1).flatten(1).mean(1)
            floor = floor.clamp_min(torch.finfo(loss.dtype).tiny).reshape(1, -1, *[1] * (loss.dim() - 2))
        keep = torch.ones_like(loss, dtype=torch.bool)
        if epoch >= self.warmup:
            batch, sources, time = loss.shape[0], loss.shape[1], loss.shape[-1]
            if self.truncate:
                per_example = loss.flatten(2).mean(-1)  # (batch, sources)
                if self.relative:
                    per_example = per_example / torch.maximum(energy.flatten(2).mean(-1), floor.flatten(1))
                dropped = _highest(per_example.T, math.floor(self.truncate * batch)).T
                keep &= ~dropped.reshape(batch, sources, *[1] * (loss.dim() - 2))
            if self.mask:
                bins = math.ceil(time / bin_size)
                middle = tuple(range(2, loss.dim() - 1))  # channels, frequencies, ...
                cells = _bin_means(loss.mean(dim=middle) if middle else loss, bin_size)  # (batch, sources, bins)
                if self.relative:
                    power = _bin_means(energy.mean(dim=middle) if middle else energy, bin_size)
                    cells = cells / torch.maximum(power, floor.reshape(1, -1, 1))
                flat = cells.transpose(0, 1).reshape(sources, batch * bins)
                dropped = _highest(flat, math.floor(self.mask * batch * bins))
                dropped = dropped.reshape(sources, batch, bins).transpose(0, 1)
                dropped = dropped.repeat_interleave(bin_size, dim=-1)[..., :time]
                keep &= ~dropped.reshape(batch, sources, *[1] * (loss.dim() - 3), time)
        keep = keep.to(loss.dtype)
        per_source = keep.transpose(0, 1).flatten(1)
        scale = per_source.shape[1] / per_source.sum(1)
        return keep * scale.reshape(1, -1, *[1] * (loss.dim() - 2))


def _highest(values: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` highest values of each row of a 2-d tensor."""
    mask = torch.zeros_like(values, dtype=torch.bool)
    if count > 0:
        mask.scatter_(1, values.topk(count, dim=1).indices, True)
    return mask


def _bin_means(loss: torch.Tensor, bin_size: int) -> torch.Tensor:
    """Means over consecutive bins of ``bin_size`` steps of the last dimension (the last bin may be
    shorter)."""
    time = loss.shape[-1]
    bins = math.ceil(time / bin_size)
    padded = torch.nn.functional.pad(loss, (0, bins * bin_size - time))
    counts = torch.full((bins,), float(bin_size), dtype=loss.dtype, device=loss.device)
    counts[-1] = time - (bins - 1) * bin_size
    return padded.reshape(*loss.shape[:-1], bins, bin_size).sum(-1) / counts
