"""``sepclean report``: a grid's results as a page to look at rather than tables to read.

From the grid's finished XPs (read through dora, or from the ``summary.json`` that ``sepclean grid``
writes) it writes, into one folder:

``report.md``     the condition table, then the figures and the removed-songs tables (PNG files
                  beside it, referenced by relative path)
``report.html``   the same as one self-contained page: the figures are embedded (base64), so the
                  file can be mailed or attached alone and still shows everything
``*.png``         SDR against the ratio kept (average, and per target), score histograms of clean
                  vs contaminated songs, ROC curves

The scores tables, clean manifests and ground truth are found through the ``artifacts`` each XP's
metrics name. What cannot be drawn (no ground truth, one ratio only, XPs recorded before their
metrics named artifacts) is said in the report; a recorded artifact that cannot be read is a
problem, listed in the report and returned to the caller (the command then exits 1).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import sepclean
from sepclean.errors import SepcleanError, writing
from sepclean.experiments import plots, results
from sepclean.files import atomic_write, read_json
from sepclean.pipeline.experiment import CONTROLS

SUMMARY_FILE = "summary.json"
PLOT_FILES = ("gains.png", "sdr_avg.png", "sdr_per_target.png", "score_histograms.png", "roc.png")
"""Every figure a report may draw; those a new report does not draw are removed from its folder."""


class ReportError(SepcleanError):
    """No results to report: a missing or malformed summary, an unknown grid, no finished XP."""


@dataclass
class Results:
    name: str
    """The grid's name (or the summary's path when it does not say)."""
    source: str
    runs: list[tuple[dict, dict]]
    """(config, metrics) of every finished XP."""
    missing: str | None = None
    """Read from a grid: which of its XPs have no result, and why (``local_grid.without_result``)."""


def load(source: str) -> Results:
    """A grid's finished XPs, from a grid name (read as ``sepclean grid NAME --table`` reads it) or
    a ``summary.json`` (or the folder holding one)."""
    path = Path(source)
    if path.is_dir():
        if not (path / SUMMARY_FILE).is_file():
            raise ReportError(f"{path}: a folder without {SUMMARY_FILE} (give a grid name or a grid's summary.json)")
        path = path / SUMMARY_FILE
    missing = None
    if path.is_file():
        name, runs = _read_summary(path)
        source = str(path)
    elif "/" in source or source.endswith(".json"):
        raise ReportError(f"{source}: no such file (give a grid name or a grid's summary.json)")
    else:
        from sepclean.experiments.local_grid import GridRun, without_result, xps

        sheeps = xps(source)  # an unknown grid raises PipelineError
        name, runs, missing = source, GridRun(source, sheeps).runs(), without_result(source, sheeps)
    if not runs:
        raise ReportError(f"{source}: no finished XP to report (run the grid first: sepclean grid {name})"
                          + (f"; {missing}" if missing else ""))
    return Results(name, source, runs, missing)


def _read_summary(path: Path) -> tuple[str, list[tuple[dict, dict]]]:
    summary = read_json(path, ReportError)
    xps = summary.get("xps") if isinstance(summary, dict) else None
    if not isinstance(xps, list) or not all(isinstance(x, dict) and isinstance(x.get("config"), dict)
                                            and isinstance(x.get("metrics"), dict) for x in xps):
        raise ReportError(f"{path}: not a grid summary (needs 'xps': a list of {{config, metrics}}, "
                          "as sepclean grid writes it)")
    for number, xp in enumerate(xps, 1):
        problem = results.run_problem(xp["config"], xp["metrics"])
        if problem:
            raise ReportError(f"{path}: XP {number} of {len(xps)} is damaged: {problem}")
    return summary.get("grid") or str(path), [(x["config"], x["metrics"]) for x in xps]


# --- the document: a few kinds of block, rendered as Markdown and as HTML -----------------------

@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    file: str
    caption: str


@dataclass
class Written:
    folder: Path
    markdown: Path
    html: Path
    plots: list[Path]
    problems: list[str]
    """Recorded artifacts that could not be read (the report says what it left out because of them)."""
    no_sdr: str | None = None
    """Why nothing can be compared when no XP has a finite SDR (then the command exits 1)."""


def _located(cfg: dict, artifacts: dict) -> dict:
    """An XP's artifact paths as they are now: recorded relative to its artifact store (so that a
    moved or copied store reads its own), or absolute (XPs recorded before that)."""
    from sepclean.train import store_root

    root = store_root(cfg)
    return {k: v if v is None or Path(v).is_absolute() else str((root / v).resolve()) for k, v in artifacts.items()}


@dataclass
class _Reader:
    """Reads the files XP metrics name, once each; what cannot be read becomes a problem."""

    problems: list[str] = field(default_factory=list)
    _cache: dict = field(default_factory=dict)

    def _once(self, kind: str, path: str, read):
        if (kind, path) not in self._cache:
            try:
                self._cache[(kind, path)] = read(Path(path))
            except SepcleanError as e:
                self.problems.append(f"{kind} {path} cannot be read: {e}")
                self._cache[(kind, path)] = None
        return self._cache[(kind, path)]

    def scores(self, path: str):
        from sepclean.scores import ScoreTable

        return self._once("scores table", path, ScoreTable.read)

    def clean(self, path: str):
        from sepclean.clean_manifest import CleanManifest

        return self._once("clean manifest", path, CleanManifest.load)

    def truth(self, data: str | None) -> dict | None:
        """The data's ground truth; None for data without any (real datasets)."""
        from sepclean.detection import load_contamination

        if data is None:
            return None
        if not Path(data).is_dir():
            return self._once("data folder", data, _missing)
        file = Path(data) / "contamination.json"
        return self._once("ground truth", str(file), load_contamination) if file.is_file() else None

    def pool(self, data: str | None) -> list[str] | None:
        """The ids of the training pool (the dataset a clean manifest filters)."""
        from sepclean.manifest import Manifest

        if data is None:
            return None
        path = Path(data) / "manifests" / "train.jsonl"
        return self._once("train manifest", str(path), lambda p: Manifest.load(p).ids)


def _missing(path: Path):
    raise SepcleanError("no such folder (moved or deleted?)")


def write(source: str, folder) -> Written:
    """Write the report of ``source`` (a grid name or a summary.json) into ``folder``."""
    found = load(source)
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return _Report(found, folder).write()


class _Report:
    def __init__(self, found: Results, folder: Path):
        self.found, self.folder = found, folder
        self.runs = found.runs
        self.reader = _Reader()
        self.limits: list[str] = [found.missing] if found.missing else []
        self.plots: list[Path] = []

    def write(self) -> Written:
        self.named = self._artifacts()
        self.no_sdr = self._check_sdr()
        body = [*self._conditions(), *self._gains(), *self._sdr(), *self._scores(), *self._removed()]
        head = [Heading(f"sepclean report: grid {self.found.name}", 1), Text(self._overview())]
        if self.reader.problems:
            head += [Heading("Problems: recorded files that could not be read"),
                     Text("What needs them is left out below; the rest is drawn."), Bullets(self.reader.problems)]
        if self.limits:
            head += [Heading("What cannot be drawn from these results"), Bullets(self.limits)]
        blocks = head + body
        for name in PLOT_FILES:
            if self.folder / name not in self.plots:
                (self.folder / name).unlink(missing_ok=True)  # a stale figure of an earlier report
        md, page = self.folder / "report.md", self.folder / "report.html"
        atomic_write(md, to_markdown(blocks))
        atomic_write(page, to_html(blocks, self.folder, f"sepclean report: {self.found.name}"))
        return Written(self.folder, md, page, list(self.plots), list(self.reader.problems), self.no_sdr)

    def _check_sdr(self) -> str | None:
        """XPs without a finite SDR are said under what cannot be drawn; when no XP has one, that is
        what the report is about (returned: the command exits 1)."""
        missing = [f"{results.Condition.of(cfg).name} {cfg['arch']} seed {cfg['seed']}" for cfg, m in self.runs
                   if not any(plots.finite(v) for v in (m.get("sdr") or {}).values())]
        if not missing:
            return None
        if len(missing) < len(self.runs):
            self.limits.append(f"{len(missing)} of {len(self.runs)} XPs have no finite SDR (NaN): "
                               f"{', '.join(missing)}; they are blank in the table and the figures.")
            return None
        reason = (f"no XP has a finite SDR: all {len(self.runs)} XPs' SDRs are NaN (silent or missing test "
                  "stems, or a failed evaluation); nothing can be compared or drawn")
        self.limits.append(reason[0].upper() + reason[1:] + ".")
        return reason

    def _overview(self) -> str:
        configs = [cfg for cfg, _ in self.runs]
        seeds = sorted({int(c["seed"]) for c in configs})
        return (f"Source: `{self.found.source}`. {len(self.runs)} finished XPs: architectures "
                f"{', '.join(sorted({c['arch'] for c in configs}))}; conditions "
                f"{', '.join(sorted({c['method'] for c in configs}))}; seeds {', '.join(map(str, seeds))}.")

    def _plot(self, draw, name: str, *args, **kwargs) -> Path:
        path = self.folder / name
        with writing(path):
            draw(*args, path=path, **kwargs)
        self.plots.append(path)
        return path

    # --- sections ---------------------------------------------------------------------------------

    def _conditions(self) -> list:
        self.summary = results.summarise(self.runs)
        return [Heading("Conditions"),
                Text("One row per condition; seeds are replicates. SDR (dB, museval median over test songs) "
                     "as mean ± standard deviation over seeds; Δ dirty: the mean paired difference of average "
                     "SDR with the dirty model of the same architecture and seed, with its 95% t-interval and "
                     "p-value; gap closed: the share of the dirty → clean-twin gap [Fieller's 95% interval]. kept: songs trained on; "
                     "bad out: contaminated songs removed; AUROC: how well the scores find the contaminated "
                     "songs (0.5 is chance)."),
                _pipe_table(results.markdown(self.summary))]

    def _gains(self) -> list:
        blocks = [Heading("Gains over dirty training")]
        if self.no_sdr:
            return blocks + [Text("Not drawn: every SDR is NaN.")]
        rows = [r for r in self.summary if plots.finite(r.get("delta"))]
        if not rows:
            self.limits.append("No condition has a dirty XP of the same architecture and seed: no gains figure.")
            return blocks + [Text("Not drawn: no condition has a paired dirty XP.")]
        archs = sorted({r["arch"] for r in rows})
        self._plot(plots.gains, "gains.png", self.summary, archs, title=f"Gains over dirty ({self.found.name})")
        return blocks + [Image("gains.png", "Each condition's mean paired difference in average SDR from the dirty "
                                            "model of the same architecture and seed, with its 95% t-interval "
                                            "(none with one seed). Coloured: the interval excludes zero (green "
                                            "above, red below); grey: it does not. Dotted: the clean twin, where "
                                            "the gap ends.")]

    def _sdr(self) -> list:
        rows = self.summary
        blocks = [Heading("SDR against the ratio kept")]
        if self.no_sdr:
            return blocks + [Text("Not drawn: every SDR is NaN.")]
        archs = sorted({r["arch"] for r in rows})
        scored = [r for r in rows if r["method"] not in CONTROLS]
        on_axis = [r for r in scored if isinstance(r["ratio"], (int, float))]
        other = sorted({f"{r['method']} at ratio {r['ratio']}" for r in scored if r not in on_axis})
        if other:
            self.limits.append(f"Conditions without a numeric ratio ({', '.join(other)}) have no place on a ratio "
                               "axis: they are in the condition table only.")
        if not on_axis:
            self.limits.append("No scoring method at a numeric ratio: no SDR-against-ratio figure (only controls "
                               "ran).")
            return blocks + [Text("Not drawn: no scoring method at a numeric ratio.")]
        ratios = sorted({float(r["ratio"]) for r in on_axis})
        notes = []
        if len(ratios) == 1:
            self.limits.append(f"One ratio only ({ratios[0]:g}): SDR is drawn as points, not lines.")
            notes.append("one ratio only: points, not lines")
        if max(r["seeds"] for r in rows) < 2:
            self.limits.append("One seed per condition: no error bars and no intervals.")
            notes.append("one seed: no error bars")
        controls = [c for c in CONTROLS if any(r.get("name", r["method"]) == c for r in rows)]
        missing = [c for c in ("dirty", "clean_twin") if c not in controls]
        if missing:
            self.limits.append(f"No {' or '.join(missing)} XP: no such horizontal line in the SDR figures.")
        caption = ("Mean over seeds; error bars and grey bands: ± one standard deviation over seeds. "
                   f"Black lines: the controls ({', '.join(controls) or 'none ran'}). Colour: scoring method; "
                   "solid/circles: unified filter, dashed/squares: per-target filter; points at one ratio are "
                   "spread sideways a little so that their error bars do not overlap."
                   + (f" ({'; '.join(notes)})" if notes else ""))
        self._plot(plots.sdr_vs_ratio, "sdr_avg.png", rows, archs, ["avg"],
                   title=f"Average SDR against the ratio kept ({self.found.name})")
        blocks.append(Image("sdr_avg.png", "Average SDR (mean of the targets' medians). " + caption))
        targets = [t for t in sepclean.STEMS if any(plots.finite(r.get(f"sdr_{t}")) for r in rows)]
        if targets:
            self._plot(plots.sdr_vs_ratio, "sdr_per_target.png", rows, archs, targets,
                       title=f"SDR per target against the ratio kept ({self.found.name})")
            blocks.append(Image("sdr_per_target.png", "SDR per target. " + caption))
        return blocks

    def _artifacts(self) -> list[tuple[dict, dict]]:
        """(config, artifacts) of the XPs whose metrics name their artifacts."""
        named = [(cfg, _located(cfg, m["artifacts"])) for cfg, m in self.runs if isinstance(m.get("artifacts"), dict)]
        if len(named) < len(self.runs):
            self.limits.append(
                f"{len(self.runs) - len(named)} of {len(self.runs)} XPs' metrics name no artifacts (recorded before "
                "sepclean recorded them): their scores tables and clean manifests cannot be found, so they are in "
                "the condition table and the SDR figures only.")
        return named

    def _scores(self) -> list:
        blocks = [Heading("Scores: how they separate clean from contaminated songs")]
        # One scores table per method: the lowest seed's (the seeds' AUROCs are in the condition table).
        chosen: dict[str, dict[int, dict[str, str | None]]] = {}
        for cfg, art in self.named:
            if art.get("scores"):
                chosen.setdefault(cfg["method"], {}).setdefault(int(cfg["seed"]), {})[art["scores"]] = art.get("data")
        if not chosen:
            self.limits.append("No XP names a scores table: no score histograms and no ROC curves.")
            return blocks + [Text("Not drawn: no XP names a scores table.")]
        tables = []
        for method in sorted(chosen):
            seed = min(chosen[method])
            paths = chosen[method][seed]
            for k, (path, data) in enumerate(paths.items(), 1):
                table = self.reader.scores(path)
                if table is not None:
                    label = method if len(paths) == 1 else f"{method} #{k}"
                    tables.append((label, table, self.reader.truth(data), seed))
        if not tables:
            return blocks + [Text("Not drawn: no scores table could be read (see Problems).")]
        seeds = sorted({s for *_, s in tables})
        which = (f"Each method's scores table of seed {seeds[0]}" if len(seeds) == 1 else
                 "Each method's scores table of its lowest seed") + " (the condition table's AUROC is over seeds)."
        no_truth = [label for label, _, truth, _ in tables if truth is None]
        if no_truth:
            self.limits.append(f"No ground truth (contamination.json) for the data scored by {', '.join(no_truth)}: "
                               "their histograms cannot split clean from contaminated songs, and they have no ROC "
                               "curve.")
        self._plot(plots.score_histograms, "score_histograms.png", [t[:3] for t in tables])
        blocks.append(Image("score_histograms.png",
                            f"Score histograms. {which} Blue: clean songs; red: contaminated songs (in a target's "
                            "column, songs whose stem of that target was contaminated); grey: no ground truth. "
                            "Higher scores are kept: a method that finds the contamination puts the red to the left. fad's "
                            "scores are negated FADs: minus the Fréchet distance of a song's embedding frames to the "
                            "reference songs', in the embedding's units squared (only their order matters; 0 would be "
                            "a song indistinguishable from the references)."))
        with_truth = [t[:3] for t in tables if t[2] is not None]
        if with_truth:
            self._plot(plots.roc_curves, "roc.png", with_truth)
            blocks.append(Image("roc.png", f"ROC curves of flagging the lowest-scored songs as contaminated. {which} "
                                "The legend gives each curve's AUROC (sepclean.detection)."))
        else:
            blocks.append(Text("No ROC curves: no scored data has ground truth."))
        return blocks

    def _removed(self) -> list:
        blocks = [Heading("Removed songs")]
        groups: dict[tuple, dict[int, dict[str, tuple]]] = {}
        for cfg, art in self.named:
            if art.get("clean"):
                key = (cfg["method"], str(cfg["ratio"]), cfg["mode"])
                groups.setdefault(key, {}).setdefault(int(cfg["seed"]), {})[art["clean"]] = (art.get("scores"),
                                                                                             art.get("data"))
        if not groups:
            self.limits.append("No XP names a clean manifest: no removed-songs tables.")
            return blocks + [Text("Not drawn: no XP names a clean manifest.")]
        blocks.append(Text("For each method, ratio and filter mode, the songs its clean manifest removes (of the "
                           "lowest seed), lowest unified score first, with their scores (higher = keep). "
                           "Per-target filters remove a song for some targets only: 'removed for' says which "
                           "(a joint model such as Demucs trains on the songs kept for every target)."))
        for (method, ratio, mode), seeds in sorted(groups.items()):
            seed = min(seeds)
            for path, (scores_path, data) in seeds[seed].items():
                blocks += self._removed_table(method, ratio, mode, seed, path, scores_path, data)
        return blocks

    def _removed_table(self, method, ratio, mode, seed, path, scores_path, data) -> list:
        title = Heading(f"{method}, ratio {ratio}, {mode} (seed {seed})", 3)
        clean = self.reader.clean(path)
        table = self.reader.scores(scores_path) if scores_path else None
        truth = self.reader.truth(data)
        pool = table.tracks if table is not None else self.reader.pool(data)
        if clean is None or pool is None:
            return [title, Text(f"Not drawn: `{path}` or the pool it filters could not be read (see Problems).")]
        lists = clean.keep if clean.per_target else {"all": clean.keep}
        kept = {target: set(ids) for target, ids in lists.items()}
        removed = [t for t in pool if any(t not in ids for ids in kept.values())]
        targets = table.targets if table is not None else []
        if table is not None:
            removed.sort(key=lambda t: table.scores[t]["all"])
        header = ["song", "contaminated", *(["removed for"] if clean.per_target else []),
                  *([f"score {c}" for c in ["all", *targets]] if table is not None else [])]
        rows = []
        for track in removed:
            row = [track, _contaminated(truth, track)]
            if clean.per_target:
                row.append(", ".join(t for t, ids in kept.items() if track not in ids))
            if table is not None:
                row += [_score(table.scores[track][c]) for c in ["all", *targets]]
            rows.append(row)
        counts = ", ".join(f"{t} {len(ids)}" for t, ids in lists.items()) if clean.per_target else str(len(clean.keep))
        line = f"Kept of {len(pool)} songs: {counts}. Removed (for any target): {len(removed)}"
        if truth is not None:
            bad = {t for t, r in truth["tracks"].items() if r.get("contaminated") and t in set(pool)}
            line += f", {len([t for t in removed if t in bad])} of them contaminated (the pool has {len(bad)})"
        else:
            line += " (no ground truth: contamination unknown)"
        line += f". Clean manifest: `{path}`" + ("." if table is not None else "; its scores table could not be read.")
        return [title, Text(line), Table(header, rows) if rows else Text("No song removed.")]


def _score(value: float) -> str:
    """Four significant digits, without an exponent for large ones (FAD distances run to 1e5)."""
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _contaminated(truth: dict | None, track: str) -> str:
    if truth is None:
        return "unknown"
    record = truth["tracks"].get(track)
    if record is None:
        return "unknown"
    if not record.get("contaminated"):
        return "no"
    stems = ", ".join(record.get("stems") or [])
    return f"yes: {record.get('kind')}" + (f" ({stems})" if stems else "")


def _pipe_table(text: str) -> Table:
    """A Markdown pipe table (as ``results.markdown`` writes it) as a Table."""
    lines = [line.strip() for line in text.strip().splitlines()]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return Table(cells[0], cells[2:])


def to_markdown(blocks: list) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            def row(cells):
                return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
            out.append("\n".join([row(block.header), "|" + "|".join(["---"] * len(block.header)) + "|",
                                  *map(row, block.rows)]))
        elif isinstance(block, Image):
            out.append(f"![{Path(block.file).stem}]({block.file})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


STYLE = """body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f2f2f2; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 13px; color: #555; margin-bottom: 2em; }
code { background: #f5f5f5; padding: 0 3px; }"""
NUMBER = re.compile(r"^[-+]?[\d.]+(e[-+]?\d+)?( ± [-\d.]+)?%?$|^-$")


def to_html(blocks: list, folder: Path, title: str) -> str:
    def inline(text: str) -> str:
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))

    out = [(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>")]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            out.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join("<tr>" + "".join(
                f"<td{' class=n' if NUMBER.match(str(c)) else ''}>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(block.file)}'>"
                       f"<figcaption>{inline(block.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
