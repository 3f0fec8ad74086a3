"""Robust training: loss truncation and loss masking give no gradient to exactly the highest losses,
in the core, in Open-Unmix's training epoch and inside demucs' own solver."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from sepclean.robust import RobustLoss, RobustLossError


def test_truncation_gives_no_gradient_to_the_highest_examples_of_each_source():
    loss = torch.tensor([[[1.0, 1.0], [9.0, 9.0]],
                         [[8.0, 8.0], [2.0, 2.0]],
                         [[3.0, 3.0], [3.0, 3.0]],
                         [[2.0, 2.0], [1.0, 1.0]]], requires_grad=True)  # (batch 4, sources 2, time 2)
    weights = RobustLoss(truncate=0.25).weights(loss, epoch=0)
    per_source = (loss * weights).mean(dim=(0, 2))
    per_source.sum().backward()

    assert per_source.tolist() == pytest.approx([(1 + 3 + 2) / 3, (2 + 3 + 1) / 3])  # the mean over the kept
    truncated = torch.zeros(4, 2, dtype=torch.bool)
    truncated[1, 0] = truncated[0, 1] = True  # the highest loss of each source
    assert (loss.grad[truncated] == 0).all()
    assert loss.grad[~truncated].flatten().tolist() == pytest.approx([1 / 6] * 12)  # 1 / (3 examples x 2 steps)


def test_masking_gives_no_gradient_to_the_highest_time_bins():
    # One source; 2 examples x 6 steps in bins of 2 steps: 6 cells, a third of them masked. The last
    # bin of a length that bins do not divide is shorter.
    loss = torch.tensor([[[1.0, 1.0, 5.0, 7.0, 1.0, 1.0]],
                         [[2.0, 2.0, 2.0, 2.0, 9.0, 9.0]]], requires_grad=True)
    weights = RobustLoss(mask=1 / 3).weights(loss, epoch=0, bin_size=2)
    (loss * weights).mean().backward()
    expected_kept = torch.tensor([[[1, 1, 0, 0, 1, 1]], [[1, 1, 1, 1, 0, 0]]], dtype=torch.bool)
    assert torch.equal(weights > 0, expected_kept)
    assert (loss.grad[~expected_kept] == 0).all() and (loss.grad[expected_kept] > 0).all()
    assert (loss * weights).mean().item() == pytest.approx(loss[expected_kept].mean().item())

    odd = RobustLoss(mask=0.34).weights(torch.tensor([[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0]]]), 0, bin_size=3)
    assert odd[0, 0].tolist()[:6] == pytest.approx([7 / 6] * 6) and odd[0, 0, 6] == 0  # bins of 3, 3, 1


def test_truncation_and_masking_over_the_middle_dimensions():
    # Open-Unmix's layout: (batch, 1 source, channels, bins, frames); cells average channels and bins.
    loss = torch.rand(4, 1, 2, 5, 8)
    loss[2] += 10  # a mislabelled example
    loss[0, :, :, :, 3] += 50  # one loud frame of another
    weights = RobustLoss(truncate=0.25, mask=1 / 32).weights(loss, epoch=0)
    assert (weights[2] == 0).all()
    assert (weights[0, ..., 3] == 0).all() and (weights[0, ..., 2] > 0).all()
    kept = weights > 0
    assert (loss * weights).mean().item() == pytest.approx(loss[kept].mean().item(), rel=1e-6)


def test_warmup_trains_plainly_first():
    robust = RobustLoss(truncate=0.5, warmup=2)
    loss = torch.arange(8.0).reshape(4, 1, 2)
    assert (robust.weights(loss, epoch=1) == 1).all()
    assert (robust.weights(loss, epoch=2) == 0).sum() == 4  # two examples of two steps


def test_relative_ranking_drops_the_worst_explained_not_the_loudest():
    # (batch 4, 1 source, time 2): example 0 is loud and fitted to -4 dB, example 2 quiet and not at
    # all (its loss equals its energy: a stem that is not in the mixture).
    energy = torch.tensor([10.0, 10.0, 1.0, 1.0]).reshape(4, 1, 1).expand(4, 1, 2).clone()
    loss = torch.tensor([4.0, 1.0, 1.0, 0.1]).reshape(4, 1, 1).expand(4, 1, 2).clone().requires_grad_()
    weights = RobustLoss(truncate=0.25, relative=True).weights(loss, 0, energy=energy)
    (loss * weights).mean().backward()
    assert (loss.grad[2] == 0).all() and (loss.grad[[0, 1, 3]] > 0).all()
    assert (RobustLoss(truncate=0.25).weights(loss, 0)[0] == 0).all()  # plain ranking drops the loud one
    # masking: the bin whose loss is its whole energy goes, not the loud bin
    cells = torch.tensor([[[9.0, 9.0, 1.0, 1.0, 0.5, 0.5]]])
    power = torch.tensor([[[90.0, 90.0, 1.0, 1.0, 5.0, 5.0]]])
    kept = RobustLoss(mask=0.34, relative=True).weights(cells, 0, bin_size=2, energy=power) > 0
    assert kept.tolist() == [[[True, True, False, False, True, True]]]
    # a silent target ranks against the floor (a hundredth of the batch's mean energy), not as infinitely wrong
    silent = torch.tensor([0.0, 10.0, 10.0, 10.0]).reshape(4, 1, 1).expand(4, 1, 2).clone()
    small = torch.tensor([0.001, 5.0, 1.0, 1.0]).reshape(4, 1, 1).expand(4, 1, 2).clone()
    assert (RobustLoss(truncate=0.25, relative=True).weights(small, 0, energy=silent)[1] == 0).all()
    with pytest.raises(RobustLossError, match="robust.relative needs the target's energy"):
        RobustLoss(truncate=0.25, relative=True).weights(loss, 0)


@pytest.mark.parametrize("settings", [{"truncate": 1.0}, {"truncate": -0.1}, {"mask": math.nan},
                                      {"mask": True}, {"warmup": -1}, {"warmup": 1.5}, {"trunc": 0.2},
                                      {"truncate": 0.2, "relative": "yes"}])
def test_impossible_settings_are_named(settings):
    with pytest.raises(RobustLossError, match="robust"):
        RobustLoss.of(settings)


def test_plain_settings_are_no_robust_training():
    assert RobustLoss.of(None) is None and RobustLoss.of({"truncate": 0.0, "mask": 0.0, "warmup": 3}) is None
    assert RobustLoss.of({"truncate": 0.25, "mask": None}).label() == "truncate 0.25"


def test_a_truncation_smaller_than_one_example_is_refused():
    with pytest.raises(RobustLossError, match="drops no example of a batch of 4"):
        RobustLoss(truncate=0.2).check_batch(4)
    RobustLoss(truncate=0.25).check_batch(4)


# --- Open-Unmix ------------------------------------------------------------------------------------

def test_open_unmix_epoch_truncates_the_mislabelled_example():
    from openunmix.model import OpenUnmix

    from sepclean_plugins.openunmix.spectrogram import StftConfig, magnitude_mse, make_encoder
    from sepclean_plugins.openunmix.train import run_epoch

    torch.manual_seed(0)
    stft = StftConfig(nfft=256, nhop=128, sample_rate=8000.0, nb_channels=2)
    encoder = make_encoder(stft)
    unmix = OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=8, max_bin=129)
    x = torch.rand(4, 2, 4096) - 0.5
    y = x * 0.5
    y[1] = torch.rand(2, 4096) * 2 - 1  # a stem that is not in the mixture: the highest loss
    with torch.no_grad():
        unmix.train()  # the epoch's batch normalisation (statistics of this batch) and LSTM dropout
        torch.manual_seed(1)
        losses = magnitude_mse(unmix, encoder, x, y)
    assert losses.argmax() == 1

    grads = []

    def keep_gradient(module, inputs, output):
        output.register_hook(grads.append)

    unmix.register_forward_hook(keep_gradient)
    optimizer = torch.optim.SGD(unmix.parameters(), lr=0.0)
    torch.manual_seed(1)  # the same dropout
    reported = run_epoch(unmix, encoder, [(x, y)], "cpu", optimizer, robust=RobustLoss(truncate=0.25))
    assert reported == pytest.approx(losses[[0, 2, 3]].mean().item(), rel=1e-5)
    assert (grads[0][1] == 0).all() and (grads[0][[0, 2, 3]] != 0).any(dim=(1, 2, 3)).all()

    torch.manual_seed(1)
    plain = run_epoch(unmix, encoder, [(x, y)], "cpu", optimizer)
    assert plain == pytest.approx(losses.mean().item(), rel=1e-5)

    # relative: the example truncated is the one whose loss is the largest share of its target's energy
    relative = losses / encoder(y).pow(2).flatten(1).mean(1)
    worst = int(relative.argmax())
    grads.clear()
    torch.manual_seed(1)
    reported = run_epoch(unmix, encoder, [(x, y)], "cpu", optimizer, robust=RobustLoss(truncate=0.25, relative=True))
    others = [i for i in range(4) if i != worst]
    assert reported == pytest.approx(losses[others].mean().item(), rel=1e-5)
    assert (grads[0][worst] == 0).all() and (grads[0][others] != 0).any(dim=(1, 2, 3)).all()


def test_open_unmix_settings_reach_the_training(tiny_data, tmp_path):
    from sepclean.toolkit import TrainSpec
    from sepclean_plugins.openunmix.adapter import training_config
    from sepclean_plugins.openunmix.train import robust_loss

    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"],
                     robust=RobustLoss(truncate=0.25, mask=0.1, warmup=2, relative=True))
    assert robust_loss(training_config(spec, "vocals", tmp_path)) == spec.robust
    plain = training_config(TrainSpec(train="a", valid="b"), "vocals", tmp_path)
    assert robust_loss(plain) is None and plain.loss_truncation is None  # older runs' args still match


# --- Demucs ----------------------------------------------------------------------------------------

def test_the_solver_computes_its_loss_where_the_hook_is():
    """Why ``demucs.solver.F`` is the patch point: the solver's per-source loss is one call to it with
    ``reduction='none'``, averaged afterwards."""
    import demucs.solver

    source = inspect.getsource(demucs.solver.Solver._run_one_epoch)
    assert "F.l1_loss(estimate, sources, reduction='none')" in source
    assert "F.mse_loss(estimate, sources, reduction='none')" in source
    assert demucs.solver.F is torch.nn.functional


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_demucs_solver_trains_on_the_kept_examples_only(tiny_data, tmp_path, kind, monkeypatch):
    from demucs.solver import Solver
    from dora import get_xp

    from sepclean_plugins.demucs import DemucsToolkit, train
    from sepclean_plugins.demucs.models import demucs_train
    from sepclean_plugins.demucs.robust import robust_losses
    from sepclean_plugins.demucs.toolkit import source_losses

    monkeypatch.setenv("SEPCLEAN_DEMUCS_DIR", str(tmp_path))
    monkeypatch.setattr(train.main.dora, "dir", tmp_path)
    xp = train.main.get_xp(["variant=tiny_hdemucs", f"optim.loss={kind}"])
    train.main.init_xp(xp)
    torch.manual_seed(0)
    model = demucs_train().get_model(xp.cfg)
    tk = DemucsToolkit()
    dataset = tk.dataset(tiny_data.manifest("train"), "all", deterministic=True, segment=1.0)
    sources = torch.stack([dataset[i] for i in range(4)])
    sources[2, 0] = sources[2, 0].flip(-1) * 3  # a drums stem that is not the mixture's: its loss is the highest
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with xp.enter():
        solver = Solver({"train": [sources]}, model, optimizer, xp.cfg)
        solver.augment = torch.nn.Identity()  # the hand-computed losses see the batch as it is
        with torch.no_grad():
            model.train()
            expected = source_losses(model(sources.sum(1)), sources, kind)  # (batch, sources)
        assert expected[:, 0].argmax() == 2
        kept = torch.ones_like(expected, dtype=torch.bool)
        kept.scatter_(0, expected.argmax(0, keepdim=True), False)  # the highest example of each source
        with robust_losses(solver, RobustLoss(truncate=0.25), bin_size=1024):
            metrics = solver._run_one_epoch(0, train=True)
        assert get_xp() is xp
    # The loss it trains on: per source the mean over the kept examples, averaged over the sources
    # (demucs' mse branch skips the mean over the batch: its loss is the batch's sum).
    trained = expected.where(kept, 0).sum(0).div(kept.sum(0)).mean() * (len(sources) if kind == "mse" else 1)
    assert metrics["loss"] == pytest.approx(trained.item(), rel=1e-4)
    if kind == "l1":  # the reconstruction it reports is the same mean, per source
        for k, source in enumerate(model.sources):
            assert metrics[f"reco_{source}"] == pytest.approx(expected[kept[:, k], k].mean().item(), rel=1e-4)
    import demucs.solver

    assert demucs.solver.F is torch.nn.functional  # restored after the block


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_demucs_relative_ranking_sees_the_target_in_the_loss_units(kind):
    """The solver's loss function hands ``robust.relative`` the target's magnitude (l1) or square
    (mse): a loud, well-fitted source example is kept and a quiet, wrong one truncated."""
    from sepclean_plugins.demucs.robust import RobustFunctional

    target = torch.ones(4, 1, 2, 8)
    target[0] *= 10  # loud
    estimate = target.clone()
    estimate[0] += 2.0  # loud, 2 off: 20% (l1), 4% (mse) of its energy
    estimate[1] += 1.0  # quiet, 1 off: 100% of its energy
    functional = RobustFunctional(RobustLoss(truncate=0.25, relative=True), lambda: 0, bin_size=4)
    loss = getattr(functional, f"{kind}_loss")(estimate, target, reduction="none")
    assert (loss[1] == 0).all() and (loss[0] > 0).all()
    plain = RobustFunctional(RobustLoss(truncate=0.25), lambda: 0, bin_size=4)
    assert (getattr(plain, f"{kind}_loss")(estimate, target, reduction="none")[0] == 0).all()
