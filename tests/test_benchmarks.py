"""The benchmarks make their artifacts through the pipeline's stages and store, never their own road."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_detection_reads_every_table_from_the_store_and_a_rerun_makes_nothing(tmp_path, capsys):
    bench = load("bench_detection")
    argv = ["--out", str(tmp_path / "out"), "--profile", "tiny", "--seeds", "0", "--datasets", "mixed23-heavy",
            "heldout-paper", "--scorers", "random", "oracle=oracle:", "--draws", "10", "--json", str(tmp_path / "a.json")]
    bench.main(argv)
    store = tmp_path / "out" / "artifacts"
    made = sorted(store.glob("*/*/done.json"))
    assert [p.parent.parent.name for p in made].count("data") == 2
    assert [p.parent.parent.name for p in made].count("scores") == 4
    assert "held-out family" in capsys.readouterr().out
    found = json.loads((tmp_path / "a.json").read_text())["per_seed"]["all"]
    assert found["oracle"] == {"mixed23-heavy": [1.0], "heldout-paper": [1.0]}

    stamps = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    bench.main(argv[:-1] + [str(tmp_path / "b.json")])
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == stamps  # every artifact found made
    assert json.loads((tmp_path / "b.json").read_text())["per_seed"]["all"] == found


def test_fadtk_gets_the_same_sqrtm_from_a_scipy_without_disp(monkeypatch):
    """fadtk 1.1.0 calls ``linalg.sqrtm(A, disp=False)``; on a SciPy whose sqrtm has no ``disp`` (the GPU
    machine's) the benchmark's stand-in returns the same root, and on one that has it, SciPy itself."""
    import scipy.linalg

    bench = load("bench_fad_fadtk")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    a = a @ a.T + np.eye(6)
    original = scipy.linalg.sqrtm
    if "disp" in inspect.signature(original).parameters:
        assert bench.scipy_linalg_for_fadtk() is scipy.linalg

    def sqrtm_without_disp(a, blocksize=64):
        return original(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_without_disp)
    linalg = bench.scipy_linalg_for_fadtk()
    root, estimate = linalg.sqrtm(a, disp=False)
    assert estimate is None and np.allclose(root @ root, a)
    assert np.array_equal(linalg.sqrtm(a), root) and linalg.eig is scipy.linalg.eig and linalg.inv is scipy.linalg.inv


def test_bench_auto_misses_counts_caught_pairs_per_target_and_kind(tmp_path, capsys):
    from sepclean.scores import ScoreTable

    bench = load("bench_auto_misses")
    tracks = {f"s{i}": {"contaminated": False} for i in range(8)}
    tracks["s0"] = {"contaminated": True, "kind": "bleeding", "stems": ["vocals"]}
    tracks["s1"] = {"contaminated": True, "kind": "label_noise", "stems": ["vocals", "bass"],
                    "params": {"moves": [], "swaps": [["vocals", "bass"]]}}
    (tmp_path / "contamination.json").write_text(json.dumps({"tracks": tracks}))
    # vocals: both bad pairs score lowest; bass: the swapped one scores like the clean ones
    vocals = {t: 0.0 if t in ("s0", "s1") else 1.0 for t in tracks}
    bass = {t: 2.0 if t == "s1" else 0.9 + 0.01 * i for i, t in enumerate(tracks)}
    ScoreTable.from_columns("planted", list(tracks), {"vocals": vocals, "bass": bass}, {}).write(tmp_path / "t")
    assert bench.main(["--contamination", str(tmp_path), "--ratio", "0.75", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "| vocals | 1.000 | 2.0 | 2.0 (100%) | 0.0 |" in out
    assert "| bass | 0.000 | 1.0 | 0.0 (0%) | 2.0 |" in out  # s1 the best: s0 and s2 dropped in its place
    assert "| vocals | bleeding | 1.0 | 100% |" in out and "| bass | swap | 1.0 | 0% |" in out

    del tracks["s7"]
    (tmp_path / "contamination.json").write_text(json.dumps({"tracks": tracks}))
    assert bench.main(["--contamination", str(tmp_path), str(tmp_path / "t")]) == 2
    assert "differ in 1 tracks, e.g. s7: not the same dataset" in capsys.readouterr().err
