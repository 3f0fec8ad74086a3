"""Scoring methods behind one interface and one registry.

    from sepclean.scorers import ScoringTask, create
    table = create("fad", embedding="clap").score(task, workdir)

Every method, blind or not, turns a :class:`ScoringTask` (what is scored: the training songs, the
trusted references, optionally a baseline model or the ground truth) into a
:class:`~sepclean.scores.ScoreTable` (higher = more useful to keep). The pipeline, the CLI, the
filter and rank fusion treat them all alike. A method registers itself with ``@register``.
"""

from sepclean.scorers.base import Baseline, Scorer, ScoringTask, ScorerError, create, names, register, scorer_class

# Importing the built-in methods registers them.
from sepclean.scorers import attribution as _attribution  # noqa: E402,F401
from sepclean.scorers import controls as _controls  # noqa: E402,F401
from sepclean.scorers import embedding as _embedding  # noqa: E402,F401
from sepclean.scorers import fusion as _fusion  # noqa: E402,F401
from sepclean.scorers import reference as _reference  # noqa: E402,F401

__all__ = ["Baseline", "Scorer", "ScorerError", "ScoringTask", "create", "names", "register", "scorer_class"]
