"""The ``sepclean`` command line.

Each subcommand lives in its own module under ``sepclean.commands`` and exposes ``HELP`` (one
line), ``configure(parser)`` and ``run(args) -> int``. Modules are imported only when their command
runs, so ``sepclean --help`` stays fast and a command's heavy dependencies load only when needed.

Errors a user can act on (``sepclean.errors.SepcleanError``) are caught here, once, and printed
without a traceback (exit status 2); anything else is a bug and keeps its traceback. What the
library says through its loggers (``sepclean.*``, INFO and up) is printed as the command's output.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from contextlib import contextmanager

from sepclean.errors import SepcleanError

# name -> (module, one-line help). Kept here, not derived, so `--help` imports nothing heavy.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("sepclean.commands.synth", "generate a synthetic multitrack dataset with known contamination"),
    "manifest": ("sepclean.commands.manifest", "describe dataset roots as a JSONL manifest"),
    "score": ("sepclean.commands.score", "score training songs by any method (sepclean score METHOD --help)"),
    "attribute": ("sepclean.commands.attribute", "the old spelling of `sepclean score attribute`"),
    "filter": ("sepclean.commands.filter", "turn a scores table into a clean manifest"),
    "repair": ("sepclean.commands.repair", "repair or relabel the pairs a clean manifest drops, by a model's separations"),
    "evaluate": ("sepclean.commands.evaluate", "separate a test manifest and score it with museval"),
    "grid": ("sepclean.commands.grid", "run a dora grid of experiments on this machine (no SLURM needed)"),
    "report": ("sepclean.commands.report", "write a grid's results as a report (Markdown, HTML, PNG plots)"),
    "demo": ("sepclean.commands.demo", "run the main job on the embedded synthetic default"),
}


class CommandError(SepcleanError):
    """A command's own usage error (options that do not go together, nothing to do)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sepclean", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


class Printed(logging.Handler):
    """A log record as a plain line: warnings and errors on stderr, the rest on stdout (both looked
    up per line, so a redirected stream is the one written)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr if record.levelno >= logging.WARNING else sys.stdout, flush=True)


@contextmanager
def library_output():
    """sepclean's loggers printed while a command runs, then left as they were."""
    root, handler = logging.getLogger("sepclean"), Printed()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """``(parser, module)`` of ``sepclean NAME``: the parser its module configures (importing the module)."""
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"sepclean {name}", description=COMMANDS[name][1])
    module.configure(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage / errors and exits
        return 2
    name, rest = argv[0], argv[1:]
    parser, module = command_parser(name)
    # A command whose positionals are all plain lists takes options between them (`grid NAME --jobs 2 SIG`).
    args = (parser.parse_intermixed_args if getattr(module, "INTERMIXED", False) else parser.parse_args)(rest)
    try:
        with library_output():
            return int(module.run(args) or 0)
    except SepcleanError as e:  # anything else is a bug: its traceback is kept
        print(f"sepclean {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

