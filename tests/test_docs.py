"""Every command line quoted in README.md and docs/*.md exists, and every relative link resolves.

Command lines are taken from the fenced code blocks (``bash``, ``sh``, ``shell``, ``console`` or
unlabelled) whose lines start with a command this project ships or documents: ``sepclean``,
``python -m sepclean...``, ``dora``, ``make``, ``python benchmarks/...``, ``scripts/...``. Each is
checked without running anything:

- ``sepclean COMMAND ...``: parsed by the parser ``sepclean.cli`` builds for the command;
- ``python -m sepclean_plugins.openunmix.train ...`` (and the options ``run_upstream`` passes on):
  parsed by the plugin's parser, with the dataset options it adds before its strict parse;
- ``python -m sepclean_plugins.openunmix.umx ...``: parsed by upstream's ``umx`` parser;
- ``dora [-P PACKAGE] grid NAME``: dora's own parser, and NAME is a module of the grid package;
- ``dora [-P PACKAGE] run|info KEY=VALUE ...``: dora's parser, and the overrides compose with the
  main's hydra config (an unknown key fails, as it would in dora);
- ``make TARGET``: a target of the Makefile; ``python benchmarks/X.py``, ``scripts/...``: the file.

Besides: every ``--option`` docs/cli.md names in its prose and tables is an option of a ``sepclean``
command (or of the Open-Unmix trainer); the README stays short, shows every registered method and
keeps the test command ``.ci/run`` runs; every relative link and its anchor resolve. Blocks that are
not commands (a layout, a diagram) are fenced as ``text``.

Quoting conventions the docs may use: ``\\`` continuations, ``VAR=value`` prefixes, ``# comments``,
``[optional]`` parts (kept), ``a|b`` alternatives (the first is parsed), ``<placeholder>`` (read as
a word), ``...`` (an elided value after an option, else dropped; a line with ``...`` need not give
every required option), and ``sepclean score METHOD`` (parsed for every registered method).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
import sys
import unicodedata
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")


# ---------------------------------------------------------------- extraction


def code_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command line)`` of the shell code blocks, continuations joined."""
    out, block, pending, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if fence:
            block = None if block is not None else fence.group(1).lower()
            continue
        if block is None or block not in SHELL_BLOCKS:
            continue
        line = re.sub(r"^\$ ", "", line.strip())
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command, pending = pending + line, ""
        if command and not command.startswith("#"):
            out.append((start, command))
    return out


def words(command: str) -> list[str] | None:
    """The command's words, normalised (see the module's docstring); None for a line that is not a
    command this test knows."""
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:  # an apostrophe in prose that is not a command
        return None
    for i, token in enumerate(tokens):  # a pipe, a list or a redirection ends the command
        if token in ("|", "||", "&&", ";", ">", ">>", "2>&1"):
            tokens = tokens[:i]
            break
    while tokens and ENV.match(tokens[0]):
        tokens = tokens[1:]
    if not tokens:
        return None
    if tokens[0].startswith(".venv/bin/"):
        tokens[0] = tokens[0][len(".venv/bin/"):]
    if tokens[0] in ("python", "python3") and tokens[1:2] == ["-m"] and len(tokens) > 2:
        tokens = ["python -m " + tokens[2], *tokens[3:]]
    if tokens[0] == "python -m sepclean":
        tokens[0] = "sepclean"
    if tokens[0] == "bash" and len(tokens) > 1 and tokens[1].startswith("scripts/"):
        tokens = tokens[1:]
    known = (tokens[0] in ("sepclean", "dora", "make", "umx")
             or tokens[0].startswith(("python -m sepclean_plugins.", "scripts/"))
             or (tokens[0] in ("python", "python3") and tokens[1:2] and tokens[1].startswith("benchmarks/")))
    return tokens if known else None


def unquote(tokens: list[str]) -> tuple[list[str], bool]:
    """``(tokens with the quoting conventions resolved, whether something was elided)``."""
    out, elided = [], False
    for token in tokens:
        token = token.removeprefix("[").removesuffix("]")
        if token in ("...", "…"):
            elided = True
            if out and out[-1].startswith("-") and out[-1] not in ("-", "--"):
                out.append("X")
            continue
        if "|" in token and not token.startswith("|"):
            token = token.split("|")[0]
        token = re.sub(r"<[^<>]*>", "X", token)
        if token:
            out.append(token)
    return out, elided


def commands(path: Path) -> list[tuple[int, list[str], list[str], bool]]:
    """``(line, raw words, resolved words, elided)`` of every known command in a Markdown file."""
    out = []
    for number, line in code_lines(path.read_text()):
        raw = words(line)
        if raw:
            out.append((number, raw, *unquote(raw)))
    return out


# ---------------------------------------------------------------- checks


class Parsed(Exception):
    """Raised by a patched ``parse_args`` once a parser has accepted the command line."""


@contextlib.contextmanager
def quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        yield err


def relaxed(parser: argparse.ArgumentParser) -> None:
    """No option required, in this parser and its sub-parsers (for lines that elide some)."""
    for action in parser._actions:
        if action.option_strings:
            action.required = False
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                relaxed(sub)
    for group in parser._mutually_exclusive_groups:
        group.required = False


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None when ``parser`` accepts ``argv`` (``--help`` counts), else argparse's message."""
    with quiet() as err:
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            return None if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


def grid_problem(name: str) -> str | None:
    """None when ``name`` is a grid of the grid package the dora main names (``dora.grid_package``)."""
    import yaml

    if any(part == "X" or part.isupper() for part in name.split(".")):
        return None  # a placeholder: <name>, NAME
    package = yaml.safe_load((ROOT / "sepclean/conf/config.yaml").read_text())["dora"]["grid_package"]
    module = ROOT / package.replace(".", "/") / (name.replace(".", "/") + ".py")
    if not module.is_file() or "def explorer" not in module.read_text():
        return f"no grid {name!r} (no {module.relative_to(ROOT)} defining an explorer)"
    return None


def check_sepclean(argv: list[str], elided: bool) -> str | None:
    from sepclean.cli import COMMANDS, command_parser

    if not argv or argv[0] not in COMMANDS:
        return f"no command {argv[0] if argv else ''!r} (sepclean has {', '.join(COMMANDS)})"
    if argv[0] == "score" and argv[1:2] == ["METHOD"]:
        from sepclean.scorers import names

        for method in names():
            problem = check_sepclean(["score", method, *argv[2:]], elided)
            if problem:
                return f"score {method}: {problem}"
        return None
    parser, _ = command_parser(argv[0])
    if elided:
        relaxed(parser)
    problem = parse(parser, argv[1:])
    if problem:
        return problem
    if argv[0] in ("grid", "report") and "--help" not in argv and "-h" not in argv:
        target = next((a for a in argv[1:] if not a.startswith("-")), None)
        if target and not target.endswith(".json") and "/" not in target:
            return grid_problem(target)
    return None


def check_openunmix_train(argv: list[str]) -> str | None:
    """Parsed as the plugin's trainer parses it: its own options, then the dataset options added
    before its strict ``parse_args`` (upstream's for ``--root``, the manifest dataset's), which is
    where this check stops: no data is read."""
    from sepclean_plugins.openunmix import train

    strict = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        strict(self, args, namespace)
        raise Parsed

    with quiet() as err, mock.patch.object(argparse.ArgumentParser, "parse_args", parse_args), \
            mock.patch.object(train.audio_compat, "install"):
        try:
            train.Training.from_argv(argv)
        except Parsed:
            return None
        except SystemExit:
            return err.getvalue().strip().splitlines()[-1]
        except Exception as e:  # noqa: BLE001 (a setting refused before the data is read)
            return f"{type(e).__name__}: {e}"
    return "the trainer read no dataset options (its parsing changed: update this test)"


def check_run_upstream(argv: list[str]) -> str | None:
    from sepclean_plugins.openunmix import run_upstream

    if not argv or argv[0].startswith("-"):
        return "run_upstream needs the path of upstream's scripts/train.py first"
    value, rest = run_upstream.pop_option(argv[1:], run_upstream.OPTION)
    if value is None:
        return f"no {run_upstream.OPTION} (without it, run the script directly)"
    return check_openunmix_train(rest)  # upstream's options, which the plugin's trainer takes


def check_umx(argv: list[str]) -> str | None:
    import openunmix.cli

    from sepclean_plugins.openunmix import umx

    strict = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        strict(self, args, namespace)
        raise Parsed

    with quiet() as err, mock.patch.object(argparse.ArgumentParser, "parse_args", parse_args), \
            mock.patch.object(umx.audio_compat, "install"), mock.patch.object(sys, "argv", list(sys.argv)):
        try:
            umx.main(argv)
        except Parsed:
            return None
        except SystemExit as e:
            return None if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return f"{openunmix.cli.__name__}.separate parsed nothing (its parsing changed: update this test)"


def hydra_problem(package: str, overrides: list[str]) -> str | None:
    """None when ``overrides`` compose with the hydra config of ``package``'s dora main."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    spec = importlib.util.find_spec(f"{package}.train")
    if spec is None or spec.origin is None:
        return f"no dora main {package}.train"
    conf = Path(spec.origin).parent / "conf"
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        return f"{package}: {str(e).splitlines()[0]}"
    return None


def check_dora(argv: list[str], elided: bool) -> str | None:
    from dora.__main__ import get_parser

    parser = get_parser()
    problem = parse(parser, argv)
    if problem:
        return problem
    with quiet():
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            return None  # --help
    if args.command == "grid" and args.grid:
        return grid_problem(args.grid)
    if args.command in ("run", "info", "launch") and args.argv:
        overrides = [a for a in args.argv if "=" in a]
        if len(overrides) != len(args.argv):
            return f"not an override (KEY=VALUE): {[a for a in args.argv if '=' not in a]}"
        return hydra_problem(args.package or "sepclean", overrides)
    return None


def check_make(argv: list[str]) -> str | None:
    makefile = (ROOT / "Makefile").read_text()
    for target in argv[1:]:
        if not re.search(rf"^{re.escape(target)}\s*:", makefile, re.M):
            return f"no target {target!r} in the Makefile"
    return None


def check(argv: list[str], elided: bool) -> str | None:
    """None when the command line exists as written, else what is wrong."""
    head, rest = argv[0], argv[1:]
    if head == "sepclean":
        return check_sepclean(rest, elided)
    if head == "dora":
        return check_dora(rest, elided)
    if head == "make":
        return check_make(argv)
    if head == "python -m sepclean_plugins.openunmix.train":
        return check_openunmix_train(rest)
    if head == "python -m sepclean_plugins.openunmix.run_upstream":
        return check_run_upstream(rest)
    if head in ("umx", "python -m sepclean_plugins.openunmix.umx"):
        return check_umx(rest)
    if head.startswith("python -m "):
        module = head.removeprefix("python -m ")
        return None if importlib.util.find_spec(module) else f"no module {module}"
    path = rest[0] if head in ("python", "python3") else head
    return None if (ROOT / path).is_file() else f"no file {path}"


def problems(path: Path) -> list[str]:
    out = []
    for number, raw, argv, elided in commands(path):
        problem = check(argv, elided)
        if problem:
            out.append(f"{path.relative_to(ROOT)}:{number}: {shlex.join(raw)}\n    {problem}")
    return out


def sepclean_options() -> set[str]:
    """Every option of every ``sepclean`` command (each ``score`` method's included) and of the
    Open-Unmix trainer the CLI reference sends users to."""
    from sepclean.cli import COMMANDS, command_parser
    from sepclean_plugins.openunmix import train

    def of(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= of(sub)
        return found

    options = of(train.build_parser([]))
    for name in COMMANDS:
        options |= of(command_parser(name)[0])
    return options


def inline_options(path: Path) -> set[str]:
    """The ``--options`` named in the prose and tables (inline code) of a Markdown file."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {option for code in re.findall(r"`([^`\n]+)`", text)
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", code)}


# ---------------------------------------------------------------- links


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip()).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            out.append(f"{path.relative_to(ROOT)}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            out.append(f"{path.relative_to(ROOT)}: {target}: no heading with that anchor")
    return out


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_exists(path):
    found = problems(path)
    assert not found, "commands quoted in the docs that do not exist:\n" + "\n".join(found)


def test_every_option_the_cli_reference_names_exists():
    """docs/cli.md's prose and tables name options of sepclean's commands only (checked against the
    parsers that print --help)."""
    named = inline_options(ROOT / "docs/cli.md")
    assert len(named) > 30
    assert not named - sepclean_options()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert not broken_links(path)


def test_the_docs_quote_commands_at_all():
    """The extraction finds what the docs show (a parser of the docs that found nothing would pass)."""
    from sepclean.cli import COMMANDS
    from sepclean.scorers import names

    quoted = [argv for path in DOCS for _, _, argv, _ in commands(path)]
    assert len(quoted) > 60
    assert {argv[1] for argv in quoted if argv[0] == "sepclean"} >= set(COMMANDS)
    readme = [argv for _, _, argv, _ in commands(ROOT / "README.md")]
    # the README's workflow shows every registered method, the clean manifest in both toolkits and the grid
    assert {argv[2] for argv in readme if argv[:2] == ["sepclean", "score"]} == set(names())
    assert any(argv[0] == "python -m sepclean_plugins.openunmix.train" and "--clean-manifest" in argv for argv in readme)
    assert any(argv[0] == "python -m sepclean_plugins.openunmix.run_upstream" and "--clean-manifest" in argv
               for argv in readme)
    assert any(argv[0] == "dora" and any(a.startswith("dset.clean_manifest=") for a in argv) for argv in readme)
    assert ["dora", "grid", "sepclean.mixed23"] in readme


def test_readme_is_short_and_its_test_command_is_ci():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    setup = "```\nmake demo     # the main job on the embedded default: a synthetic contaminated dataset\n" \
            "make test     # the test suite\n```\n"
    assert setup in readme
    assert "make test" in (ROOT / ".ci/run").read_text().splitlines()


@pytest.mark.parametrize("line, wrong", [
    ("sepclean score fad --train a.jsonl --reference b.jsonl -o s --no-such-option 1", "unrecognized arguments"),
    ("sepclean score fad --train a.jsonl --reference b.jsonl -o s --draws many", "invalid"),
    ("sepclean score nosuchmethod --train a.jsonl --reference b.jsonl -o s", "invalid choice"),
    ("sepclean score METHOD --train a.jsonl --reference b.jsonl -o s --embedding clap", "unrecognized"),
    ("sepclean nosuchcommand x", "no command"),
    ("sepclean filter scores --ratio 0.75 --mode sideways -o c.json", "invalid choice"),
    ("sepclean filter scores -o c.json", "required"),
    ("sepclean grid sepclean.no_such_grid", "no grid"),
    ("dora grid sepclean.no_such_grid", "no grid"),
    ("dora grid sepclean.mixed23 --no-such-flag", "unrecognized"),
    ("dora -P sepclean run method=mlp no_such_key=1", "no_such_key"),
    ("dora -P sepclean_plugins.demucs run variant=tiny_hdemucs dset.clean_manifests=clean.json", "clean_manifests"),
    ("dora -P sepclean_plugins.demucs run variant=no_such_variant", "no_such_variant"),
    ("python -m sepclean_plugins.openunmix.train --manifest a.jsonl --valid-manifest b.jsonl \\\n"
     "    --target vocals --clean-manifests clean.json", "unrecognized"),
    ("python -m sepclean_plugins.openunmix.train --root /data --is-wav --no-such-option", "unrecognized"),
    ("python -m sepclean_plugins.openunmix.run_upstream train.py --root /data --is-wav", "--clean-manifest"),
    ("python -m sepclean_plugins.openunmix.umx song.wav --model m --no-such-umx-option", "unrecognized"),
    ("make nosuchtarget", "no target"),
    ("python benchmarks/bench_no_such_thing.py", "no file"),
])
def test_a_wrong_command_is_caught(tmp_path, line, wrong):
    doc = tmp_path / "planted.md"
    doc.write_text(f"Text.\n\n```bash\n{line}\n```\n")
    found = [check(argv, elided) for _, _, argv, elided in commands(doc)]
    assert len(found) == 1 and found[0] and wrong in found[0], found


def test_an_option_planted_in_the_readme_is_caught(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    planted = readme.replace("--ratio auto --mode per-target", "--ratio auto --mode-per-target", 1)
    assert planted != readme
    (tmp_path / "README.md").write_text(planted)
    for name in ("Makefile", "sepclean", "grids", ".ci"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = problems(tmp_path / "README.md")
    assert len(found) == 1 and "--mode-per-target" in found[0], found


def test_an_option_unknown_to_the_cli_is_caught(tmp_path):
    doc = tmp_path / "cli.md"
    doc.write_text("Pass `--ratio auto`, or `--frames all`; never `--no-such-thing 3`.\n\n```bash\n--ignored\n```\n")
    assert inline_options(doc) - sepclean_options() == {"--no-such-thing"}


def test_a_broken_link_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_text("# A title\n\n[ok](a.md#a-title) [file](b.md) [anchor](a.md#no-such)\n")
    assert broken_links(tmp_path / "docs/a.md") == ["docs/a.md: b.md: no such file",
                                                    "docs/a.md: a.md#no-such: no heading with that anchor"]
