# The two commands of the README:
#   make demo   sets everything up and runs the main job (make demo ARGS=--gui: in the app)
#   make test   sets everything up and runs the checks and the tests
.PHONY: setup demo test test-lean lint bench

VENV := .venv/bin
LEAN := .venv-lean/bin
PYTHON ?= python3

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/borderwatch demo $(ARGS)

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports

test: setup lint test-lean
	$(VENV)/pytest -q

# tests/missions and tests/vision again with the core dependencies alone, as a companion computer
# installs borderwatch: if anything there needs Qt, torch or ultralytics, this fails.
test-lean: .venv-lean/installed
	$(LEAN)/python -c "import importlib.util, sys; \
		found = [m for m in ('PyQt6', 'torch', 'ultralytics') if importlib.util.find_spec(m)]; \
		sys.exit(f'test-lean: the core dependencies brought {found} into .venv-lean' if found else None)"
	$(LEAN)/pytest -q tests/missions tests/vision

# Made afresh when the dependencies change, so that nothing dropped from them lingers.
.venv-lean/installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv --clear .venv-lean
	$(LEAN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $@

bench: setup
	$(VENV)/python -m bench
