"""``sepclean attribute``: the old spelling of ``sepclean score attribute``, kept as an alias.

Its options are ``score attribute``'s (the scorer's settings, declared once in its dataclass), and its
own ``--toolkit`` and ``--checkpoint`` are ``--baseline-toolkit`` and ``--baseline``.
"""

from __future__ import annotations

import argparse
import sys

from sepclean.commands import score


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "the old spelling of `sepclean score attribute` (same options)"
    score.configure_method(parser, "attribute")
    old = parser.add_argument_group("old spellings")
    old.add_argument("--toolkit", dest="baseline_toolkit", metavar="TOOLKIT", default=argparse.SUPPRESS,
                     help="--baseline-toolkit")
    old.add_argument("--checkpoint", dest="baseline", metavar="CHECKPOINT", default=argparse.SUPPRESS,
                     help="--baseline")


def run(args: argparse.Namespace) -> int:
    print("note: `sepclean attribute` is `sepclean score attribute` (--checkpoint is --baseline, --toolkit "
          "--baseline-toolkit)", file=sys.stderr)
    args.method = "attribute"
    return score.run(args)
