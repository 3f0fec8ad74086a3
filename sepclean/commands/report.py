"""``sepclean report GRID_OR_SUMMARY -o DIR``: a grid's results as Markdown and HTML with plots."""

from __future__ import annotations

import sys


def configure(parser) -> None:
    parser.add_argument("source", metavar="GRID_OR_SUMMARY",
                        help="a grid name as `sepclean grid` takes it (e.g. sepclean.mixed23_cpu), or a grid's "
                        "summary.json (outputs/grid_results/<grid>/summary.json, or its folder)")
    parser.add_argument("-o", "--output", required=True, help="folder to write report.md, report.html and the plots")


def run(args) -> int:
    from sepclean.experiments.report import write

    written = write(args.source, args.output)
    print(f"wrote {written.markdown} and {written.html} (self-contained), "
          f"{len(written.plots)} plot(s): {', '.join(p.name for p in written.plots) or 'none'}")
    if written.no_sdr:
        print(f"sepclean report: {written.no_sdr}", file=sys.stderr)
    if written.problems:
        print(f"{len(written.problems)} recorded file(s) could not be read; the report leaves out what needs them:",
              file=sys.stderr)
        for problem in written.problems:
            print(f"  {problem}", file=sys.stderr)
    return 1 if written.problems or written.no_sdr else 0
