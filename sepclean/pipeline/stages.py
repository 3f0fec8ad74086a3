"""The experiment's stages as plain functions, each producing one shared artifact.

    manifests ─► train(dirty) ─► score(method) ─► filter(ratio, mode) ─► train(kept) ─► evaluate

Each stage names its artifact by its settings and its inputs' keys (``ArtifactStore``): whatever
asks for the same dirty baseline, the same scores or the same clean manifest gets the same folder,
made once. The dora main, the ``sepclean`` commands and the demo call these functions.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from sepclean.clean_manifest import CleanManifest
from sepclean.errors import PipelineError
from sepclean.files import locked
from sepclean.manifest import Manifest
from sepclean.pipeline.artifacts import ArtifactStore, digest, read_json
from sepclean.pipeline.shards import Shards, score_shard
from sepclean.scorers import Baseline, Scorer, ScoringTask
from sepclean.scores import ScoreTable
from sepclean.toolkit import TrainResult, TrainSpec
from sepclean.verify import FileRecords

SPLITS = ("train", "train_clean", "valid", "reference", "test")
"""The manifests an experiment reads: the noisy pool, its clean twin (the upper bound; synthetic
data, or given), validation (best epoch), the trusted references, and the test songs."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Data:
    """The manifests of one dataset, and the ground truth when the data is synthetic."""

    folder: Path
    manifests: dict[str, Path]
    contamination: dict | None

    def path(self, split: str) -> Path:
        if split not in self.manifests:
            raise PipelineError(f"the dataset has no {split!r} manifest (it has {', '.join(self.manifests)})")
        return self.manifests[split]

    def manifest(self, split: str) -> Manifest:
        return Manifest.load(self.path(split))


def _data(store: ArtifactStore, folder: Path) -> Data:
    truth = folder / "contamination.json"
    manifests = {split: folder / "manifests" / f"{split}.jsonl" for split in store.summary(folder)["splits"]}
    for path in manifests.values():
        _rebase(path, folder)
    return Data(folder, manifests, read_json(truth) if truth.is_file() else None)


def _rebase(path: Path, folder: Path) -> None:
    """The manifest ``path`` of the data artifact ``folder``, rewritten where its tracks are the
    artifact's own audio (synthetic data) recorded at another place: the store was moved or copied,
    and the manifest named the audio where it was made (a copy then read the original's audio). Real
    dataset roots, outside the store, are left as they are."""
    folder = folder.absolute()
    own = f"/{folder.parent.name}/{folder.name}/"
    manifest = Manifest.load(path)

    def here(root: str) -> str:
        text = Path(root).as_posix()
        return str(folder / text.split(own, 1)[1]) if own in text else root

    tracks = [dataclasses.replace(t, root=here(t.root)) for t in manifest.tracks]
    if tracks != manifest.tracks:
        Manifest(tracks, manifest.stems, [here(r) for r in manifest.roots]).write(path)


def _write_manifests(folder: Path, roots: dict[str, list[Path]], progress: bool) -> dict:
    from sepclean.scan import scan

    written = {}
    for split, split_roots in roots.items():
        manifest, problems = scan(split_roots, progress=progress)
        if problems:
            shown = "; ".join(map(str, problems[:5]))
            raise PipelineError(f"{split}: {len(problems)} track(s) failed validation ({shown}); "
                                "run `sepclean manifest` on the root to see every problem")
        if not len(manifest):
            raise PipelineError(f"{split}: no tracks under {', '.join(map(str, split_roots))}")
        manifest.write(folder / "manifests" / f"{split}.jsonl")
        written[split] = len(manifest)
    return {"splits": list(written), "tracks": written}


def synthetic_data(store: ArtifactStore, preset: str = "mixed23", profile: str = "small", severity: str = "paper",
                   contaminated_fraction: float | None = None, seed: int = 0, sizes: dict | None = None,
                   workers: int | None = None, progress: bool = True) -> Data:
    """``sepclean synth`` output and its manifests. ``sizes`` changes the profile's song counts or
    duration (e.g. ``{"test": 46}``); songs are seeded by (split, index), so adding test songs leaves
    every other song as it was."""
    from sepclean.synth import CONTAMINATION_FILE, generate_dataset
    from sepclean.synth.dataset import PROFILES

    if profile not in PROFILES:
        raise PipelineError(f"unknown synthetic profile {profile!r} (known: {', '.join(PROFILES)})")
    shape = dataclasses.replace(PROFILES[profile], **(sizes or {}))
    config = {"preset": preset, "profile": dataclasses.asdict(shape), "severity": severity,
              "contaminated_fraction": contaminated_fraction, "seed": seed}

    def make(folder: Path) -> dict:
        audio = folder / "audio"
        generate_dataset(audio, preset=preset, profile=shape, seed=seed, severity=severity,
                         contaminated_fraction=contaminated_fraction, workers=workers, progress=progress,
                         overwrite=True)  # an interrupted generation starts again: it is deterministic
        (folder / "contamination.json").write_bytes((audio / CONTAMINATION_FILE).read_bytes())
        return _write_manifests(folder, {split: [audio / split] for split in SPLITS}, progress=False)

    return _data(store, store.produce("data", config, [], make))


def _listing(roots: list[Path], relative: bool = False) -> str:
    """Cheap identity of the files under ``roots`` (names, sizes, modification times; a root may be
    a file): a changed dataset gets new manifests instead of stale ones, a retrained model new scores.
    ``relative``: names relative to their root, so that the identity moves with the files."""
    entries = []
    for root in map(Path, roots):
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                entries.append((path.relative_to(root).as_posix() if relative else str(path), stat.st_size,
                                stat.st_mtime_ns))
    return digest(entries)


def dataset_roots(store: ArtifactStore, roots: dict[str, list[str]], progress: bool = True) -> Data:
    """Manifests of real dataset roots, one list of roots per split (``train``, ``valid``,
    ``reference``, ``test``; ``train_clean`` when a clean twin exists)."""
    missing = [s for s in ("train", "valid", "reference", "test") if not roots.get(s)]
    if missing:
        raise PipelineError(f"data.roots needs roots for {', '.join(missing)}")
    resolved = {s: [Path(r).expanduser().resolve() for r in rs] for s, rs in roots.items() if rs}
    for split, split_roots in resolved.items():
        for root in split_roots:
            if not root.exists():
                raise PipelineError(f"data.roots.{split}: {root} does not exist")
    config = {split: [str(r) for r in rs] for split, rs in resolved.items()}
    listing = [_listing(rs) for rs in resolved.values()]
    folder = store.produce("data", config, listing, lambda folder: _write_manifests(folder, resolved, progress))
    return _data(store, folder)


# --- training ------------------------------------------------------------------------------------

def _clean_key(clean: Path | None) -> str | None:
    if clean is None:
        return None
    manifest = CleanManifest.load(clean)
    identity = {"keep": manifest.keep, "dataset": manifest.dataset_hash}
    if manifest.action != "drop":  # a drop manifest keeps the key it had before actions existed
        identity.update(action=manifest.action, weights=manifest.weights,
                        replace={t: {s: e["hash"] for s, e in stems.items()} for t, stems in manifest.replace.items()})
    return digest(identity)


def train_config(toolkit: str, spec: TrainSpec) -> dict:
    """What names a trained model, besides its inputs: the settings of ``spec`` that change it."""
    identity = {k: v for k, v in dataclasses.asdict(spec).items()
                if k not in ("train", "valid", "clean", "device", "quiet", "workspace")}
    # Where XPs of other tools live is not what a model is.
    identity["overrides"] = {k: v for k, v in spec.overrides.items() if not k.startswith("dora.")}
    # Recorded only when on: models made before these settings existed keep their key.
    if not spec.per_stem:
        del identity["per_stem"]
    if spec.robust is None:
        del identity["robust"]
    elif not spec.robust.relative:
        del identity["robust"]["relative"]
    return {"toolkit": toolkit, **identity}


def train(store: ArtifactStore, toolkit: str, spec: TrainSpec) -> TrainResult:
    """A trained model (resumed when interrupted, reused when done)."""
    from sepclean import toolkit as toolkits

    adapter = toolkits.get(toolkit)
    inputs = [Manifest.load(spec.train).hash, Manifest.load(spec.valid).hash, _clean_key(spec.clean)]

    def make(folder: Path) -> dict:
        result = adapter.train(spec, folder / "model")
        return {"checkpoint": store.record(result.checkpoint), "tracks": result.tracks,
                "best_epoch": result.best_epoch, "epochs": result.epochs}

    folder = store.produce("train", train_config(toolkit, spec), inputs, make)
    summary = store.summary(folder)
    return TrainResult(store.resolve(summary["checkpoint"], folder), summary["tracks"], summary["best_epoch"],
                       summary["epochs"])


# --- scoring and filtering -----------------------------------------------------------------------

def score(store: ArtifactStore, scorer: Scorer, data: Data, baseline: Baseline | None = None,
          device: str = "cpu", progress: bool = True, shards: Shards | None = None) -> Path:
    """The scores table of ``scorer`` on the training pool (a folder ``ScoreTable.read`` takes).
    ``shards``: a shardable scorer (one with a ``shard`` setting: ``attribute``) computes its work in
    that many shards first, here or as a SLURM job array; the table is then merged here.
    A baseline inside the store (a training artifact) is named by its path there, which names what
    made it; one outside it (the command line's ``--baseline``, a Demucs XP beside the store) may hold
    another model later (retrained in place), so its files' names, sizes and mtimes key the table too:
    a changed model is scored again, never its old table served.

    The table is keyed by the manifests' hashes, which name the audio they held when written: their
    files are verified first (``sepclean.verify``), so a table is never served for, nor made from, a
    file rewritten since (that is an error naming the file: run ``sepclean manifest`` again)."""
    task = ScoringTask(data.manifest("train"), data.manifest("reference"), baseline if scorer.needs_baseline else None,
                       data.contamination if scorer.needs_truth else None, device, progress)
    scorer.check(task)
    FileRecords().verify_manifests(task.train, task.reference)
    inputs = [task.train.hash, task.reference.hash]
    legacy = list(inputs)
    if scorer.needs_baseline:  # a training artifact's model is named by what made it, others by their files too
        inputs.append(store.record(baseline.checkpoint))
        legacy.append(str(baseline.checkpoint))
        if inputs[-1].startswith("../"):  # outside the store
            inputs.append(_listing([baseline.checkpoint], relative=True))
            legacy.append(inputs[-1])
    if scorer.needs_truth:
        inputs.append(digest(task.contamination))
        legacy.append(inputs[-1])

    def make(folder: Path) -> dict:
        work = _work(store, scorer, inputs, folder)
        with locked(work):
            if shards is not None and shards.count > 1:
                if not scorer.shardable:
                    logger.info(f"{scorer.name} has no shards: it scores in one piece")
                else:
                    for round_ in range(scorer.shard_rounds):
                        if round_:
                            logger.info(f"{scorer.name}: every shard again (round {round_ + 1} of "
                                        f"{scorer.shard_rounds})")
                        shards.run(functools.partial(score_shard, scorer, task, work), folder / "shards",
                                   name=f"sepclean_{scorer.name}_{folder.name}")
            table = scorer.score(task, work)
        table.write(folder / "table")
        return {"tracks": len(table.tracks), "targets": table.targets}

    return store.produce("scores", scorer.config(), inputs, make, legacy_inputs=legacy) / "table"


def _work(store: ArtifactStore, scorer: Scorer, inputs: list[str], folder: Path) -> Path:
    """The work folder of ``scorer``'s artifact ``folder``: its own, or, for scorings that share their
    costly work (``Scorer.run_config``), one folder of the store keyed by that work and the inputs."""
    shared = scorer.run_config()
    if shared is None or (folder / "work").is_dir():  # an attempt begun before work was shared resumes there
        work = folder / "work"
    else:
        work = store.folder("work", store.key("work", shared, inputs))
    work.mkdir(parents=True, exist_ok=True)
    return work


def score_work(store: ArtifactStore, scorer: Scorer, table: Path) -> Path:
    """The work folder ``scorer`` made the scores ``table`` (what ``score`` returned) in: where the
    method's outputs beside the table are (``Scorer.outputs``)."""
    folder = table.parent
    work = _work(store, scorer, read_json(folder / "spec.json")["inputs"], folder)
    missing = [name for name in map(str, scorer.outputs(work)) if not (work / name).exists()]
    if missing:
        raise PipelineError(f"{folder}: its work folder {work} lacks {', '.join(missing)}; remove the artifact "
                            "folder to rebuild it")
    return work


def filter_scores(store: ArtifactStore, scores: Path, ratio: float | str, mode: str) -> Path:
    """The clean manifest keeping ``ratio`` of the songs by ``scores`` (one set, or one per target)."""
    from sepclean.filtering import clean_manifest

    def make(folder: Path) -> dict:
        clean = clean_manifest(ScoreTable.read(scores), ratio, mode)
        clean.write(folder / "clean.json")
        lists = clean.keep if clean.per_target else {"all": clean.keep}
        return {"kept": {target: len(ids) for target, ids in lists.items()}}

    scores_key = read_json(scores.parent / "spec.json")["key"]
    return store.produce("filter", {"ratio": ratio, "mode": mode}, [scores_key], make) / "clean.json"


def match_scores(store: ArtifactStore, scores: Path, like: Path) -> Path:
    """The clean manifest keeping by ``scores`` as many songs per list as the clean manifest ``like``
    (a filter artifact's ``clean.json``) keeps."""
    from sepclean.clean_manifest import CleanManifest
    from sepclean.filtering import matched_manifest

    def make(folder: Path) -> dict:
        clean = matched_manifest(ScoreTable.read(scores), CleanManifest.load(like))
        clean.write(folder / "clean.json")
        return {"kept": clean.extra["matched"]["kept"]}

    keys = [read_json(scores.parent / "spec.json")["key"], read_json(like.parent / "spec.json")["key"]]
    return store.produce("filter", {"match": True}, keys, make) / "clean.json"


def weigh(store: ArtifactStore, scores: Path, mode: str) -> Path:
    """The clean manifest keeping every pair, weighted by the clean posterior of ``scores``' auto fit
    (``sepclean.actions``)."""
    from sepclean.actions import weight_manifest

    def make(folder: Path) -> dict:
        clean = weight_manifest(ScoreTable.read(scores), mode)
        clean.write(folder / "clean.json")
        return {"weights": {t: sum(w.values()) / len(w) for t, w in clean.weights.items()}}

    return store.produce("filter", {"action": "weight", "mode": mode}, [read_json(scores.parent / "spec.json")["key"]],
                         make) / "clean.json"


def repair(store: ArtifactStore, data: Data, clean: Path, toolkit: str, checkpoint: Path, settings,
           device: str = "cpu", action: str = "repair") -> Path:
    """The clean manifest repairing (or relabelling: ``action``) the pairs the drop manifest
    ``clean`` leaves out, by the separations of the ``toolkit`` model at ``checkpoint``
    (``sepclean.actions``); the new audio lives in the artifact's folder, beside its ``clean.json``."""
    from sepclean.actions import repair_with_model

    train = data.manifest("train")

    def make(folder: Path) -> dict:
        repaired = repair_with_model(CleanManifest.load(clean), train, toolkit, checkpoint, settings, folder, device,
                                     action)
        return repaired.extra[action]["counts"]

    config = {"action": action, "toolkit": toolkit, **settings.to_dict()}
    # The receiver rule is recorded only where it is not ``order``, the rule of every repair made before
    # it was a setting (they keep their key, and are never taken for another rule's); relabel hands no residual.
    if config["receiver"] == "order" or action == "relabel":
        del config["receiver"]
    # the model as the store records it (relative to its root), so a moved or copied store finds its repairs
    inputs = [read_json(clean.parent / "spec.json")["key"], store.record(checkpoint), train.hash]
    return store.produce("repair", config, inputs, make) / "clean.json"


# --- evaluation ----------------------------------------------------------------------------------

def evaluate(store: ArtifactStore, toolkit: str, model: TrainResult, test: Manifest, targets: list[str] | None = None,
             device: str = "cpu", workers: int | None = None, sdr_only: bool = True, progress: bool = True) -> dict:
    """museval SDR of a trained model on the test songs (``targets``: those it was trained for; all
    the toolkit's by default): the summary ``sepclean evaluate`` writes."""
    from sepclean import evaluate as evaluation

    def make(folder: Path) -> dict:
        result = evaluation.evaluate(toolkit, model.checkpoint, test, folder, targets=targets, workers=workers,
                                     device=device, progress=progress, sdr_only=sdr_only)
        return {"median": result.median, "average": result.average, "tracks": len(result.tracks)}

    # The model is named by its training artifact (the checkpoint path is inside it, or a demucs XP
    # named by the same settings).
    config = {"toolkit": toolkit, "targets": targets, "sdr_only": sdr_only}
    folder = store.produce("evaluate", config, [store.record(model.checkpoint), test.hash], make,
                           legacy_inputs=[str(model.checkpoint), test.hash])
    return store.summary(folder)

