# The two commands of the README:
#   make demo   sets everything up and runs the main job (make demo ARGS=--gui: in the app)
#   make test   sets everything up and runs the checks and the tests
.PHONY: setup demo test lint bench

VENV := .venv/bin

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/borderwatch demo $(ARGS)

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports

test: setup lint
	$(VENV)/pytest -q

bench: setup
	$(VENV)/python -m bench
