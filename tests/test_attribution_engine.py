"""The attribution engine's mathematics, on a tiny model where every quantity can be checked by hand."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from sepclean.attribution.engine import (
    AttributionError,
    Unit,
    Unlearned,
    calibrate_step,
    delta_losses,
    diagonal_fisher,
    gradient,
    linear_delta_losses,
    losses,
    preconditioner,
)

TARGETS = 2


class TinySeparator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, TARGETS * 3))
        self.unused = torch.nn.Parameter(torch.ones(3))  # never in any loss: F = 0 there

    def forward(self, x):
        return self.net(x).view(-1, TARGETS, 3)


def mse_per_target(model, batch):
    x, y = batch
    return (model(x) - y).square().mean(-1)  # (batch, targets)


def make_tracks(count, seed, batches=2, size=3):
    g = torch.Generator().manual_seed(seed)
    return [[(torch.randn(size, 6, generator=g), torch.randn(size, TARGETS, 3, generator=g)) for _ in range(batches)]
            for _ in range(count)]


@pytest.fixture
def unit():
    torch.manual_seed(0)
    return Unit.of(TinySeparator(), mse_per_target)


def test_fisher_is_mean_of_squared_per_track_gradients(unit):
    tracks = make_tracks(5, seed=1)
    fisher = diagonal_fisher(unit, tracks)
    expected = [torch.zeros_like(p) for p in unit.tensors]
    for track in tracks:  # the plain loop: backward on each track's mean loss
        unit.model.zero_grad()
        x = torch.cat([b[0] for b in track])
        y = torch.cat([b[1] for b in track])
        mse_per_target(unit.model, (x, y)).mean().backward()
        for e, p in zip(expected, unit.tensors):
            e += (p.grad if p.grad is not None else torch.zeros_like(p)).square()
    for f, e in zip(fisher, expected):
        torch.testing.assert_close(f, e / len(tracks))
    names = [n for n, _ in unit.parameters]
    assert fisher[names.index("unused")].abs().sum() == 0


def test_one_step_is_the_formula(unit):
    tracks, (reference,) = make_tracks(4, seed=1), make_tracks(1, seed=2)
    fisher = diagonal_fisher(unit, tracks)
    damping, step = 0.1, 1e-3
    inverse = preconditioner(fisher, damping)
    mean = torch.cat([f.flatten() for f in fisher]).mean()
    before = [p.detach().clone() for p in unit.tensors]
    g = gradient(unit, reference)
    with Unlearned(unit, reference, inverse, step):
        for p, b, gi, f in zip(unit.tensors, before, g, fisher):
            torch.testing.assert_close(p.detach(), b + step * gi / (f + damping * mean))
    for p, b in zip(unit.tensors, before):  # restored
        assert torch.equal(p.detach(), b)


def test_zero_fisher_parameters_do_not_move(unit):
    fisher = diagonal_fisher(unit, make_tracks(3, seed=1))
    inverse = preconditioner(fisher, damping=0.0)
    unused = [n for n, _ in unit.parameters].index("unused")
    assert torch.all(inverse[unused] == 0) and all(torch.isfinite(i).all() for i in inverse)


def test_delta_loss_shapes_and_signs(unit):
    tracks = make_tracks(6, seed=1)
    inverse = preconditioner(diagonal_fisher(unit, tracks), 1e-3)
    baseline = losses(unit, tracks)
    assert baseline.shape == (6, TARGETS)
    # Unlearning a training track raises its own loss (gradient ascent), in first order by
    # step · gᵀ F⁻¹ g > 0.
    delta = delta_losses(unit, tracks, baseline, tracks[2], inverse, step=1e-4)
    assert delta.shape == (6, TARGETS)
    assert delta[2].mean() > 0


def test_linear_agrees_with_exact_to_first_order(unit):
    tracks, references = make_tracks(8, seed=1), make_tracks(3, seed=2)
    inverse = preconditioner(diagonal_fisher(unit, tracks), 1e-2)
    step, _ = calibrate_step(unit, references, inverse, strength=0.002)
    baseline = losses(unit, tracks)
    exact = torch.stack([delta_losses(unit, tracks, baseline, r, inverse, step) for r in references], dim=1)
    linear = linear_delta_losses(unit, tracks, references, inverse, step, TARGETS)
    assert linear.shape == exact.shape == (8, 3, TARGETS)
    assert spearmanr(exact.flatten(), linear.flatten()).statistic > 0.99
    torch.testing.assert_close(linear, exact, rtol=0.1, atol=0.05 * exact.abs().max().item())


def test_strength_calibration_hits_the_requested_rise(unit):
    tracks, references = make_tracks(6, seed=1), make_tracks(3, seed=2)
    inverse = preconditioner(diagonal_fisher(unit, tracks), 1e-3)
    step, rise = calibrate_step(unit, references, inverse, strength=0.2, steps=2)
    assert step > 0 and rise == pytest.approx(0.2, rel=0.06)


def test_exploding_step_names_the_reference(unit):
    tracks = make_tracks(4, seed=1)
    inverse = preconditioner(diagonal_fisher(unit, tracks), 0.0)
    baseline = losses(unit, tracks)
    with pytest.raises(AttributionError, match="unlearning ref_0007 (exploded|made training losses non-finite)"):
        delta_losses(unit, tracks, baseline, tracks[0], inverse, step=1e6, steps=3, name="ref_0007")


def test_non_finite_gradient_is_an_error(unit):
    (track,) = make_tracks(1, seed=3)
    poisoned = [(track[0][0] * float("nan"), track[0][1])]
    with pytest.raises(AttributionError, match="non-finite gradient for ref_0001"):
        gradient(unit, poisoned, name="ref_0001")
