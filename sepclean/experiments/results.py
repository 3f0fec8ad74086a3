"""From XP metrics to the table a researcher reads: which cleaning helped which model, by how much,
and how sure we are.

Rows are conditions (architecture, method, ratio, mode, and the data and model variant when a grid
varies them); seeds are replicates. For each condition:
the mean and standard deviation over seeds of every SDR, and against ``dirty`` of the same
architecture, the *paired* difference (seed s of the method minus seed s of dirty: the seed fixes
the data order and initialisation of both), its 95% t-interval, and the share of the dirty →
clean-twin gap the condition closes. A condition with more than plain cleaning (an action beyond
drop, rounds, robust training) is also paired with the same method dropping once with plain
training, where the grid ran that: what the extra adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

import sepclean
from sepclean.clean_manifest import MODEL_ACTIONS
from sepclean.errors import PipelineError

DIRTY, CLEAN = "dirty", "clean_twin"
DEFAULT_DATA = {"preset": "mixed23", "severity": "heavy"}
"""The synthetic data a condition names only when it differs (``dirty on heldout``)."""


@dataclass(frozen=True)
class Condition:
    arch: str
    method: str
    ratio: float | str | None
    mode: str | None
    robust: str | None = None
    """The robust training of the retraining (``RobustLoss.label``); None: plain training."""
    rounds: int = 1
    """Rounds of scoring and filtering (``Experiment.cleaning``)."""
    variant: str | None = None
    """The data the XP trained and was tested on, where it is not the default: the synthetic preset
    and severity (``heldout``). Two XPs of one grid on different data are different rows, never
    seeds of one. (The architecture's overrides are not named: most grids set them for every XP.)"""
    action: str = "drop"
    """What is done with the flagged pairs (``sepclean.actions``): drop, weight, repair, relabel, relabel+repair."""
    receiver: str | None = None
    """``repair.receiver`` of a repairing action where it is not ``order`` (the rule of every repair
    made before the setting); None otherwise."""
    repair_model: str | None = None
    """``repair.model`` of a repairing or relabelling action where it is not ``reference`` (the model
    of every such grid before self-refining): ``baseline``, or a checkpoint path; None otherwise."""
    fused: str | None = None
    """The components of a ``fusion``, ``mlp + attribute`` (a component's own settings, or a table's
    path, named as given); None for other methods."""

    @classmethod
    def of(cls, cfg: dict) -> "Condition":
        from sepclean.pipeline.experiment import CONTROLS
        from sepclean.robust import RobustLoss

        control = cfg["method"] in CONTROLS
        robust = RobustLoss.of(cfg.get("robust"))
        return cls(cfg["arch"], cfg["method"], None if control else cfg["ratio"], None if control else cfg["mode"],
                   robust.label() if robust else None, 1 if control else int(cfg.get("rounds") or 1), _variant(cfg),
                   "drop" if control else (cfg.get("action") or "drop"), _receiver(cfg, control),
                   _repair_model(cfg, control), _fused(cfg))

    @property
    def name(self) -> str:
        """The method, with its action, rounds and robust training when it has them, and the variant
        it ran on: ``mlp, repair``, ``loss, 2 rounds``, ``dirty + truncate 0.25``, ``dirty on heldout``."""
        return (self.method + (f" of {self.fused}" if self.fused else "")
                + (f", {self.action}" if self.action != "drop" else "")
                + (f" ({self.receiver} receiver)" if self.receiver else "")
                + (f" ({self.repair_model} model)" if self.repair_model else "")
                + (f", {self.rounds} rounds" if self.rounds > 1 else "")
                + (f" + {self.robust}" if self.robust else "") + (f" on {self.variant}" if self.variant else ""))

    def control(self, method: str) -> "Condition":
        """The control ``method`` (dirty, clean twin) this condition is compared with: same
        architecture, same data, plain training, nothing flagged (so action drop)."""
        return replace(self, method=method, ratio=None, mode=None, robust=None, rounds=1, action="drop", receiver=None,
                       repair_model=None, fused=None)

    def plain(self) -> "Condition | None":
        """What an action beyond drop, rounds or robust training add to is measured against: the same
        method at the same ratio and mode on the same data, dropping what it flags, once, with plain
        training. None where the condition is that already, or where that is dirty (``Δ dirty``)."""
        plain = replace(self, action="drop", receiver=None, repair_model=None, rounds=1, robust=None)
        return None if plain in (self, self.control(DIRTY)) else plain


def _receiver(cfg, control: bool) -> str | None:
    """None where the rule is ``order``: the pipeline's config names it (``repair.receiver: order``),
    and configs from before the setting name none."""
    receiver = (cfg.get("repair") or {}).get("receiver")
    repairs = not control and cfg.get("action") in ("repair", "relabel+repair")
    return receiver if repairs and receiver not in (None, "order") else None


def _repair_model(cfg, control: bool) -> str | None:
    """None where no model makes labels, or where it is the reference model."""
    model = (cfg.get("repair") or {}).get("model")
    acts = not control and cfg.get("action") in MODEL_ACTIONS
    return str(model) if acts and model not in (None, "reference") else None


def _fused(cfg) -> str | None:
    if cfg["method"] != "fusion":
        return None
    fusion = (cfg.get("scoring") or {}).get("fusion") or {}
    methods, weights = fusion.get("methods") or [], fusion.get("weights")

    def named(component) -> str:
        if not isinstance(component, dict):
            return str(component)
        settings = ", ".join(f"{k}={v}" for k, v in component.items() if k != "method")
        return component["method"] + (f" ({settings})" if settings else "")

    return " + ".join(map(named, methods)) + (f", weights {list(weights)}" if weights else "")


def _variant(cfg) -> str | None:
    parts = []
    data = cfg.get("data") or {}
    if not any((data.get("roots") or {}).values()):
        synth = data.get("synth") or {}
        parts += [str(synth[k]) for k, default in DEFAULT_DATA.items() if synth.get(k) not in (None, default)]
    return ", ".join(parts) or None


@dataclass
class Row:
    condition: Condition
    seeds: dict[int, dict] = field(default_factory=dict)
    """seed -> that XP's metrics."""


def group(runs: list[tuple[dict, dict]]) -> dict[Condition, Row]:
    """``(config, metrics)`` of finished XPs -> one row per condition."""
    rows: dict[Condition, Row] = {}
    for cfg, metrics in runs:
        condition = Condition.of(cfg)
        row = rows.setdefault(condition, Row(condition))
        seed = int(cfg["seed"])
        if seed in row.seeds:
            raise PipelineError(f"two XPs are seed {seed} of condition {condition.arch} {condition.name} "
                                f"{condition.ratio or ''} {condition.mode or ''}: they differ in a setting the "
                                "table does not name, so neither can stand for the other")
        row.seeds[seed] = metrics
    return rows


def run_problem(cfg: dict, metrics: dict) -> str | None:
    """What of an XP's record (config, metrics) the tables cannot read, or None: they need its
    architecture, condition and seed, and SDRs that are numbers (NaN too: a failed evaluation)."""
    for key in ("arch", "method"):
        if not isinstance(cfg.get(key), str):
            return f"config {key}={cfg.get(key)!r} is not a name"
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        return f"config seed={cfg.get('seed')!r} is not a whole number"
    sdr = metrics.get("sdr")
    if not isinstance(sdr, dict) or "avg" not in sdr:
        return f"sdr={sdr!r} is not a mapping of target to SDR with 'avg'"
    for target, value in sdr.items():
        if not (_is_number(value) or (value is None and target != "avg")):
            return f"sdr.{target}={value!r} is not a number"
    for key in ("kept", "removed_contaminated", "auroc"):
        if not (metrics.get(key) is None or _is_number(metrics[key])):
            return f"{key}={metrics[key]!r} is not a number"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_std(values) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def paired(method: dict[int, float], baseline: dict[int, float], level: float = 0.95) -> dict:
    """Mean paired difference over the seeds both have, its t-interval and two-sided p-value."""
    seeds = sorted(set(method) & set(baseline))
    diffs = np.array([method[s] - baseline[s] for s in seeds], dtype=np.float64)
    out = {"n": len(seeds), "delta": float(diffs.mean()) if len(diffs) else math.nan, "low": math.nan,
           "high": math.nan, "p": math.nan}
    if len(diffs) > 1:
        sem = diffs.std(ddof=1) / math.sqrt(len(diffs))
        half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * sem
        out.update(low=out["delta"] - half, high=out["delta"] + half)
        out["p"] = float(stats.ttest_1samp(diffs, 0.0).pvalue) if sem > 0 else (0.0 if out["delta"] else 1.0)
    return out


def gap_share(method: dict[int, float], dirty: dict[int, float], clean: dict[int, float], level: float = 0.95) -> dict:
    """The share of the dirty → clean-twin gap a condition closes, (method − dirty) / (clean − dirty)
    over the seeds all three have, with Fieller's interval for a ratio of paired means: the shares ρ
    for which mean(a − ρ·b) = 0 is not rejected by a t-test, a and b the seeds' two differences. The
    interval is bounded only where the gap itself is clearly above zero (its own t-test); otherwise
    (low, high) are NaN: no share is a figure there."""
    seeds = sorted(set(method) & set(dirty) & set(clean))
    a = np.array([method[s] - dirty[s] for s in seeds], dtype=np.float64)
    b = np.array([clean[s] - dirty[s] for s in seeds], dtype=np.float64)
    out = {"n": len(seeds), "share": math.nan, "low": math.nan, "high": math.nan}
    if len(seeds) < 2 or b.mean() <= 0:
        return out
    out["share"] = float(a.mean() / b.mean())
    t2 = stats.t.ppf(0.5 + level / 2, len(seeds) - 1) ** 2
    (v_aa, v_ab), (_, v_bb) = np.cov(a, b, ddof=1) / len(seeds)
    # (ā − ρ b̄)² ≤ t² var(ā − ρ b̄), a quadratic in ρ: A ρ² + B ρ + C ≤ 0.
    A = b.mean() ** 2 - t2 * v_bb
    B = -2 * (a.mean() * b.mean() - t2 * v_ab)
    C = a.mean() ** 2 - t2 * v_aa
    if A > 0:
        root = math.sqrt(max(B * B - 4 * A * C, 0.0))
        out.update(low=(-B - root) / (2 * A), high=(-B + root) / (2 * A))
    return out


def summarise(runs: list[tuple[dict, dict]]) -> list[dict]:
    """One flat dict per condition, in the order the conditions first appear."""
    rows = group(runs)
    out = []
    for condition, row in rows.items():
        sdr = {t: {s: m["sdr"].get(t) for s, m in row.seeds.items() if m["sdr"].get(t) is not None}
               for t in [*sepclean.STEMS, "avg"]}
        line = {"arch": condition.arch, "method": condition.method, "ratio": condition.ratio,
                "mode": condition.mode, "robust": condition.robust, "rounds": condition.rounds, "variant": condition.variant,
                "action": condition.action, "receiver": condition.receiver, "repair_model": condition.repair_model,
                "name": condition.name, "seeds": len(row.seeds)}
        for key in ("kept", "removed_contaminated", "auroc"):
            line[key] = mean_std(m.get(key) for m in row.seeds.values())[0]
        line["converged"] = all(m.get("converged", True) for m in row.seeds.values())
        for target, values in sdr.items():
            line[f"sdr_{target}"], line[f"sdr_{target}_std"] = mean_std(values.values())
        dirty = rows.get(condition.control(DIRTY))
        clean = rows.get(condition.control(CLEAN))
        if dirty is not None and condition != dirty.condition:
            dirty_avg = {s: m["sdr"]["avg"] for s, m in dirty.seeds.items()}
            test = paired(sdr["avg"], dirty_avg)
            line.update(delta=test["delta"], delta_low=test["low"], delta_high=test["high"], p=test["p"])
            if clean is not None:
                gap = mean_std(m["sdr"]["avg"] for m in clean.seeds.values())[0] - mean_std(dirty_avg.values())[0]
                # A share of a gap exists only where the clean twin is above dirty: where the
                # contamination did not hurt (heldout, here), a share is no figure.
                line["gap_closed"] = (line["sdr_avg"] - mean_std(dirty_avg.values())[0]) / gap if gap > 0 else math.nan
                if condition != clean.condition:  # the clean twin's own share is 100% by definition
                    share = gap_share(sdr["avg"], dirty_avg, {s: m["sdr"]["avg"] for s, m in clean.seeds.items()})
                    line.update(gap_low=share["low"], gap_high=share["high"])
        plain = rows.get(condition.plain())
        if plain is not None:
            test = paired(sdr["avg"], {s: m["sdr"]["avg"] for s, m in plain.seeds.items()})
            line.update(vs_plain=test["delta"], vs_plain_low=test["low"], vs_plain_high=test["high"])
        out.append(line)
    return out


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _gap_cell(row: dict) -> str:
    share = _cell(row.get("gap_closed"), ".0%")
    if share != "-" and math.isfinite(row.get("gap_low", math.nan)):
        share += f" [{row['gap_low']:.0%}, {row['gap_high']:.0%}]"
    return share


def interval(row: dict, key: str) -> str:
    """``+0.40 [+0.30, +0.50]`` for a paired difference ``key`` of a summary row, ``-`` where none."""
    if not math.isfinite(row.get(key, math.nan)):
        return "-"
    return f"{row[key]:+.2f} [{_cell(row[f'{key}_low'], '+.2f')}, {_cell(row[f'{key}_high'], '+.2f')}]"


def markdown(summary: list[dict]) -> str:
    """The condition table as Markdown: SDR as mean ± std over seeds, Δ against dirty with its 95% CI,
    and Δ against the same method's plain drop (:meth:`Condition.plain`)."""
    header = ["arch", "method", "ratio", "mode", "seeds", "kept", "bad out", "AUROC",
              *[f"SDR {t}" for t in sepclean.STEMS], "SDR avg", "Δ dirty [95% CI]", "p", "gap closed [95% CI]",
              "Δ plain drop [95% CI]", "converged"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * (len(header) - 5) + [":---:"]) + "|"]
    for row in summary:
        sdrs = [f"{_cell(row[f'sdr_{t}'], '.2f')} ± {_cell(row[f'sdr_{t}_std'], '.2f')}" if math.isfinite(row[f"sdr_{t}"])
                else "-" for t in [*sepclean.STEMS, "avg"]]
        cells = [row["arch"], row.get("name", row["method"]), _cell(row["ratio"], ""), row["mode"] or "-", str(row["seeds"]),
                 _cell(row["kept"], ".1f"), _cell(row["removed_contaminated"], ".1f"), _cell(row["auroc"], ".2f"),
                 *sdrs, interval(row, "delta"), _cell(row.get("p"), ".3f"), _gap_cell(row), interval(row, "vs_plain"),
                 "yes" if row["converged"] else "NO (best epoch = last)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
