"""Every ``>>>`` example in the package's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import anobench
import anobench.objectives
import anobench.scorers

# objectives/ and scorers/ install as anobench.objectives and anobench.scorers (pyproject's
# package-dir), outside anobench/'s folder, so each package is walked on its own.
MODULES = sorted(
    info.name
    for package in (anobench, anobench.objectives, anobench.scorers)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)


def test_every_package_is_walked():
    assert {"anobench.report.comparison", "anobench.objectives.contrastive", "anobench.scorers.knn"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
