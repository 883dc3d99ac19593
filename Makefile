# `make run` and `make test` create .venv/ (with the pinned versions of constraints.txt) when it is
# missing or older than pyproject.toml / constraints.txt, then run the main job or the test suite.
# `make test` also installs Debian's chromium + chromedriver (as root) for the MLflow UI test.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.anobench-installed

.PHONY: run test venv browser

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "note: chromium/chromedriver not installed (needs root); the MLflow UI test will skip"; \
		fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/anobench run --objective firm --scorer knn

test: $(STAMP) browser
	$(VENV)/bin/python -m pytest -q --durations=20
