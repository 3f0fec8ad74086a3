#!/bin/bash
# Fills .whl/ with what a lent GPU machine needs to run sepclean and does not have: sepclean's own
# wheel (its entry points, sepclean_plugins) and the packages its image lacks, at the versions of this
# checkout's .venv. The machine runs Python 3.12 on x86-64 and cannot download; its image already
# holds torch, torchaudio, numpy, scipy, pandas, transformers, simplejson, einops and the like (the
# device tool's KINDS.md). scripts/device/grid.sh installs every .whl/*.whl there; wheels in
# subfolders (.whl/fadtk/: fadtk's fad.py for benchmarks/bench_fad_fadtk.py --wheel) travel, not installed.
#
#   bash scripts/device/wheels.sh            # then carry [".whl"] in each device call
set -euo pipefail
cd "$(dirname "$0")/../.."
pip=.venv/bin/pip
[ -x "$pip" ] || { echo "wheels.sh: no .venv here; run 'make setup' first" >&2; exit 2; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }
rm -rf .whl && mkdir -p .whl/fadtk

# Pure Python: built here when PyPI has only a source archive (antlr4's runtime, julius).
pure="openunmix demucs dora-search hydra-core omegaconf antlr4-python3-runtime museval musdb stempeg
  ffmpeg-python future jsonschema jsonschema-specifications referencing treetable submitit retrying
  julius pyaml pycparser threadpoolctl"
# Compiled: the machine's platform, for CPython 3.12.
compiled="rpds-py cffi lameenc soundfile"

version() { "$pip" freeze 2>/dev/null | grep -i -m1 "^${1//-/[-_]}==" || { echo "wheels.sh: $1 is not in .venv" >&2; exit 2; }; }
for name in $pure; do
  "$pip" wheel -q --no-deps -w .whl "$(version "$name")"
done
for name in $compiled; do
  "$pip" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d .whl "$(version "$name")"
done
"$pip" wheel -q --no-deps -w .whl .
# fadtk's wheel is 79 MB (it bundles model files); the benchmark reads only fadtk/fad.py out of it.
"$pip" download -q --no-deps -d /tmp/sepclean-fadtk fadtk==1.1.0
.venv/bin/python -c '
import zipfile
with zipfile.ZipFile("/tmp/sepclean-fadtk/fadtk-1.1.0-py3-none-any.whl") as wheel:
    source = wheel.read("fadtk/fad.py")
with zipfile.ZipFile(".whl/fadtk/fadtk-1.1.0-fad.zip", "w") as part:
    part.writestr("fadtk/fad.py", source)'
du -sh .whl
