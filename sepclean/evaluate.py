"""Separate a test manifest with a trained model of any toolkit and score it with museval.

Separation goes through the toolkit's adapter (``load`` every unit, ``separate`` each mixture);
scoring is the same for every toolkit, so their numbers are comparable. The metric is BSSEval v4
(``museval.evaluate``: 1 s windows and hops, time-invariant distortion filters), aggregated as SiSEC
2018 and the MDX challenges report it: per target, the median over a track's frames, then the
median over tracks; the average is the mean of the targets' medians.

Output folder::

    museval/<track>.json   museval's per-track scores (SDR, SIR, ISR, SAR of every frame)
    summary.json           per-track and per-target median SDR, the average, and what was evaluated
    summary.md             the same as a markdown table

museval costs about a second per second of audio and target, far more than separating: tracks are
scored in a process pool while the next ones are separated.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import museval
import numpy as np
import treetable as tt
from tqdm import tqdm

import sepclean
from sepclean import STEMS
from sepclean.manifest import MIXTURE, Manifest, Track

if TYPE_CHECKING:
    from sepclean.toolkit import Toolkit

FORMAT = "sepclean.evaluation"
VERSION = 1
WINDOW = HOP = 1.0  # seconds, museval's defaults


def score_track(track: Track, estimates: dict[str, np.ndarray], output: Path | None = None,
                sdr_only: bool = False) -> dict[str, float]:
    """BSSEval v4 of one track's ``(channels, frames)`` estimates against its stems.

    Writes museval's per-track JSON to ``output/<track>.json`` when given; returns target -> median
    SDR over the track's frames (NaN when every frame is undefined, e.g. a silent reference).

    ``sdr_only``: museval on each target alone. BSSEval v4's SDR (and ISR) of a target depend only
    on that target's reference and estimate (the distortion filter projects onto the target's own
    reference; the other references only split the error into interference and artifacts), so the
    values are museval's, bit for bit, at a fraction of the cost (a joint 4-source evaluation costs
    about 50 times one source's); SIR and SAR are then not computed (NaN).
    """
    targets = list(estimates)
    references = [track.read(target).T.astype(np.float64) for target in targets]
    outputs = [estimates[target].T.astype(np.float64) for target in targets]
    window = dict(win=int(WINDOW * track.sample_rate), hop=int(HOP * track.sample_rate))
    if sdr_only:
        alone = [museval.evaluate([ref], [out], **window) for ref, out in zip(references, outputs)]
        sdr, isr = (np.concatenate([metrics[k] for metrics in alone]) for k in (0, 1))
        sir = sar = np.full_like(sdr, np.nan)
    else:
        sdr, isr, sir, sar = museval.evaluate(references, outputs, **window)
    store = museval.TrackStore(track_name=track.id, win=WINDOW, hop=HOP)
    for i, target in enumerate(targets):
        store.add_target(target, {"SDR": sdr[i].tolist(), "SIR": sir[i].tolist(), "ISR": isr[i].tolist(),
                                  "SAR": sar[i].tolist()})
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / f"{track.id}.json").write_text(store.json)
    # Read back museval's own (quantised, inf -> NaN) frame values, as its aggregation does.
    return {t["name"]: _nanmedian([float(f["metrics"]["SDR"]) for f in t["frames"]]) for t in store.scores["targets"]}


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan


@dataclass
class Evaluation:
    toolkit: str
    checkpoint: str
    targets: list[str]
    tracks: dict[str, dict[str, float]]
    """track id -> target -> median SDR over the track's frames."""
    test: dict = field(default_factory=dict)
    sdr_only: bool = False

    @property
    def median(self) -> dict[str, float]:
        """target -> median over tracks."""
        return {t: _nanmedian([scores[t] for scores in self.tracks.values()]) for t in self.targets}

    @property
    def average(self) -> float:
        return float(np.mean(list(self.median.values())))

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "toolkit": self.toolkit,
            "checkpoint": self.checkpoint,
            "test": self.test,
            "bsseval": {"version": "v4", "museval": version("museval"), "window": WINDOW, "hop": HOP,
                        "metrics": "SDR, ISR (each target alone)" if self.sdr_only else "SDR, ISR, SIR, SAR"},
            "aggregation": "median over frames per track, median over tracks per target, mean over targets",
            "targets": self.targets,
            "sdr": {
                "average": _finite_or_none(self.average),
                "median": {t: _finite_or_none(v) for t, v in self.median.items()},
                "tracks": {i: {t: _finite_or_none(v) for t, v in s.items()} for i, s in self.tracks.items()},
            },
            "sepclean": sepclean.__version__,
        }

    def table(self) -> str:
        """Markdown table: median SDR (dB) per track and target, their median, and averages."""
        rows = [{"track": track, **scores, "avg": float(np.mean(list(scores.values())))}
                for track, scores in self.tracks.items()]
        rows.append({"track": "median", **self.median, "avg": self.average})
        rows = [{k: _finite_or_none(v) if k != "track" else v for k, v in row.items()} for row in rows]
        columns = tt.table([tt.leaf("track"), *(tt.leaf(t, ".2f", align=">") for t in [*self.targets, "avg"])],
                           missing="n/a")
        header, *body = tt.treetable(rows, columns, separators=[" | "]).splitlines()
        track_cell, *number_cells = header.split(" | ")
        rule = " | ".join(["-" * len(track_cell)] + ["-" * (len(cell) - 1) + ":" for cell in number_cells])
        return "\n".join(f"| {line} |" for line in [header, rule, *body])

    def write(self, output) -> None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "summary.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
        title = f"# {self.toolkit} {self.checkpoint}: SDR (dB, BSSEval v4, median over frames and tracks)\n\n"
        (output / "summary.md").write_text(title + self.table() + "\n")


def _finite_or_none(value):
    return None if value is None or not math.isfinite(value) else value


def _score_all(test: Manifest, separated, scores_dir: Path, workers: int, done,
               sdr_only: bool = False) -> dict[str, dict[str, float]]:
    """track id -> target -> median SDR; separates in this process, scores in ``workers`` processes."""
    if workers <= 1:
        scores = {}
        for track in test:
            scores[track.id] = score_track(track, separated(track), scores_dir, sdr_only)
            done()
        return scores
    futures = {}
    # spawn: the parent holds torch's thread pools, which forked children can deadlock on.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for track in test:
            while len(running := [f for f in futures if not f.done()]) > workers:  # bounds estimates in memory
                wait(running, return_when=FIRST_COMPLETED)
            future = pool.submit(score_track, track, separated(track), scores_dir, sdr_only)
            future.add_done_callback(lambda _: done())
            futures[future] = track.id
        return {track_id: future.result() for future, track_id in futures.items()}


def evaluate(
    toolkit: "str | Toolkit",
    checkpoint,
    test: Manifest,
    output,
    targets: list[str] | None = None,
    workers: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    sdr_only: bool = False,
) -> Evaluation:
    """Separate every track of ``test`` with ``checkpoint`` and score it; writes ``output``.

    ``toolkit``: a registered name or an adapter. ``targets``: those to score (all the toolkit's
    by default). ``workers``: scoring processes (the cores by default; 0 or 1 scores in-process).
    """
    from sepclean.toolkit import ToolkitError, get

    adapter = get(toolkit) if isinstance(toolkit, str) else toolkit
    units = adapter.units(targets)
    produced = [t for unit in units for t in adapter.unit_targets(unit)]
    # sepclean's stem order by default, so tables of different toolkits line up.
    targets = list(targets or sorted(produced, key=lambda t: STEMS.index(t) if t in STEMS else len(STEMS)))
    for target in targets:
        if target not in produced:
            raise ToolkitError(f"{adapter.name} produces no target {target!r} (it produces {', '.join(produced)})")
        if target not in test.stems:
            raise ToolkitError(
                f"the test manifest has no {target!r} stem to score against (it has {', '.join(test.stems)})"
            )
    if not len(test):
        raise ToolkitError("the test manifest has no tracks")
    models = {unit: adapter.load(checkpoint, unit, device) for unit in units}

    def separated(track: Track) -> dict[str, np.ndarray]:
        estimates = adapter.separate(models, track.read(MIXTURE), track.sample_rate)
        return {target: estimates[target] for target in targets}

    workers = min(os.cpu_count() or 1, len(test)) if workers is None else workers
    with tqdm(total=len(test), desc="evaluating", unit="track", disable=not progress) as bar:
        scores = _score_all(test, separated, Path(output) / "museval", workers, bar.update, sdr_only)
    evaluation = Evaluation(
        toolkit=adapter.name,
        checkpoint=str(checkpoint),
        targets=targets,
        tracks={track.id: scores[track.id] for track in test},
        test={"hash": test.hash, "tracks": len(test), "roots": list(test.roots)},
        sdr_only=sdr_only,
    )
    evaluation.write(output)
    return evaluation
