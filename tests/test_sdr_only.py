"""``sdr_only`` evaluation gives museval's own SDR: each target scored alone equals the joint score."""

from __future__ import annotations

import numpy as np

from sepclean.evaluate import score_track


def test_each_target_alone_has_the_joint_sdr(tiny_data, tmp_path):
    track = next(iter(tiny_data.manifest("test")))
    rng = np.random.default_rng(0)
    mixture = sum(track.read(s) for s in ("vocals", "bass", "drums"))
    estimates = {s: 0.6 * track.read(s) + 0.3 * mixture / 3 + 0.05 * rng.standard_normal(mixture.shape).astype(np.float32)
                 for s in ("vocals", "bass", "drums")}
    targets = list(estimates)
    (tmp_path / "joint").mkdir()
    (tmp_path / "alone").mkdir()
    joint, _ = score_track(track, estimates, targets, tmp_path / "joint")
    alone, _ = score_track(track, estimates, targets, tmp_path / "alone", sdr_only=True)
    assert alone.keys() == joint.keys()
    for target in joint:
        assert alone[target] == joint[target]
    assert '"SIR": NaN' in (tmp_path / "alone" / f"{track.id}.json").read_text()  # not computed, and says so
