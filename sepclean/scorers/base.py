"""The scorer interface (a method's settings plus ``score``) and the registry of methods."""

from __future__ import annotations

import abc
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sepclean
from sepclean.errors import SepcleanError
from sepclean.field_docs import field_docs
from sepclean.manifest import Manifest
from sepclean.scores import ScoreTable, dataset_record


class ScorerError(SepcleanError):
    """An unknown method, a wrong setting, or a task lacking what a method needs."""


@dataclass(frozen=True)
class Baseline:
    """A model trained on the noisy set: what attribution unlearns from."""

    toolkit: str
    checkpoint: Path


@dataclass(frozen=True)
class ScoringTask:
    """What is scored, apart from how (dattri's task): the songs and what a method may use."""

    train: Manifest
    reference: Manifest
    baseline: Baseline | None = None
    contamination: dict | None = None
    """A synthetic dataset's ground truth: only the ``oracle`` control may read it."""
    device: str = "cpu"
    progress: bool = True


class Scorer(abc.ABC):
    """A scoring method. Subclasses are frozen dataclasses whose fields are the method's settings,
    so ``config()`` says exactly what determines the result (the pipeline keys artifacts by it)."""

    name: ClassVar[str]
    blind: ClassVar[bool] = True
    """False for methods that know what the corruption looks like (the MLP) or the truth (oracle)."""
    needs_baseline: ClassVar[bool] = False
    needs_truth: ClassVar[bool] = False
    shardable: ClassVar[bool] = False
    """Whether the method splits its work by its ``shard`` setting (``i/K``): shards run apart, as
    processes or jobs, and meet in one work folder (or in several, gathered by ``merge``)."""
    shard_rounds: ClassVar[int] = 1
    """A shardable method: how many times a stage runs every shard."""

    @abc.abstractmethod
    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        """Score ``task.train``. ``workdir`` is this method's own folder for resumable state."""

    def config(self) -> dict:
        """The settings that determine the scores (fields marked ``identity=False``, such as a cache
        folder or a batch size, are left out)."""
        fields = [f for f in dataclasses.fields(self) if f.metadata.get("identity", True)]
        return {"method": self.name, **{f.name: _plain(getattr(self, f.name)) for f in fields}}

    def run_config(self) -> dict | None:
        """The settings that determine the method's costly work in ``workdir``, when several settings
        only read it (attribution's ΔL, which every ``scoring`` reads): scorings with the same
        ``run_config`` share one work folder. None: nothing is shared."""
        return None

    def outputs(self, workdir: Path) -> list[Path]:
        """What a user reads beside the table in the work folder ``workdir`` once scored (paths
        relative to it): ``sepclean score`` copies them into its ``-o`` with the table. None by default."""
        return []

    def begun_in(self, folder: Path) -> bool:
        """A shardable method: whether ``folder`` holds its work begun outside the artifact store
        (shards run by hand, or gathered by ``merge``), which ``sepclean score -o folder`` finishes
        there."""
        return False

    def merge(self, workdir: Path, others: list[Path]) -> ScoreTable:
        """A shardable method: gather the shards computed in the work folders ``others`` into
        ``workdir`` and finish its scores."""
        raise ScorerError(f"{self.name} has no shards to merge")

    @staticmethod
    def record(task: ScoringTask) -> dict:
        """What every table's metadata holds: the dataset it scores (``filter`` refuses a table that
        does not cover it), the manifests' hashes, the version."""
        return {"dataset": dataset_record(task.train),
                "manifests": {"train": task.train.hash, "reference": task.reference.hash},
                "sepclean": sepclean.__version__}

    def check(self, task: ScoringTask) -> None:
        if self.needs_baseline and task.baseline is None:
            raise ScorerError(f"{self.name} scores with a baseline trained on the noisy set; none given")
        if self.needs_truth and task.contamination is None:
            raise ScorerError(f"{self.name} needs the dataset's ground truth (contamination.json of synthetic data)")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Setting:
    """One setting of a method, as its dataclass declares it: the one place its type, default and
    meaning live (the CLI and the docs read them from here)."""

    name: str
    hint: Any
    default: Any
    doc: str
    identity: bool


def settings(cls: type[Scorer]) -> list[Setting]:
    """The settings of method class ``cls``: its dataclass fields with their types, defaults and the
    docstring written under each (in the class or the base class that declares it)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    return [Setting(f.name, hints[f.name], f.default, docs.get(f.name, ""), f.metadata.get("identity", True))
            for f in dataclasses.fields(cls)]


def may_need(cls: type[Scorer], what: str) -> bool:
    """Whether a method of ``cls`` needs (``what``: ``needs_baseline``, ``needs_truth``) always or with
    some settings (a property)."""
    value = inspect.getattr_static(cls, what)
    return isinstance(value, property) or bool(value)


_REGISTRY: dict[str, type[Scorer]] = {}


def register(cls: type[Scorer]) -> type[Scorer]:
    if cls.name in _REGISTRY:
        raise ValueError(f"scoring method {cls.name!r} registered twice")
    if cls.shardable != ("shard" in {f.name for f in dataclasses.fields(cls)}):
        raise TypeError(f"scoring method {cls.name!r}: a shardable method has a 'shard' setting, and only it")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return list(_REGISTRY)


def scorer_class(name: str) -> type[Scorer]:
    if name not in _REGISTRY:
        raise ScorerError(f"no scoring method {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create(name: str, **settings) -> Scorer:
    """Method ``name`` with ``settings`` (its dataclass fields; unknown ones are an error)."""
    cls = scorer_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ScorerError(f"{name} has no setting {', '.join(unknown)} (it has: {', '.join(sorted(known)) or 'none'})")
    try:
        return cls(**settings)
    except (TypeError, ValueError, SepcleanError) as e:
        raise ScorerError(f"{name}: {e}") from None
