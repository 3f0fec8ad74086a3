"""Grids of sepclean's experiments: ``dora grid sepclean.<name>`` from the repository root.

``mixed23`` / ``mixed23_cpu``  the paper's experiment on synthetic mixed23 (or real roots), GPU / CPU sized
``effectsdb``                  the same on the effects preset
``scaling``                    HDemucs sizes x {dirty, clean twin, the best cleaning}
``demo``                       what ``make demo`` runs; ``ci``: the smallest whole grid, for tests
"""
