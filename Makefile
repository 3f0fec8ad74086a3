# The two commands of the README. Each creates .venv (and installs ffmpeg) when missing.
.PHONY: demo test setup

demo: .venv/.installed
	.venv/bin/sepclean demo

test: .venv/.installed
	.venv/bin/python -m pytest -q -n 2

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
