"""Per-song FAD: the closed form, its properties, the length bias, and the scores table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from sepclean.cli import main
from sepclean.embeddings import EmbeddingCache, SongEmbeddings, create_backend
from sepclean.fad import (
    FrechetReference,
    Gaussian,
    GaussianAccumulator,
    common_frame_count,
    fad_table,
    frechet_distance,
    frechet_distance_sqrtm,
)
from sepclean.scores import UNIFIED, ScoreTable


def random_gaussian(rng, d, frames=None) -> Gaussian:
    """A Gaussian with a random full covariance, or fitted to ``frames`` random correlated frames."""
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    if frames is None:
        return Gaussian(rng.normal(size=d), mixing @ mixing.T + 0.05 * np.eye(d), 0)
    return Gaussian.fit(rng.normal(size=(frames, d)) @ mixing.T + rng.normal(size=d))


def test_closed_form_for_gaussians_sharing_eigenvectors():
    # Covariances diagonal in one basis: FD = |mu_a - mu_b|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(0)
    d = 12
    basis = ortho_group.rvs(d, random_state=1)
    var_a, var_b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mean_a, mean_b = rng.normal(size=d), rng.normal(size=d)
    a = Gaussian(mean_a, basis @ np.diag(var_a) @ basis.T, 0)
    b = Gaussian(mean_b, basis @ np.diag(var_b) @ basis.T, 0)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert FrechetReference(a).distance(b) == pytest.approx(expected, rel=1e-9)


def test_one_dimensional_closed_form():
    a = Gaussian(np.array([1.0]), np.array([[4.0]]), 0)
    b = Gaussian(np.array([-2.0]), np.array([[9.0]]), 0)
    assert frechet_distance(a, b) == pytest.approx(9 + (2 - 3) ** 2)


def test_symmetric_and_zero_for_identical_statistics():
    rng = np.random.default_rng(1)
    a, b = random_gaussian(rng, 24), random_gaussian(rng, 24)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 0.1
    assert abs(frechet_distance(a, a)) < 1e-9
    assert abs(FrechetReference(a).distance(a)) < 1e-9


@pytest.mark.parametrize("frames", [40, 500])  # fewer and more frames than dimensions
def test_equal_to_scipy_sqrtm_formula(frames):
    rng = np.random.default_rng(2)
    d = 64
    reference = random_gaussian(rng, d, frames=3000)
    song_frames = rng.normal(size=(frames, d)) @ (rng.normal(size=(d, d)) / 8) + 0.3
    song = Gaussian.fit(song_frames)
    expected = frechet_distance_sqrtm(reference, song)
    fad = FrechetReference(reference)
    assert fad.distance(song) == pytest.approx(expected, rel=1e-4)
    assert fad.distance_to_frames(song_frames) == pytest.approx(expected, rel=1e-4)
    assert frechet_distance(song, reference) == pytest.approx(expected, rel=1e-4)


def test_accumulator_equals_fit_on_all_frames():
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(700, 16)) * 5 - 40  # far from zero, like dB features
    accumulator = GaussianAccumulator()
    for part in np.array_split(frames, 7):
        accumulator.add(part.astype(np.float16).astype(np.float64))
    fitted = Gaussian.fit(frames.astype(np.float16))
    result = accumulator.gaussian()
    assert result.count == 700
    np.testing.assert_allclose(result.mean, fitted.mean, rtol=1e-10)
    np.testing.assert_allclose(result.cov, fitted.cov, rtol=1e-8, atol=1e-10)


def test_score_no_longer_depends_on_song_length():
    """Songs drawn from the reference distribution itself: fadtk's all-frame FAD falls steeply with
    length; on a common number of frames it does not."""
    rng = np.random.default_rng(4)
    d, common = 8, 60
    mixing = rng.normal(size=(d, d)) / np.sqrt(d) + 0.3 * np.eye(d)
    reference = FrechetReference(Gaussian.fit(rng.normal(size=(50000, d)) @ mixing.T))
    all_frames, subsampled = {}, {}
    for length in (60, 240, 960):
        songs = [rng.normal(size=(length, d)) @ mixing.T for _ in range(40)]
        all_frames[length] = np.mean([reference.song_distance(song) for song in songs])
        subsampled[length] = np.mean([reference.song_distance(song, common, 8, rng) for song in songs])
    assert all_frames[60] > 5 * all_frames[960]
    values = np.array(list(subsampled.values()))
    assert values.max() / values.min() < 1.2, subsampled


def test_song_distance_subsets():
    rng = np.random.default_rng(5)
    reference = FrechetReference(random_gaussian(rng, 4, frames=1000))
    frames = rng.normal(size=(100, 4))
    assert reference.song_distance(frames, 100) == pytest.approx(reference.distance_to_frames(frames))
    with pytest.raises(ValueError, match="fewer"):
        reference.song_distance(frames, 101)
    first = reference.song_distance(frames, 20, 3, np.random.default_rng(0))
    assert reference.song_distance(frames, 20, 3, np.random.default_rng(0)) == first


def test_common_frame_count():
    counts = {"a": 500, "b": 120, "c": 3}
    assert common_frame_count(counts, "auto", min_frames=10) == 120  # "c" is too short to set it
    assert common_frame_count(counts, "all", min_frames=10) is None
    assert common_frame_count(counts, 64, min_frames=10) == 64


def test_fad_table_on_tiny_data(tiny_data, tmp_path):
    train, reference = tiny_data.manifest("train"), tiny_data.manifest("reference")
    songs = SongEmbeddings(create_backend("spectral"), EmbeddingCache(tmp_path / "cache"))
    table = fad_table(train, reference, songs, unified="mixture", progress=False)
    assert set(table.tracks) == set(train.ids)
    assert table.targets == ["vocals", "bass", "drums", "other"]
    assert all(score < 0 for row in table.scores.values() for score in row.values())
    assert table.metadata["manifests"] == {"train": train.hash, "reference": reference.hash}
    assert table.metadata["embedding"]["name"] == "spectral"
    assert set(table.metadata["frames"]) == {"vocals", "bass", "drums", "other", "mixture"}

    mean = fad_table(train, reference, songs, unified="mean", progress=False)
    for track, row in mean.scores.items():
        assert row[UNIFIED] == pytest.approx(np.mean([row[s] for s in mean.targets]))
        assert row["vocals"] == table.scores[track]["vocals"]  # same seeds, same subsets


def test_cli_writes_a_scores_table(tiny_data, tmp_path):
    out = tmp_path / "scores"
    argv = [
        "score", "fad",
        "--train", str(tiny_data.manifests["train"]),
        "--reference", str(tiny_data.manifests["reference"]),
        "-o", str(out),
        "--cache", str(tmp_path / "cache"),
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    table = ScoreTable.read(out)
    assert table.method == "fad"
    assert set(table.tracks) == set(tiny_data.manifest("train").ids)
    assert table.column(UNIFIED) and table.targets == ["vocals", "bass", "drums", "other"]
    assert main([*argv[:-1], "--embedding", "spectral", "--layer", "3"]) == 2  # not a spectral option


@pytest.mark.parametrize("frames", [20, 32, 90])  # n < d, n = d, n > d
def test_batched_distances_equal_textbook_sqrtm(frames):
    rng = np.random.default_rng(11)
    d = 32
    reference = random_gaussian(rng, d, frames=2000)
    songs = [(rng.normal(size=(frames + k % 2, d)) @ (rng.normal(size=(d, d)) / 6) + k).astype(np.float32)
             for k in range(5)]  # two lengths: two batches
    fad = FrechetReference(reference, device="cpu")
    batched = fad.distances_to_frames(songs, batch_size=2)
    expected = [frechet_distance_sqrtm(reference, Gaussian.fit(song)) for song in songs]
    one_by_one = [fad.distance_to_frames(song) for song in songs]
    np.testing.assert_allclose(batched, expected, rtol=1e-6)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-12)
    on_torch = fad._batched(songs, "cpu", batch_size=2)  # the road a CUDA device takes, here on the CPU
    np.testing.assert_allclose(on_torch, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2 frames"):
        fad.distances_to_frames([songs[0][:1]])


@pytest.mark.parametrize("frames", [20, 90])
def test_singular_reference_takes_the_symmetric_root(frames):
    """A reference of fewer frames than dimensions has a singular covariance and no Cholesky factor:
    the symmetric root stands in, with the same distances as the textbook formula."""
    rng = np.random.default_rng(12)
    d = 32
    reference = Gaussian.fit(rng.normal(size=(24, d)) @ (rng.normal(size=(d, d)) / 6))
    fad = FrechetReference(reference, device="cpu")
    assert not fad.triangular and FrechetReference(random_gaussian(rng, d, frames=2000)).triangular
    song = rng.normal(size=(frames, d)) @ (rng.normal(size=(d, d)) / 6) + 0.5
    expected = frechet_distance_sqrtm(reference, Gaussian.fit(song))
    assert fad.distance_to_frames(song) == pytest.approx(expected, rel=1e-6)
    assert fad.distance(Gaussian.fit(song)) == pytest.approx(expected, rel=1e-6)
