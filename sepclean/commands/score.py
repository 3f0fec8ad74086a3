"""``sepclean score METHOD``: score training songs by any registered method; writes the scores table
every method shares.

The table is made by the pipeline's scoring stage in an artifact store (the grids' own by default),
so a table an XP made with the same settings and inputs is found rather than made again, and a
killed run resumes there; ``-o`` receives a copy of it and of the method's outputs beside it
(``Scorer.outputs``: attribution's ΔL arrays and run description). Shards run by hand are the
exception: ``--shard i/K`` meet in the ``-o`` they share, ``--merge`` gathers shards of other folders
into ``-o``, and an ``-o`` holding such work (``Scorer.begun_in``) is finished there.

The command is generated from the registry: each method's options are its dataclass fields
(``sepclean.scorers.base.settings``), with their types, defaults and documented meanings, so a
setting is declared once, where the method is. Options left out keep the method's defaults.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path

from sepclean.progress import bars

TASK = ("train", "reference", "output", "store", "baseline", "baseline_toolkit", "contamination", "device", "quiet",
        "merge", "compare_modes")
"""The options that say what is scored and where, not how: no method setting may take these names."""


def configure(parser: argparse.ArgumentParser) -> None:
    from sepclean.scorers import names, scorer_class
    from sepclean.scorers.base import may_need, settings

    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name in names():
        cls = scorer_class(name)
        description = " ".join((cls.__doc__ or name).split("\n\n")[0].split())
        configure_method(methods.add_parser(name, help=description.split(". ")[0].rstrip("."),
                                            description=description), name)


def configure_method(parser: argparse.ArgumentParser, name: str) -> None:
    """The options of ``sepclean score NAME``: what is scored, then the method's settings."""
    from sepclean.scorers import scorer_class
    from sepclean.scorers.base import may_need, settings

    cls = scorer_class(name)
    task = parser.add_argument_group("what is scored")
    # A shardable method's --merge needs neither: the shards' folders say what they scored.
    task.add_argument("--train", required=not cls.shardable, metavar="MANIFEST", help="manifest of the songs to score")
    task.add_argument("--reference", required=not cls.shardable, metavar="MANIFEST",
                      help="manifest of the trusted clean songs")
    task.add_argument("-o", "--output", required=True, metavar="DIR",
                      help="scores directory to write: a copy of the table made in the artifact store"
                      + (" (with --shard or --merge, or when it holds their work: the shards' shared work folder)"
                         if cls.shardable else ""))
    task.add_argument("--store", metavar="DIR", help="artifact store the table is made in (default: "
                      "$SEPCLEAN_DORA_DIR/artifacts, else outputs/artifacts: the grids' own)")
    if may_need(cls, "needs_baseline"):
        task.add_argument("--baseline", metavar="CHECKPOINT",
                          help="the model trained on the noisy set (run folder or file) that the method scores with")
        task.add_argument("--baseline-toolkit", default="openunmix", metavar="TOOLKIT",
                          help="its toolkit (default: %(default)s)")
    if may_need(cls, "needs_truth"):
        task.add_argument("--contamination", metavar="JSON",
                          help="the ground truth of a synthetic dataset (its contamination.json)")
    task.add_argument("--device", help="torch device (default: cuda when available)")
    task.add_argument("--quiet", action="store_true", help="no progress bars")
    if cls.shardable:
        task.add_argument("--merge", nargs="+", metavar="DIR",
                          help="gather the shards computed in these folders into -o and finish the scores "
                          "(instead of scoring)")
    if name == "attribute":
        task.add_argument("--compare-modes", type=int, metavar="M",
                          help="instead of scoring, print the Spearman correlation of linear and exact ΔL on M "
                          "references (whether linear mode can be trusted on this model)")
    group = parser.add_argument_group(f"{name} settings")
    for setting in settings(cls):
        if setting.name in TASK:
            raise ValueError(f"{name}: setting {setting.name!r} clashes with a task option of sepclean score")
        _add_setting(group, setting)


def _add_setting(group, setting) -> None:
    flag = "--" + setting.name.replace("_", "-")
    default = setting.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    help_text = f"{setting.doc} (default: {shown})".replace("%", "%%")
    if setting.hint is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        return
    parse, metavar = _parser(setting.hint)
    group.add_argument(flag, type=parse, metavar=metavar, default=argparse.SUPPRESS, help=help_text)


def _parser(hint) -> tuple[typing.Callable[[str], object], str]:
    """(string -> value, metavar) for a setting's type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:
            return _parser(kinds[0])
        return _number_or_word, "VALUE"
    if hint is tuple or origin is tuple:
        element = _parser(args[0])[0] if args and args[0] is not Ellipsis else str

        def listing(text: str) -> tuple:
            if text.lstrip().startswith("["):  # YAML, whose items may be mappings (fusion's components)
                items = [element(item) if isinstance(item, str) else item for item in _yaml(text, list)]
            else:
                items = [element(item.strip()) for item in text.split(",") if item.strip()]
            if not items:
                raise argparse.ArgumentTypeError("expected a comma-separated list, got nothing")
            return tuple(items)

        return listing, "A,B,..."
    if hint is dict or origin is dict:
        return lambda text: _yaml(text, dict), "YAML"
    if hint in (int, float):
        return hint, hint.__name__.upper()
    return str, "TEXT"


def _number_or_word(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def _yaml(text: str, kind: type):
    """A mapping or a list given as YAML (or JSON) on the command line."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"not YAML or JSON: {e}") from None
    if not isinstance(value, kind):
        example = "'{key: value}'" if kind is dict else "'[a, {key: value}]'"
        raise argparse.ArgumentTypeError(f"expected a {'mapping' if kind is dict else 'list'} such as {example}, "
                                         f"got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    import torch

    from sepclean.cli import CommandError
    from sepclean.detection import load_contamination
    from sepclean.manifest import Manifest
    from sepclean.scorers import Baseline, ScoringTask, create, scorer_class
    from sepclean.scorers.attribution import ShardPending
    from sepclean.scorers.base import settings
    from sepclean.verify import FileRecords

    chosen = {s.name: getattr(args, s.name) for s in settings(scorer_class(args.method)) if hasattr(args, s.name)}
    scorer = create(args.method, **chosen)
    output = Path(args.output)
    if getattr(args, "merge", None):
        table = scorer.merge(output, [Path(d) for d in args.merge])
        table.write(output)
        print(f"merged {len(args.merge)} shard folder(s) into {output}: {table.method} scores of "
              f"{len(table.tracks)} songs")
        return 0
    if not (args.train and args.reference):
        raise CommandError("--train and --reference are required (except with --merge)")
    baseline = getattr(args, "baseline", None)
    if scorer.needs_baseline and not baseline:
        raise CommandError(f"{args.method} scores with the model trained on the noisy set: pass --baseline CHECKPOINT "
                           "(and --baseline-toolkit)")
    contamination = getattr(args, "contamination", None)
    if scorer.needs_truth and not contamination:
        raise CommandError(f"{args.method} reads the ground truth: pass --contamination "
                           "(the contamination.json of a synthetic dataset)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    baseline = Baseline(args.baseline_toolkit, Path(baseline)) if baseline else None
    contamination = load_contamination(contamination) if contamination else None
    by_hand = scorer.shardable and (scorer.shard != "0/1" or scorer.begun_in(output))
    artifact = None
    if not (by_hand or getattr(args, "compare_modes", None)):
        table, artifact = _made_in_store(args, scorer, baseline, contamination, device)
    else:
        task = ScoringTask(Manifest.load(args.train), Manifest.load(args.reference), baseline, contamination, device,
                           bars(not args.quiet))
        if getattr(args, "compare_modes", None):
            from sepclean.attribution.run import Run, compare_modes

            run = Run(task.baseline.toolkit, task.baseline.checkpoint, task.train, task.reference, output,
                      list(scorer.targets) if scorer.targets else None, scorer, device, task.progress)
            for unit, rho in compare_modes(run, args.compare_modes).items():
                print(f"{unit}: Spearman(linear, exact) = {rho:.3f} on {args.compare_modes} reference(s)")
            return 0
        if scorer.shard == "0/1":
            print(f"{output} holds {args.method} work begun by hand (shards, or --merge): finishing it there, "
                  "not in the artifact store")
        FileRecords().verify_manifests(task.train, task.reference)  # as the scoring stage does
        try:
            table = scorer.score(task, output)
        except ShardPending as pending:
            print(f"{pending}; with shards in separate folders, gather them with `sepclean score {args.method} "
                  f"--merge DIR ... -o DIR`")
            return 0
    table.write(output)
    print(f"wrote {output}: {table.method} scores of {len(table.tracks)} songs "
          f"({', '.join(table.targets)} and all)")
    if artifact is not None:
        print(f"  from the artifact store: {artifact}")
    if "embedding" in table.metadata:
        print(f"  {table.metadata['embedding'].get('name', chosen.get('embedding'))} embeddings cached in "
              f"{table.metadata['cache']}")
    for source, tracks in (table.metadata.get("unscored") or {}).items():
        print(f"  {source}: {len(tracks)} song(s) too quiet to score, given the median: {', '.join(tracks)}")
    return 0


def _made_in_store(args, scorer, baseline, contamination, device: str):
    """The table of ``scorer`` and its artifact folder, made by the pipeline's scoring stage in the
    artifact store (or found there, made before with the same settings and inputs); the method's
    outputs beside the table (``Scorer.outputs``) are copied into ``-o`` (the caller writes the table
    there)."""
    import os

    from sepclean import files
    from sepclean.pipeline import stages
    from sepclean.pipeline.artifacts import ArtifactStore
    from sepclean.scores import ScoreTable

    store = ArtifactStore(Path(args.store) if args.store
                          else Path(os.environ.get("SEPCLEAN_DORA_DIR") or "outputs") / "artifacts")
    data = stages.Data(Path(args.train).parent, {"train": Path(args.train), "reference": Path(args.reference)},
                       contamination)
    made = stages.score(store, scorer, data, baseline, device, bars(not args.quiet))
    work = stages.score_work(store, scorer, made)
    for name in scorer.outputs(work):
        files.copy(work / name, Path(args.output) / name)
    return ScoreTable.read(made), made.parent
