"""Run your own, unmodified Open-Unmix training script with ``--clean-manifest``::

    python -m sepclean_plugins.openunmix.run_upstream path/to/open-unmix/scripts/train.py \\
        --root /data/musdb18hq --is-wav --target vocals --clean-manifest clean.json

The option is taken off the command line (the script's own parser, through
``openunmix.data.load_datasets``' strict ``parse_args``, would reject it) and
``openunmix.data.load_datasets`` is wrapped: the training dataset it returns keeps only the clean
manifest's tracks for the target being trained (see ``clean``). Then the script runs as
``__main__``. Tracks are matched by name, since the script reads a dataset root, not a manifest.
"""

from __future__ import annotations

import functools
import runpy
import sys
from pathlib import Path

import openunmix.data

from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.errors import SepcleanError
from sepclean_plugins.openunmix import audio_compat, clean

OPTION = "--clean-manifest"
USAGE = f"usage: python -m sepclean_plugins.openunmix.run_upstream SCRIPT [script options] {OPTION} PATH"


def pop_option(argv: list[str], option: str) -> tuple[str | None, list[str]]:
    """``(value, argv without the option)``; accepts ``--opt VALUE`` and ``--opt=VALUE``."""
    rest, value = [], None
    items = iter(argv)
    for item in items:
        if item == option:
            value = next(items, None)
            if value is None:
                raise ValueError(f"{option} needs a value")
        elif item.startswith(option + "="):
            value = item[len(option) + 1:]
        else:
            rest.append(item)
    return value, rest


def filtering(load_datasets, clean_manifest: CleanManifest, source: str):
    """``load_datasets`` whose training dataset keeps only the clean manifest's tracks."""

    @functools.wraps(load_datasets)
    def wrapped(parser, args):
        train, valid, args = load_datasets(parser, args)
        print(clean.apply(clean_manifest, args.target, train, valid).describe(source))
        return train, valid, args

    return wrapped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    script, script_args = argv[0], argv[1:]
    try:
        path, script_args = pop_option(script_args, OPTION)
        if path is None:
            raise ValueError(f"{OPTION} is missing (without it, run the script directly)")
        clean_manifest = CleanManifest.load(path)
    except (ValueError, CleanManifestError) as e:
        print(f"error: {e}\n{USAGE}", file=sys.stderr)
        return 2

    # scripts/train.py still calls torchaudio.set_audio_backend, removed in torchaudio 2.9.
    audio_compat.install(backend_selection=True)
    original, saved_argv, saved_path = openunmix.data.load_datasets, sys.argv, list(sys.path)
    openunmix.data.load_datasets = filtering(original, clean_manifest, path)
    sys.argv = [script, *script_args]
    sys.path.insert(0, str(Path(script).resolve().parent))  # as `python SCRIPT` would
    try:
        runpy.run_path(script, run_name="__main__")
    except SepcleanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        openunmix.data.load_datasets, sys.argv, sys.path[:] = original, saved_argv, saved_path
    return 0


if __name__ == "__main__":
    sys.exit(main())
