"""One XP's settings, checked before any work: every problem that can be seen without data.

The dora main checks its XP before the data stage (minutes on real data), and ``sepclean grid``
checks every XP of a grid before it launches the first. A problem is a ``PipelineError`` naming the
setting as an override would write it (``ratio=banana: ...``, ``archs.openunmix.epochs=-1: ...``).
"""

from __future__ import annotations

import dataclasses
import functools
import math

from sepclean import toolkit as toolkits
from sepclean.clean_manifest import MODEL_ACTIONS
from sepclean.errors import PipelineError, SepcleanError
from sepclean.pipeline.experiment import CONTROLS, MODES, check_action, create_scorer, matched_ratio, overrides
from sepclean.robust import RobustLoss

REAL_SPLITS = ("train", "valid", "reference", "test")
"""The splits ``data.roots`` needs (``train_clean`` is optional)."""


def check(cfg: dict) -> None:
    """Raise a ``PipelineError`` naming the first setting of ``cfg`` (the dora main's config, as
    plain values) that cannot work."""
    archs = cfg.get("archs") or {}
    _choice("arch", cfg.get("arch"), archs, noun="architecture")
    _whole("seed", cfg.get("seed"), 0)
    method = cfg.get("method")
    used = [cfg["arch"]]
    if method not in CONTROLS:
        from sepclean.scorers import names

        _choice("method", method, [*CONTROLS, *names()], noun="cleaning condition")
        baseline = (cfg.get("scoring") or {}).get("baseline")
        _choice("scoring.baseline", baseline, archs, noun="architecture")
        used.append(baseline)
        _choice("mode", cfg.get("mode"), MODES)
        _ratio(cfg.get("ratio"))
        for name in {method, *(m[0] for m in [matched_ratio(cfg.get("ratio"))] if m)}:
            _named(f"scoring.{name}", lambda: create_scorer(cfg, name))
    rounds = 1 if cfg.get("rounds") is None else cfg.get("rounds")
    _whole("rounds", rounds, 1)
    if rounds > 1 and method not in CONTROLS:
        name = matched_ratio(cfg.get("ratio"))[0] if matched_ratio(cfg.get("ratio")) else method
        if not create_scorer(cfg, name).needs_baseline:  # as Experiment.rounds refuses it, before any work
            raise PipelineError(f"rounds={rounds}: {name} scores without a model, so every round would score the "
                                "same; rounds re-score with the model the round before trained (attribute, loss, "
                                "refloss scoring=reducible|ratio, refsdr model=baseline, fusion of them)")
    robust = cfg.get("robust")
    if robust is not None and not isinstance(robust, dict):
        raise PipelineError(f"robust={robust}: a block of truncate, mask, warmup, relative (e.g. robust.truncate=0.2)")
    _named("robust", lambda: RobustLoss.of(robust))
    action, _ = check_action(cfg)  # drop, weight, or repair and relabel (with a model and an architecture)
    if action in MODEL_ACTIONS:
        used.append((cfg.get("repair") or {}).get("arch") or cfg["scoring"]["baseline"])
    for arch in dict.fromkeys(used):
        _arch(arch, archs[arch])
    _data(cfg.get("data") or {})
    workers = (cfg.get("evaluate") or {}).get("workers")
    if workers is not None:
        _whole("evaluate.workers", workers, 1)


def _arch(name: str, settings: dict) -> None:
    key = f"archs.{name}"
    if not isinstance(settings, dict):
        raise PipelineError(f"{key}: a mapping of toolkit, preset, targets, epochs, epoch_updates, overrides; "
                            f"got {settings!r}")
    toolkit = _named(f"{key}.toolkit", lambda: _toolkit(settings.get("toolkit")))
    targets = settings.get("targets")
    if targets is not None:
        if (not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets)
                or len(set(targets)) < len(targets)):
            raise PipelineError(f"{key}.targets={targets!r}: a list of distinct target names, or empty for all")
        _named(f"{key}.targets", lambda: toolkit.units(targets))
    _whole(f"{key}.epochs", settings.get("epochs"), 1)
    if settings.get("epoch_updates") is not None:
        _whole(f"{key}.epoch_updates", settings["epoch_updates"], 1)
    _named(f"{key}.overrides", lambda: overrides(settings.get("overrides")))


@functools.lru_cache(maxsize=None)
def _toolkit(name):
    return toolkits.get(name)  # reads the entry points: a grid checks hundreds of XPs


def _data(data: dict) -> None:
    roots = {split: list(rs or []) for split, rs in (data.get("roots") or {}).items()}
    if any(roots.values()):
        missing = [s for s in REAL_SPLITS if not roots.get(s)]
        if missing:
            raise PipelineError(f"data.roots needs roots for {', '.join(missing)} (or none at all: synthetic data)")
        from pathlib import Path

        for split, split_roots in roots.items():
            for root in split_roots:
                if not Path(root).expanduser().is_dir():
                    raise PipelineError(f"data.roots.{split}: {root} is not a folder")
        return
    from sepclean.synth.contamination import PRESETS, SEVERITIES
    from sepclean.synth.dataset import PROFILES, Profile

    synth = data.get("synth") or {}
    _choice("data.synth.preset", synth.get("preset"), PRESETS)
    _choice("data.synth.profile", synth.get("profile"), PROFILES)
    _choice("data.synth.severity", synth.get("severity"), SEVERITIES)
    fraction = synth.get("contaminated_fraction")
    if fraction is not None and not (_number(fraction) and 0 <= fraction <= 1):
        raise PipelineError(f"data.synth.contaminated_fraction={fraction!r}: a fraction in [0, 1], or empty for "
                            "the preset's own")
    _whole("data.synth.seed", synth.get("seed"), 0)
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name", "sample_rate"}
    for split, size in (synth.get("sizes") or {}).items():
        key = f"data.synth.sizes.{split}"
        if split not in fields:
            raise PipelineError(f"{key}: no such size (known: {', '.join(sorted(fields))})")
        if size is None:
            continue
        if split == "duration":
            if not (_number(size) and size > 0):
                raise PipelineError(f"{key}={size!r}: seconds a song, > 0")
        else:
            _whole(key, size, 1)


def _ratio(ratio) -> None:
    expected = "a fraction of the songs kept in (0, 1], auto, or OTHER@RATIO (e.g. fad@auto)"
    if ratio == "auto" or (_number(ratio) and 0 < ratio <= 1):
        return
    if isinstance(ratio, str) and "@" in ratio:
        from sepclean.scorers import names

        other, at = _named("ratio", lambda: matched_ratio(ratio))
        _choice("ratio", other, names(), f"ratio={ratio}: {other!r} is no scoring method")
        if at == "auto" or 0 < at <= 1:
            return
    raise PipelineError(f"ratio={ratio}: {expected}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(key: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PipelineError(f"{key}={value}: a whole number >= {minimum}")


def _choice(key: str, value, choices, message: str | None = None, noun: str | None = None) -> None:
    if not isinstance(value, str) or value not in choices:
        noun = noun or key.rsplit(".", 1)[-1]
        raise PipelineError(message or f"{key}={value}: unknown {noun} (known: {', '.join(map(str, choices))})")


def _named(key: str, make):
    """``make()``, a SepcleanError it raises prefixed with ``key`` (unless it already names it)."""
    try:
        return make()
    except SepcleanError as e:
        message = str(e)
        raise PipelineError(message if message.startswith(key) else f"{key}: {message}") from None
