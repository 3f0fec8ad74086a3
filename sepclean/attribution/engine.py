"""Unlearning-based attribution (the paper's section 1), for any model and loss.

Everything here sees one trainable unit: a ``torch.nn.Module``, the parameters being attributed,
and ``loss(model, batch) -> (batch, targets)``, the toolkit's own training loss per example and
target. A *track* is a list of batches (its deterministic excerpts); its loss is the mean over its
examples, one value per target.

With F the diagonal Fisher over the N training tracks, λ the damping (relative to the mean of F) and
α the step size, unlearning reference y_j moves the parameters by

    θ'_j = θ + (α / N) (F + λ·mean(F))⁻¹ ∇L(y_j, θ)

(repeated ``steps`` times, each at the current θ'), and a training track's score for that reference
is ΔL_ij = L(x_i, θ'_j) − L(x_i, θ). Parameters with F = 0 (never moved by any training loss) are
not moved, where the formula would divide zero by zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from sepclean.errors import SepcleanError

LossFn = Callable[[torch.nn.Module, object], torch.Tensor]
Track = Sequence[object]  # the batches of one track


class AttributionError(SepcleanError, RuntimeError):
    """A non-finite gradient, an unlearning step that explodes the loss, or settings that cannot work."""


@dataclass
class Unit:
    """One model and what attribution needs of it."""

    model: torch.nn.Module
    loss: LossFn
    parameters: list[tuple[str, torch.nn.Parameter]]

    @classmethod
    def of(cls, model: torch.nn.Module, loss: LossFn, select: Callable[[str], bool] | None = None) -> "Unit":
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and (select is None or select(n))]
        if not params:
            raise AttributionError("no trainable parameter selected for attribution (see --parameters)")
        return cls(model, loss, params)

    @property
    def tensors(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.parameters]


def track_loss(unit: Unit, track: Track) -> torch.Tensor:
    """Mean loss over a track's examples, per target: shape ``(targets,)``."""
    total, count = None, 0
    for batch in track:
        values = unit.loss(unit.model, batch)
        total = values.sum(0) if total is None else total + values.sum(0)
        count += values.shape[0]
    return total / count


@torch.no_grad()
def losses(unit: Unit, tracks: Sequence[Track]) -> torch.Tensor:
    """Loss of every track: ``(tracks, targets)``."""
    return torch.stack([track_loss(unit, t) for t in tracks])


def gradient(unit: Unit, track: Track, target: int | None = None, name: str = "track") -> list[torch.Tensor]:
    """Gradient of a track's loss (the mean over targets, or one target's) w.r.t. the unit's parameters."""
    per_target = track_loss(unit, track)
    objective = per_target.mean() if target is None else per_target[target]
    grads = torch.autograd.grad(objective, unit.tensors, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, unit.tensors)]
    if not all(torch.isfinite(g).all() for g in grads):
        raise AttributionError(f"non-finite gradient for {name}")
    return grads


def self_influence(unit: Unit, track: Track, inverse: list[torch.Tensor], target: int | None = None,
                   name: str = "track") -> float:
    """s = gᵀ(F + λ)⁻¹g of a track's gradient (one target's, or the target mean): its influence on
    itself in the unlearning metric, the norm RelatIF-style normalisations divide by."""
    return float(sum((g * inv * g).sum().item() for g, inv in zip(gradient(unit, track, target, name), inverse)))


def squared_gradients(unit: Unit, tracks: Sequence[Track], progress=None,
                      names: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Σ over tracks of the squared per-track gradient of the training loss: the Fisher's sum over
    these tracks. Accumulated in float64 so that partial sums over any split of the training tracks
    add up to the sum over all of them to well below float32 precision (sharded runs equal one run)."""
    total = [torch.zeros_like(p, dtype=torch.float64) for p in unit.tensors]
    for i, track in enumerate(tracks):
        name = names[i] if names is not None else f"training track {i}"
        for s, g in zip(total, gradient(unit, track, name=name)):
            s.add_(g.to(torch.float64).square())
        if progress is not None:
            progress.update(1)
    return total


def diagonal_fisher(unit: Unit, tracks: Sequence[Track], progress=None) -> list[torch.Tensor]:
    """F_ii = mean over training tracks of the squared per-track gradient of the training loss."""
    return [(s / len(tracks)).to(p.dtype) for s, p in zip(squared_gradients(unit, tracks, progress), unit.tensors)]


def preconditioner(fisher: list[torch.Tensor], damping: float) -> list[torch.Tensor]:
    """(F + λ·mean F)⁻¹, with 0 where the damped Fisher is 0."""
    mean = torch.cat([f.flatten() for f in fisher]).mean()
    inverse = []
    for f in fisher:
        damped = f + damping * mean
        inverse.append(torch.where(damped > 0, 1.0 / damped.clamp_min(torch.finfo(f.dtype).tiny), 0.0))
    return inverse


class Unlearned:
    """Context manager: the unit's parameters moved by unlearning one reference, restored on exit."""

    def __init__(self, unit: Unit, reference: Track, inverse: list[torch.Tensor], step: float, steps: int = 1,
                 name: str = "reference", target: int | None = None):
        self.unit, self.reference, self.inverse = unit, reference, inverse
        self.step, self.steps, self.name, self.target = step, steps, name, target

    def __enter__(self) -> Unit:
        self.saved = [p.detach().clone() for p in self.unit.tensors]
        for _ in range(self.steps):
            grads = gradient(self.unit, self.reference, self.target, name=self.name)
            with torch.no_grad():
                for p, g, inv in zip(self.unit.tensors, grads, self.inverse):
                    p.add_(self.step * inv * g)
        return self.unit

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for p, saved in zip(self.unit.tensors, self.saved):
                p.copy_(saved)


def delta_losses(unit: Unit, tracks: Sequence[Track], baseline: torch.Tensor, reference: Track,
                 inverse: list[torch.Tensor], step: float, steps: int = 1, name: str = "reference",
                 max_rise: float = 1e3, target: int | None = None) -> torch.Tensor:
    """Exact mode: ΔL_i for every training track after unlearning one reference: ``(tracks, targets)``.
    ``target``: unlearn the reference's loss of that target only (the other targets' ΔL still computed)."""
    with Unlearned(unit, reference, inverse, step, steps, name, target):
        after = losses(unit, tracks)
    delta = after - baseline
    if not torch.isfinite(delta).all():
        raise AttributionError(f"unlearning {name} made training losses non-finite; lower the strength or steps")
    if (after > (1 + max_rise) * baseline.clamp_min(1e-12)).any():
        raise AttributionError(
            f"unlearning {name} exploded the training loss (more than {max_rise:g}x its baseline); "
            "lower the strength, the number of steps, or raise the damping"
        )
    return delta


def own_rise(unit: Unit, reference: Track, inverse: list[torch.Tensor], step: float, steps: int = 1,
             name: str = "reference") -> float:
    """Relative rise of a reference's own (target-mean) loss when it is unlearned with this step."""
    with torch.no_grad():
        before = track_loss(unit, reference).mean().item()
    with Unlearned(unit, reference, inverse, step, steps, name):
        with torch.no_grad():
            after = track_loss(unit, reference).mean().item()
    return (after - before) / max(before, 1e-12)


def calibrate_step(unit: Unit, references: Sequence[Track], inverse: list[torch.Tensor], strength: float,
                   steps: int = 1, iterations: int = 30, tolerance: float = 0.05,
                   names: Sequence[str] | None = None) -> tuple[float, float]:
    """The step α/N whose median own-loss rise over ``references`` is ``strength``: ``(step, rise)``.

    Bisection in log space. The raw α depends on the scale of F and the model, so users set the
    strength instead; both are recorded.
    """
    if strength <= 0:
        raise AttributionError(f"unlearning strength must be positive, got {strength}")

    def rise(step: float) -> float:
        names_ = names or [f"reference {j}" for j in range(len(references))]
        values = sorted(own_rise(unit, r, inverse, step, steps, n) for r, n in zip(references, names_))
        return values[len(values) // 2]

    # The first-order rise of a preconditioned step is step · gᵀF⁻¹g / L; start from there.
    grads = gradient(unit, references[0])
    curvature = sum((g * inv * g).sum().item() for g, inv in zip(grads, inverse))
    with torch.no_grad():
        own = track_loss(unit, references[0]).mean().item()
    step = strength * own / curvature if curvature > 0 and math.isfinite(curvature) else 1.0
    low, high = 0.0, None
    achieved = rise(step)
    for _ in range(iterations):
        if not math.isfinite(achieved) or achieved > strength * (1 + tolerance):
            high = step
        elif achieved < strength * (1 - tolerance):
            low = step
        else:
            return step, achieved
        step = math.sqrt(low * high) if (high is not None and low > 0) else (step * 4 if high is None else step / 4)
        achieved = rise(step)
    return step, achieved


def reference_directions(unit: Unit, references: Sequence[Track], inverse: list[torch.Tensor], targets: int,
                         per_stem: bool = False, progress=None, names: Sequence[str] | None = None) -> torch.Tensor:
    """Linear mode's reference side: (F + λ)⁻¹ g_j, flattened: ``(1 or targets, references, parameters)``.
    ``per_stem``: one row per target t, from g_jt, the reference's gradient of target t only."""
    flat_inverse = torch.cat([inv.flatten() for inv in inverse])
    rows = []
    for t in range(targets if per_stem else 1):
        directions = []
        for j, ref in enumerate(references):
            name = names[j] if names is not None else f"reference {j}"
            g = gradient(unit, ref, t if per_stem else None, name=name)
            directions.append(flat_inverse * torch.cat([x.flatten() for x in g]))
            if progress is not None:
                progress.update(1)
        rows.append(torch.stack(directions))
    return torch.stack(rows)


def linear_block(unit: Unit, tracks: Sequence[Track], directions: torch.Tensor, step: float, targets: int,
                 progress=None, names: Sequence[str] | None = None) -> torch.Tensor:
    """Linear mode's training side: ΔL_ijt ≈ step · g_itᵀ d_j for these tracks, with ``directions`` d
    from ``reference_directions``: ``(tracks, references, targets)``. Each track's row depends on that
    track alone, so any split of the training tracks gives the same rows."""
    out = torch.empty(len(tracks), directions.shape[1], targets)
    for i, track in enumerate(tracks):
        name = names[i] if names is not None else f"training track {i}"
        for t in range(targets):
            g = torch.cat([x.flatten() for x in gradient(unit, track, target=t, name=name)])
            out[i, :, t] = step * (directions[t if directions.shape[0] > 1 else 0] @ g)
        if progress is not None:
            progress.update(1)
    return out


def linear_delta_losses(unit: Unit, tracks: Sequence[Track], references: Sequence[Track],
                        inverse: list[torch.Tensor], step: float, targets: int, progress=None,
                        per_stem: bool = False) -> torch.Tensor:
    """Linear mode: ΔL_ijt ≈ step · g_itᵀ (F + λ)⁻¹ g_j, one gradient per track and target:
    ``(tracks, references, targets)``. ``per_stem``: g_jt, the reference's gradient of target t only."""
    directions = reference_directions(unit, references, inverse, targets, per_stem, progress)
    return linear_block(unit, tracks, directions, step, targets, progress)
