"""Separate a test manifest with a trained model of any toolkit and score it with museval.

Separation goes through the toolkit's adapter (``load`` every unit, ``separate`` each mixture);
scoring is the same for every toolkit, so their numbers are comparable. The metric is BSSEval v4
(``museval.evaluate``: 1 s windows and hops, time-invariant distortion filters), aggregated as SiSEC
2018 and the MDX challenges report it: per target, the median over a track's frames, then the
median over tracks; the average is the mean of the targets' medians.

A target's numbers never depend on which others are asked for: the mixture is separated with
every model the checkpoint holds, and frames are scored as if every separated target were evaluated
jointly (museval leaves a frame undefined for all targets when any of them is silent in it), while
museval only runs on the targets asked for (its cost grows quickly with their number). museval
refuses a reference or an estimate that is silent throughout a track; that target is left out on
that track (the others are still scored) and the summary lists it under ``skipped``, naming the
track.

Output folder::

    museval/<track>.json   museval's per-track scores (SDR, SIR, ISR, SAR of every frame)
    summary.json           per-track and per-target median SDR, the average, what was evaluated,
                           and the (track, target) pairs skipped for silence
    summary.md             the same as a markdown table

museval costs about a second per second of audio and target, far more than separating: tracks are
scored in a process pool while the next ones are separated.
"""

from __future__ import annotations

import json
import math
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
from sepclean.cpus import allotted_cpus, machine_cpus
from sepclean.errors import writing
from sepclean.manifest import MIXTURE, Manifest, Track

if TYPE_CHECKING:
    from sepclean.toolkit import Toolkit

FORMAT = "sepclean.evaluation"
VERSION = 1
WINDOW = HOP = 1.0  # seconds, museval's defaults


def _silent(signal: np.ndarray) -> bool:
    """museval's own test (``metrics._any_source_silent``): the channels sum to 0 at every sample."""
    return not np.any(signal.sum(axis=0))


def score_track(
    track: Track, estimates: dict[str, np.ndarray], targets: list[str], output: Path | None = None,
    sdr_only: bool = False,
) -> tuple[dict[str, float], dict[str, str]]:
    """BSSEval v4 of one track's ``targets`` among its ``(channels, frames)`` ``estimates`` (every
    separated target with a stem), as if all of them were scored jointly.

    museval leaves a frame undefined for every target when any target's reference or estimate is
    silent in it; the other estimates' silent frames are therefore undefined for ``targets`` too,
    and a target's SDR (which depends on its own reference and estimate only) is the one a joint
    evaluation of everything gives, at the cost of evaluating ``targets`` only. A target whose
    reference or estimate is silent throughout is left out (museval would refuse the whole track).

    ``sdr_only``: museval on each target alone, with the same undefined frames: the SDR and ISR
    of a joint evaluation, bit for bit, at a fraction of the cost (four sources jointly cost about
    50 times one); SIR and SAR are then not computed (NaN).

    Writes museval's per-track JSON to ``output/<track>.json`` when given. Returns ``(target ->
    median SDR over the track's frames, NaN when skipped; skipped target -> why)``.
    """
    references = {target: track.read(target) for target in estimates}
    skipped = {}
    for target in estimates:
        for what, signal in (("reference", references[target]), ("estimate", estimates[target])):
            if target not in skipped and _silent(signal):
                skipped[target] = f"silent {what}"
    scored = [target for target in targets if target not in skipped]
    others = [target for target in estimates if target not in skipped and target not in targets]
    win, hop = int(WINDOW * track.sample_rate), int(HOP * track.sample_rate)
    store = museval.TrackStore(track_name=track.id, win=WINDOW, hop=HOP)
    if scored:
        truth = [references[t].T.astype(np.float64) for t in scored]
        guess = [estimates[t].T.astype(np.float64) for t in scored]
        if sdr_only:
            alone = [museval.evaluate([r], [e], win=win, hop=hop) for r, e in zip(truth, guess)]
            sdr, isr = (np.concatenate([metrics[k] for metrics in alone]) for k in (0, 1))
            sir, sar = np.full_like(sdr, np.nan), np.full_like(sdr, np.nan)
            masking = [*scored, *others]  # museval's joint run leaves these frames undefined for all
        else:
            sdr, isr, sir, sar = museval.evaluate(truth, guess, win=win, hop=hop)
            masking = others
        frames = museval.metrics.Framing(win, hop, track.frames)
        undefined = np.array([any(_silent(signal[:, window]) for t in masking for signal in (references[t], estimates[t]))
                              for window in frames], dtype=bool)
        for metric in (sdr, isr, sir, sar):
            metric[:, undefined] = np.nan
        for i, target in enumerate(scored):
            store.add_target(target, {"SDR": sdr[i].tolist(), "SIR": sir[i].tolist(), "ISR": isr[i].tolist(),
                                      "SAR": sar[i].tolist()})
    if output is not None:
        (Path(output) / f"{track.id}.json").write_text(store.json)
    # Read back museval's own (quantised, inf -> NaN) frame values, as its aggregation does.
    medians = {t["name"]: _nanmedian([float(f["metrics"]["SDR"]) for f in t["frames"]])
               for t in store.scores["targets"]}
    return {target: medians.get(target, math.nan) for target in targets}, \
        {target: why for target, why in skipped.items() if target in targets}


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
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    """track id -> target -> why it was not scored on that track (a silent reference or estimate)."""
    separated: list[str] = field(default_factory=list)
    """Every target the mixtures were separated into (with a stem to score against)."""
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
            "separated": self.separated,
            "skipped": self.skipped,
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

    def notes(self) -> list[str]:
        """One line per track with targets left out for silence."""
        return [f"{track}: not scored for {', '.join(f'{t} ({why})' for t, why in targets.items())}"
                for track, targets in self.skipped.items()]

    def write(self, output) -> None:
        output = Path(output)
        title = f"# {self.toolkit} {self.checkpoint}: SDR (dB, BSSEval v4, median over frames and tracks)\n\n"
        notes = "".join(f"\n- {note}" for note in self.notes())
        with writing(output):
            output.mkdir(parents=True, exist_ok=True)
            (output / "summary.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
            (output / "summary.md").write_text(title + self.table() + "\n" + (f"\nSkipped:{notes}\n" if notes else ""))


def _finite_or_none(value):
    return None if value is None or not math.isfinite(value) else value


def _score_all(test: Manifest, separated, targets: list[str], scores_dir: Path, workers: int,
               done, sdr_only: bool = False) -> dict[str, tuple]:
    """track id -> ``score_track``'s result; separates in this process, scores in ``workers`` processes."""
    if workers <= 1:
        scores = {}
        for track in test:
            scores[track.id] = score_track(track, separated(track), targets, scores_dir, sdr_only)
            done()
        return scores
    futures = {}
    # spawn: the parent holds torch's thread pools, which forked children can deadlock on.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for track in test:
            while len(running := [f for f in futures if not f.done()]) > workers:  # bounds estimates in memory
                wait(running, return_when=FIRST_COMPLETED)
            future = pool.submit(score_track, track, separated(track), targets, scores_dir, sdr_only)
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

    ``toolkit``: a registered name or an adapter. ``targets``: those to score (by default those the
    checkpoint holds a model for, ``Toolkit.trained_units``); the separation uses every model the checkpoint holds and the scoring counts the
    silent frames of every separated target (see ``score_track``), so a target's numbers do not
    depend on which others are asked for.
    ``workers``: scoring processes (by default the CPUs allotted to this process, else its cores; 0 or 1
    scores in-process).
    """
    from sepclean.toolkit import ToolkitError, get

    adapter = get(toolkit) if isinstance(toolkit, str) else toolkit
    requested = adapter.units(targets) if targets else adapter.trained_units(checkpoint)
    order = adapter.units()
    units = sorted({*requested, *adapter.checkpoint_units(checkpoint)},
                   key=lambda u: (order.index(u) if u in order else len(order), u))
    produced = [t for unit in requested for t in adapter.unit_targets(unit)]
    separated_targets = [t for unit in units for t in adapter.unit_targets(unit)]
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
    scored = [t for t in separated_targets if t in test.stems]
    scores_dir = Path(output) / "museval"
    with writing(scores_dir):  # before the (long) separation
        scores_dir.mkdir(parents=True, exist_ok=True)
    models = {unit: adapter.load(checkpoint, unit, device) for unit in units}

    def separated(track: Track) -> dict[str, np.ndarray]:
        estimates = adapter.separate(models, track.read(MIXTURE), track.sample_rate)
        return {target: estimates[target] for target in scored}

    workers = min(allotted_cpus() or machine_cpus(), len(test)) if workers is None else workers
    with tqdm(total=len(test), desc="evaluating", unit="track", disable=not progress) as bar:
        results = _score_all(test, separated, targets, scores_dir, workers, bar.update, sdr_only)
    evaluation = Evaluation(
        toolkit=adapter.name,
        checkpoint=str(checkpoint),
        targets=targets,
        tracks={track.id: results[track.id][0] for track in test},
        test={"hash": test.hash, "tracks": len(test), "roots": list(test.roots)},
        skipped={track.id: results[track.id][1] for track in test if results[track.id][1]},
        separated=scored,
        sdr_only=sdr_only,
    )
    evaluation.write(output)
    return evaluation
