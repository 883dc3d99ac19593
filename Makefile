# `make run` and `make test` create .venv/ (with the pinned versions of constraints.txt) when it is
# missing or older than pyproject.toml / constraints.txt, then run the main job or the test suite.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.anobench-installed

.PHONY: run test venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/anobench run --objective firm --scorer knn

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q
