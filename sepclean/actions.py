"""What is done with the (song, stem) pairs a cleaning method flags, the same for every architecture.

A clean manifest made by ``filter`` drops the flagged pairs: the pair's song is not in its target's
kept list. Dropping throws away good audio with a bad label (the oracle that drops exactly the
contaminated pairs closed about a third of the dirty → clean-twin gap). Two more actions keep the
audio; both write a version-2 clean manifest (``sepclean.clean_manifest``) that Open-Unmix and
Demucs apply the same way:

``weight``
    Every pair is kept and its loss is multiplied by a weight from its score: the posterior of the
    clean component of the two-Gaussian mixture that ``ratio=auto`` fits to the same scores
    (:func:`sepclean.filtering.clean_posterior`; the score of the pair's target per target, the
    song's score unified). So a pair auto would keep weighs >= 0.5, a pair it would drop < 0.5, and
    where auto keeps every song (no second population) every weight is 1: plain training. A score
    table with a cut (the oracle) gives 1 and 0: dropping. The batch loss is the mean of
    weight x loss over its examples (not renormalised): a batch of doubtful pairs moves the model
    less, as dropping them would.

``repair``
    A flagged pair's label is replaced by a pseudo-label: the stem as a model separates it from the
    song's own mixture (the sum of its stems, what the toolkits train on). What the old label held
    and the pseudo-label does not, the residual ``old − new``, is handed to the song's other stems,
    so they still sum to the mixture the model is trained to separate. Which stems, ``receiver``
    says, among those of ``residual`` (default ``other``, ``vocals``, ``bass``, ``drums``) not
    repaired in that song (and, after a relabel, not relabelled):

    - ``split`` (default): shares ``w_r >= 0`` summing to 1 to each, those minimising
      ``Σ_r |E_r − old_r − w_r residual|²``, the model's estimates ``E``: the residual goes where
      the model hears it. A leak (drums bled into vocals) is the leaked instrument, which the model
      puts in the stem it leaked from; a part misfiled into vocals goes back to the stem it came
      from; swapped stems repaired together leave a residual of nothing.
    - ``best``: all of it to the one stem whose label moves least from the model's estimate.
    - ``order``: all of it to the first (the rule of every repair made before the setting, and the
      pipeline's until the grids made with it are done: ``repair.receiver: order`` in its config).
      ``other`` first as the catch-all stem (MUSDB18's "everything but vocals, bass and drums"); but
      a leak from drums then plants drums in ``other``.

    Measured (``benchmarks/bench_repair_check.py``, mixed23 heavy, oracle flags, the 4-dB CPU
    reference model): the three accept the same pairs, so the repaired labels are the same; what
    changes is the receivers. Against the truth whose stems sum to the mixture (the clean twin plus
    the stem's own leaks), the changed songs' label sets gain +3.35 dB with split, +3.03 with best,
    +2.74 with order (bleeding songs +0.44, −0.30, −0.33), and their receivers end at 4.6, 2.6 and
    2.1 dB SDR (bleeding 4.8, 0.6, 0.6).

    The consistency check. ClearSep accepts a separation when the sum of the estimates matches the
    mixture (its remix SDR). Open-Unmix's Wiener filter makes its estimates sum to the mixture
    whatever the model (a remix SDR of 30–70 dB for any Open-Unmix model), so that check accepts
    everything there; and a repair here sums to the mixture by construction. A repair must pass two
    tests instead, both relative to the model's own accuracy, so that they mean the same for a
    model of 3 dB on two CPU cores and one of 9 dB on a GPU:

    - the label test (iSeparate kept stems at >= ~9 dB against a model's separation): the flagged
      label must agree with the model's estimate ``margin`` dB (default 3) less than the labels the
      method did not flag do, their median SDR against the model's estimates over the first
      ``CALIBRATION_SONGS`` unflagged songs (the model's accuracy on this pool). If the errors of the
      label and of the model add, ``margin`` 3 dB is where the label's own error exceeds the
      model's: the pseudo-label is then likely the better label. A small leak (bleeding 15 dB down)
      leaves the label about as close to the estimate as a clean one: the model cannot fix it.
    - the receiver test: the receivers' labels must not move away from the model's estimates of them
      by more than ``tolerance`` dB beyond the model's usual error on the stems repaired,
      ``10 log10(Σ_R |E_R − new_R|² / (Σ_R |E_R − old_R|² + Σ_s |E_s|² 10^(−SDR_s/10))) <= tolerance``
      (``SDR_s``: the calibration above; a model whose estimates do not sum to the mixture, as
      Demucs', hands their errors to the receiver, which is no alien content). A residual the model
      attributes to the receiver (a part misfiled from ``other`` into ``vocals``) brings it closer;
      swapped stems repaired together leave it where the model's errors put it; a leak of drums into
      vocals handed to ``other``, or a failed estimate (silence, half the mixture missing) moves it
      away. With Open-Unmix (estimates summing to the mixture) the receiver's move compares its own
      disagreement with the model to the other unrepaired stems', so there the label test carries
      the decision: it refused no bleeding repair in the measurement above under any rule or a
      tolerance of 0. The bled labels it repairs look worse than before against the clean twin
      (−2.2 dB, 7 pairs) but better against the mixture's truth (+1.4 dB): the model hears the
      stem's own copies leaked into other stems as that stem, which no label of this mixture can
      leave out; so no stricter test for them.

    The flagged stems of a song that pass the label test are repaired together when the receiver
    test passes; otherwise the largest subset that passes is (ties: the one that moves the receiver
    least), and every flagged pair left out gets the ``fallback``: ``drop`` (the pair leaves its
    target's list, as the drop action would) or ``keep`` (its old label stays). Every pair's
    decision is recorded in the clean manifest (``repair.decisions``: which test refused it, the
    label's SDR against the estimate and the calibration, the receiver's move, the song's remix SDR).

``relabel``
    A flagged stem's label may be another stem's audio: two stems swapped, or more moved in a
    cycle (Koo et al.: a model trained on the noisy pool relabels them). The song's labels are
    permuted among its stems, moving only flagged labels, to the permutation the model agrees with
    best, when every moved label agrees with the estimate of its new stem ``margin`` dB better than
    with its old one's, and no more than ``margin`` dB worse than unflagged labels of the new stem
    do (the label test's calibration). Unlike a repair, the labels stay the dataset's own audio, not
    a model's estimates (a 3 dB model repairs a swap with 3 dB labels; relabelling restores it
    exactly), and the mixture is unchanged by construction: no residual, no receiver. A part moved
    from one stem into another is no permutation: relabel leaves it to the fallback (repair fixes
    it). Decisions name the stem each relabelled target's label came from.

``relabel+repair``
    Relabel first, then repair the flagged pairs relabelling left (moved parts, leaks, swaps the
    relabel test refused), with the relabelled labels as the song's labels: a swap gets its own
    audio back, and a moved part still gets the model's estimate. Each pair is decided once:
    ``relabelled``, else ``repaired``, else the fallback.

The repaired audio is written once into the repair artifact's folder (``audio/<track>/<file name
of the stem>``, 32-bit float), never into the dataset; the clean manifest names each file and the
content hash of its samples, checked whenever it is applied.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sepclean import audio
from sepclean.clean_manifest import MODEL_ACTIONS, CleanManifest, CleanManifestError, check_weights
from sepclean.errors import SepcleanError
from sepclean.manifest import Manifest, Track

FALLBACKS = ("drop", "keep")
RECEIVERS = ("order", "best", "split")
DEFAULT_RESIDUAL = ("other", "vocals", "bass", "drums")
CALIBRATION_SONGS = 32
"""Unflagged songs separated to calibrate the label test (the first of the pool)."""
AGREEMENT_LIMIT_DB = 60.0
"""A receiver's label closer to the model's estimate than this (in SDR) counts as this close: the
check compares disagreements, and float rounding is none."""

logger = logging.getLogger(__name__)


class ActionError(SepcleanError, ValueError):
    """A cleaning action that cannot be done as asked."""


@dataclass(frozen=True)
class RepairSettings:
    residual: tuple[str, ...] = DEFAULT_RESIDUAL
    """Stems that may receive a song's residual (``receiver=order``: in order of preference)."""
    fallback: str = "drop"
    """What a flagged pair whose repair fails the check becomes: ``drop`` or ``keep`` (its old label)."""
    tolerance: float = 1.0
    """dB the receiver's label may move away from the model's estimate of it."""
    margin: float = 3.0
    """dB by which a flagged label must agree with the model's estimate less than the labels the method
    did not flag do (their median SDR against the model's estimates)."""
    receiver: str = "split"
    """Which stems of ``residual`` not repaired receive the residual: ``split`` shares of it to each,
    by least squares against the model's estimates of them; ``best`` the one whose label moves least
    from the model's estimate of it; ``order`` the first (see the module's docstring)."""

    def __post_init__(self):
        residual = (self.residual,) if isinstance(self.residual, str) else tuple(self.residual or ())
        object.__setattr__(self, "residual", residual)
        if not residual or not all(isinstance(s, str) for s in residual) or len(set(residual)) != len(residual):
            raise ActionError(f"repair.residual must be a list of distinct stem names; got {self.residual!r}")
        if self.receiver not in RECEIVERS:
            raise ActionError(f"repair.receiver must be one of {', '.join(RECEIVERS)}; got {self.receiver!r}")
        if self.fallback not in FALLBACKS:
            raise ActionError(f"repair.fallback must be one of {', '.join(FALLBACKS)}; got {self.fallback!r}")
        for name in ("tolerance", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ActionError(f"repair.{name} must be a number of dB >= 0; got {value!r}")

    @classmethod
    def of(cls, settings: dict | None) -> "RepairSettings":
        """From a config's ``repair:`` block (its ``model`` is the pipeline's); empty values keep
        the defaults."""
        settings = {k: v for k, v in dict(settings or {}).items() if k not in ("model", "arch")}
        unknown = sorted(set(settings) - {"residual", "receiver", "fallback", "tolerance", "margin"})
        if unknown:
            raise ActionError(f"repair: unknown setting(s) {', '.join(unknown)} (known: model, arch, residual, "
                              "receiver, fallback, tolerance, margin)")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items() if v is not None})

    def to_dict(self) -> dict:
        return {**asdict(self), "residual": list(self.residual)}


# --- weight ---------------------------------------------------------------------------------------

def weight_manifest(table, mode: str) -> CleanManifest:
    """Every pair kept, weighted by the posterior of the clean component of its score
    (:func:`sepclean.filtering.clean_posterior`): per target by that target's score, unified by the
    song's score for every target."""
    from sepclean.filtering import MODES, clean_posterior, covered_dataset
    from sepclean.scores import UNIFIED

    if mode not in MODES:
        raise CleanManifestError(f"mode must be one of {MODES}, got {mode!r}")
    dataset = covered_dataset(table)
    cut = table.metadata.get("cut")
    targets = list(table.targets)
    if not targets:
        raise CleanManifestError(f"{table.method} scores have no per-target columns: nothing says which stems to weight")
    if mode == "unified":
        song = clean_posterior(table.column(UNIFIED), cut)
        weights = {t: dict(song) for t in targets}
        keep: list[str] | dict[str, list[str]] = list(table.tracks)
    else:
        weights = {t: clean_posterior(table.column(t), cut) for t in targets}
        keep = {t: list(table.tracks) for t in targets}
    check_weights(weights)
    return CleanManifest(keep=keep, dataset_hash=dataset["hash"], dataset_tracks=dataset["tracks"], mode=mode,
                         ratio="auto", methods=[table.method], action="weight", weights=weights,
                         extra={"weight": {"rule": "posterior of the clean component of the ratio=auto fit"
                                           + (f" (cut {cut}: 1 at or above it, else 0)" if cut is not None else "")}})


# --- repair ---------------------------------------------------------------------------------------

def flagged_pairs(clean: CleanManifest, manifest: Manifest) -> dict[str, list[str]]:
    """track -> the stems a drop manifest leaves out: per target, those whose song is not in the
    target's list; unified, every stem of a song not kept."""
    stems = list(manifest.stems)
    if clean.per_target:
        lists = {t: set(clean.kept(t)) for t in clean.keep}
        flagged = {track: [s for s in stems if s in lists and track not in lists[s]] for track in manifest.ids}
    else:
        kept = set(clean.kept())
        flagged = {track: ([] if track in kept else stems) for track in manifest.ids}
    return {track: found for track, found in flagged.items() if found}


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def _db(numerator: float, denominator: float, floor: float = 1e-20) -> float:
    return 10 * math.log10(max(numerator, floor) / max(denominator, floor))


@dataclass
class TrackRepair:
    """The repair of one song: the new stems, the stems repaired, the stems that received the
    residual, and every flagged pair's decision with what the check measured."""

    stems: dict[str, np.ndarray]
    repaired: list[str]
    receivers: list[str]
    decisions: list[dict] = field(default_factory=list)


def residual_shares(residual: np.ndarray, errors: list[np.ndarray]) -> np.ndarray:
    """Shares ``w`` (>= 0, summing to 1: the mixture stays whole) of ``residual`` for receivers whose
    labels the model's estimates miss by ``errors`` (estimate − label): those minimising
    ``Σ_r |error_r − w_r residual|²``, the projection of ``<error_r, residual> / |residual|²`` onto
    the simplex (shares under 1e-6, float rounding, cut). No residual: all to the first."""
    norm = _energy(residual)
    if norm == 0:
        return np.eye(len(errors))[0]
    v = np.array([float(np.sum(e * residual)) for e in errors]) / norm
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    k = np.flatnonzero(u > cumulative / np.arange(1, len(v) + 1))[-1]
    shares = np.maximum(v - cumulative[k] / (k + 1), 0.0)
    shares[shares < 1e-6] = 0.0
    return shares / shares.sum()


def label_sdr(label: np.ndarray, estimate: np.ndarray) -> float:
    """SDR of a label against the model's estimate of it, dB: how well they agree."""
    label, estimate = np.asarray(label, dtype=np.float64), np.asarray(estimate, dtype=np.float64)
    return _db(_energy(label), _energy(label - estimate))


def repair_track(labels: dict[str, np.ndarray], estimates: dict[str, np.ndarray], flagged: list[str],
                 settings: RepairSettings, model_sdr: dict[str, float], track_id: str = "",
                 keep: tuple[str, ...] = ()) -> TrackRepair:
    """Decide and compute the repair of one song (pure: no file is read or written). ``model_sdr``:
    per stem, the median :func:`label_sdr` of the labels the method did not flag (the calibration
    of the label test); ``keep``: stems that receive no residual (besides the repaired)."""
    missing = [s for s in flagged if s not in estimates or s not in model_sdr]
    if missing:
        raise ActionError(f"{track_id}: the repair model does not separate {', '.join(missing)}")
    labels = {s: np.asarray(x, dtype=np.float64) for s, x in labels.items()}
    estimates = {s: np.asarray(x, dtype=np.float64) for s, x in estimates.items()}
    agreement = {s: label_sdr(labels[s], estimates[s]) for s in flagged}
    fixable = [s for s in flagged if agreement[s] <= model_sdr[s] - settings.margin]
    mixture = sum(labels.values())
    remix = _db(_energy(mixture), _energy(mixture - sum(estimates[s] for s in labels if s in estimates)))

    def attempt(subset) -> tuple[dict[str, float], float]:
        """(receiver -> its share of the residual, how far the receivers' labels move from the
        model's estimates of them, in dB)."""
        eligible = [s for s in settings.residual if s in labels and s in estimates and s not in subset and s not in keep]
        if not eligible:
            return {}, math.inf
        residual = sum(labels[s] - estimates[s] for s in subset)
        # The receivers may take the model's usual error on the stems they replace (their estimates'
        # energy at the model's calibrated SDR) at no cost: that is no alien content.
        usual = sum(_energy(estimates[s]) * 10 ** (-model_sdr[s] / 10) for s in subset)

        def move(shares: dict[str, float]) -> float:
            # Agreement closer than AGREEMENT_LIMIT_DB counts as that: float rounding is no disagreement.
            floor = sum(_energy(labels[r]) for r in shares) * 10 ** (-AGREEMENT_LIMIT_DB / 10)
            before = max(sum(_energy(estimates[r] - labels[r]) for r in shares), floor) + usual
            after = max(sum(_energy(estimates[r] - labels[r] - w * residual) for r, w in shares.items()), floor)
            return _db(after, before)

        if settings.receiver == "split":
            shares = residual_shares(residual, [estimates[r] - labels[r] for r in eligible])
            shares = {r: w for r, w in zip(eligible, shares) if w > 0}
            return shares, move(shares)
        # order: the first eligible; best: the one whose label moves least (ties: the first)
        moves = [({r: 1.0}, move({r: 1.0})) for r in eligible[:1 if settings.receiver == "order" else None]]
        return min(moves, key=lambda candidate: candidate[1])

    chosen, chosen_shares, chosen_change = (), {}, math.inf
    for size in range(len(fixable), 0, -1):
        passing = []
        for subset in itertools.combinations(fixable, size):
            shares, change = attempt(subset)
            if shares and change <= settings.tolerance:
                passing.append((change, subset, shares))
        if passing:
            chosen_change, chosen, chosen_shares = min(passing, key=lambda p: p[0])
            break

    stems = {s: x.copy() for s, x in labels.items()}
    for s in chosen:
        stems[s] = estimates[s].copy()
    for r, w in chosen_shares.items():
        stems[r] = labels[r] + w * sum(labels[s] - estimates[s] for s in chosen)

    decisions = []
    for s in flagged:
        refused = None
        if s in chosen:
            shares, change, decision = chosen_shares, chosen_change, "repaired"
        else:
            shares, change = attempt((s,))
            decision = "dropped" if settings.fallback == "drop" else "kept"
            refused = "label" if s not in fixable else "receiver"
        decisions.append({
            "track": track_id, "stem": s, "decision": decision, "refused_by": refused,
            "receiver": max(shares, key=shares.get) if shares else None,
            **({"shares": {r: round(w, 3) for r, w in shares.items()}} if settings.receiver == "split" else {}),
            "receiver_change_db": None if not math.isfinite(change) else round(change, 3),
            "label_sdr_db": round(agreement[s], 3), "model_sdr_db": round(model_sdr[s], 3),
            "residual_db": round(_db(_energy(labels[s] - estimates[s]), _energy(labels[s])), 3),
            "remix_sdr_db": round(remix, 3),
        })
    return TrackRepair({s: x.astype(np.float32) for s, x in stems.items()}, list(chosen), list(chosen_shares), decisions)


def relabel_track(labels: dict[str, np.ndarray], estimates: dict[str, np.ndarray], flagged: list[str],
                  settings: RepairSettings, model_sdr: dict[str, float], track_id: str = "") -> TrackRepair:
    """Decide the relabelling of one song (pure; see the module's docstring): the permutation of its
    flagged labels among its stems that the model agrees with best, when every moved label passes."""
    stems = [s for s in labels if s in estimates and s in model_sdr]
    movable = [s for s in flagged if s in stems]
    # Agreement closer than AGREEMENT_LIMIT_DB counts as that, so a perfect model's agreements compare
    # as equal whatever the labels' loudness (float rounding is no disagreement).
    agreement = {(a, b): min(label_sdr(labels[a], estimates[b]), AGREEMENT_LIMIT_DB) for a in movable for b in movable}

    def passes(source: str, target: str) -> bool:
        return (agreement[source, target] >= agreement[source, source] + settings.margin
                and agreement[source, target] >= min(model_sdr[target], AGREEMENT_LIMIT_DB) - settings.margin)

    best, best_gain = {}, 0.0
    for order in itertools.permutations(movable):
        moves = {target: source for source, target in zip(movable, order) if source != target}
        if moves and all(passes(source, target) for target, source in moves.items()):
            gain = sum(agreement[source, target] - agreement[source, source] for target, source in moves.items())
            if gain > best_gain:
                best, best_gain = moves, gain

    decisions = []
    for s in flagged:
        moved = s in best
        decisions.append({
            "track": track_id, "stem": s,
            "decision": "relabelled" if moved else ("dropped" if settings.fallback == "drop" else "kept"),
            "refused_by": None if moved else "relabel", "label_from": best.get(s),
            "label_sdr_db": round(label_sdr(labels[s], estimates[s]), 3) if s in estimates else None,
            "new_label_sdr_db": round(agreement[best[s], s], 3) if moved else None,
            "model_sdr_db": round(model_sdr[s], 3) if s in model_sdr else None,
        })
    stems_out = {s: np.asarray(x, dtype=np.float32).copy() for s, x in labels.items()}
    for target, source in best.items():
        stems_out[target] = np.asarray(labels[source], dtype=np.float32).copy()
    return TrackRepair(stems_out, list(best), [], decisions)


def relabel_then_repair_track(labels: dict[str, np.ndarray], estimates: dict[str, np.ndarray], flagged: list[str],
                              settings: RepairSettings, model_sdr: dict[str, float], track_id: str = "") -> TrackRepair:
    """:func:`relabel_track`, then :func:`repair_track` of the flagged pairs it did not relabel. A
    relabelled stem holds the dataset's own audio back in place: it receives no residual, but under
    ``receiver=order`` (the rule of repairs made before the setting, kept as they were made)."""
    relabelled = relabel_track(labels, estimates, flagged, settings, model_sdr, track_id)
    rest = [s for s in flagged if s not in relabelled.repaired]
    if not rest:
        return relabelled
    keep = () if settings.receiver == "order" else tuple(relabelled.repaired)
    repaired = repair_track(relabelled.stems, estimates, rest, settings, model_sdr, track_id, keep)
    return TrackRepair(repaired.stems, relabelled.repaired + repaired.repaired, repaired.receivers,
                       [d for d in relabelled.decisions if d["decision"] == "relabelled"] + repaired.decisions)


DECIDE = {"repair": repair_track, "relabel": relabel_track, "relabel+repair": relabel_then_repair_track}
CHANGED = {"repair": ("repaired",), "relabel": ("relabelled",), "relabel+repair": ("relabelled", "repaired")}
"""The decisions that change a pair's label, per action."""


Separate = Callable[[Track, np.ndarray], dict[str, np.ndarray]]
"""(track, its mixture as (channels, frames) float32) -> stem -> estimate of the same shape."""


def repair_manifest(drop: CleanManifest, manifest: Manifest, separate: Separate, settings: RepairSettings,
                    folder: Path, model: dict, action: str = "repair") -> CleanManifest:
    """The version-2 clean manifest that repairs (or relabels: ``action``) the pairs ``drop`` leaves
    out (see the module's docstring), its audio written under ``folder/audio``; write it as
    ``folder/clean.json``.

    ``separate`` separates a song's mixture with the model; ``model`` describes that model
    (recorded)."""
    from sepclean.files import atomic_file
    from sepclean.scan import content_hash

    if action not in MODEL_ACTIONS:
        raise ActionError(f"{action!r} is no action with a model (those are {', '.join(MODEL_ACTIONS)})")
    decide = DECIDE[action]
    if drop.action != "drop":
        raise ActionError(f"{action} starts from the pairs a drop manifest leaves out, not from a {drop.action!r} one")
    for target in (list(drop.keep) if drop.per_target else [None]):
        drop.check(manifest, target)
    stems = list(manifest.stems)
    unknown = [s for s in settings.residual if s not in stems]
    if unknown:
        raise ActionError(f"repair.residual names {', '.join(unknown)}, which the dataset does not have "
                          f"(it has {', '.join(stems)})")
    folder = Path(folder)
    flagged = flagged_pairs(drop, manifest)
    keep = {s: set(drop.kept(s) if drop.per_target else drop.kept()) for s in stems}

    def separated(track: Track) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        labels = {s: track.read(s) for s in stems}
        return labels, separate(track, np.sum([labels[s] for s in stems], axis=0, dtype=np.float32))

    # The label test's calibration: how well the model agrees with labels the method did not flag.
    calibration = [t for t in manifest.ids if t not in flagged][:CALIBRATION_SONGS]
    if not calibration:
        raise ActionError("every song has a flagged stem: no unflagged song to calibrate the repair check with")
    agreement: dict[str, list[float]] = {s: [] for s in stems}
    for track_id in calibration:
        labels, estimates = separated(manifest[track_id])
        for s in stems:
            if s in estimates:
                agreement[s].append(label_sdr(labels[s], estimates[s]))
    model_sdr = {s: float(np.median(v)) for s, v in agreement.items() if v}
    logger.info(f"[{action}] the model's median SDR against unflagged labels ({len(calibration)} songs): "
                + ", ".join(f"{s} {v:.1f} dB" for s, v in model_sdr.items()))

    replace, decisions = {}, []
    for n, (track_id, pairs) in enumerate(flagged.items(), 1):
        track = manifest[track_id]
        labels, estimates = separated(track)
        result = decide(labels, estimates, pairs, settings, model_sdr, track_id)
        decisions += result.decisions
        changed = result.repaired + result.receivers
        for stem in changed:
            relative = f"audio/{track_id}/{track.path(stem).name}"
            with atomic_file(folder / relative) as tmp:
                audio.write(tmp, result.stems[stem], track.sample_rate)
            replace.setdefault(track_id, {})[stem] = {
                "path": relative,
                "hash": content_hash([folder / relative], track.sample_rate, track.channels, track.frames)}
        for decision in result.decisions:
            if decision["decision"] != "dropped":
                keep[decision["stem"]].add(track_id)
        logger.info(f"[{action}] {n}/{len(flagged)} {track_id}: "
                    + ", ".join(f"{d['stem']} {d['decision']}" for d in result.decisions))
    counts = {d: sum(x["decision"] == d for x in decisions) for d in (*CHANGED[action], "dropped", "kept")}
    return CleanManifest(
        keep={s: [t for t in manifest.ids if t in keep[s]] for s in stems},
        dataset_hash=drop.dataset_hash, dataset_tracks=drop.dataset_tracks, mode=drop.mode, ratio=drop.ratio,
        methods=list(drop.methods), action=action, replace=replace, location=folder.resolve(),
        extra={**{k: v for k, v in drop.extra.items() if k not in MODEL_ACTIONS},
               action: {"model": model, **settings.to_dict(), "model_sdr_db": model_sdr,
                          "calibration_songs": calibration, "counts": counts, "decisions": decisions}})


def repair_with_model(drop: CleanManifest, manifest: Manifest, toolkit: str, checkpoint: Path, settings: RepairSettings,
                      folder: Path, device: str = "cpu", action: str = "repair") -> CleanManifest:
    """:func:`repair_manifest` with pseudo-labels separated by a trained model of a toolkit (its
    adapter's ``load`` and ``separate``: every unit the checkpoint holds), written as
    ``folder/clean.json``. What ``sepclean repair`` and the pipeline's repair stage run."""
    from sepclean import toolkit as toolkits

    adapter = toolkits.get(toolkit)
    models = {unit: adapter.load(checkpoint, unit, device) for unit in adapter.checkpoint_units(checkpoint)}
    repaired = repair_manifest(drop, manifest, lambda track, mixture: adapter.separate(models, mixture, track.sample_rate),
                               settings, folder, {"toolkit": toolkit, "checkpoint": str(checkpoint)},
                               action=action)
    repaired.write(Path(folder) / "clean.json")
    return repaired
