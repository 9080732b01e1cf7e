# Every target installs what it needs first, so each works on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov pins versions that conflict with requirements-dev.txt, so it gets a virtualenv of its own.
CHECKOV_VENV ?= .venv-checkov
# The EMR step code's interpreter: the Spark line of the configured EMR release (rehearsal/aws/spark_env.py).
EMR_VENV ?= .venv-emr
CDK := npx --yes aws-cdk@2.1148.1
UV_VERSION := 0.13.8
# Where no uv is installed, a pinned one goes into .tools/ (Debian's python3 refuses a system-wide pip install).
export PATH := $(PATH):$(CURDIR)/.tools/bin
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: venv checkov-venv machine lint test fidelity demo rehearsal synth deploy destroy diff bench diagram clean

$(VENV)/.installed: requirements.txt requirements-airflow.txt requirements-dev.txt
	# mysqlclient builds from source: its headers and compiler come first.
	bash scripts/setup-machine.sh build
	@echo "setup: Python virtualenv $(VENV) from the pinned requirements (a minute or two the first time)"
	command -v uv >/dev/null || { python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION); }
	[ -x $(PY) ] || uv venv -q -p python3.11 $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install -q -r requirements-dev.txt
	touch $@

# After the main venv, which makes sure uv is there.
$(EMR_VENV)/.installed: requirements-emr.txt $(VENV)/.installed
	[ -x $(EMR_VENV)/bin/python ] || uv venv -q -p python3.11 $(EMR_VENV)
	VIRTUAL_ENV=$(EMR_VENV) uv pip install -q -r requirements-emr.txt
	touch $@

venv: $(VENV)/.installed $(EMR_VENV)/.installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt $(VENV)/.installed
	[ -x $(CHECKOV_VENV)/bin/python ] || uv venv -q -p python3.11 $(CHECKOV_VENV)
	VIRTUAL_ENV=$(CHECKOV_VENV) uv pip install -q -r requirements-checkov.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

machine:
	bash scripts/setup-machine.sh

# ruff's and mypy's settings are in pyproject.toml; `ruff format .` rewrites what --check reports.
# mypy runs once per program, each with its own import roots: the CDK app, then the DAG folder.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app.py stacks
	$(VENV)/bin/mypy airflow_assets/dags

test: machine venv checkov-venv lint
	$(VENV)/bin/pytest -q --durations=15 tests

# Each review blocker re-introduced in a scratch copy must fail its check naming the AWS rule
# (rehearsal/fidelity_mutations.py; docs/emulator.md). `make fidelity MUTATIONS="name ..."` runs some.
fidelity: machine venv
	$(PY) -m rehearsal.fidelity $(MUTATIONS)

# make demo INPUT=my.csv SERVE=1 KEEP=1 (docs/rehearsal.md)
REHEARSAL_OPTIONS = $(if $(INPUT),--input "$(INPUT)") $(if $(SERVE),--serve) $(if $(KEEP),--keep)

demo: venv
	bash scripts/setup-machine.sh demo
	$(PY) -m rehearsal --profile embedded $(REHEARSAL_OPTIONS)

rehearsal: machine venv
	$(PY) -m rehearsal --profile cluster $(REHEARSAL_OPTIONS)

synth: venv
	CDK_OUTDIR=cdk.out $(PY) app.py

# Context for deploy/diff, e.g. make deploy CONTEXT="-c sender_email=airflow@my.org -c alert_email=me@my.org"
CONTEXT ?=

# deploying=true makes the app refuse what only fails after CloudFormation has started (placeholder mail).
deploy: venv
	$(CDK) deploy --all --app "$(PY) app.py" -c deploying=true $(CONTEXT)

destroy: venv
	$(CDK) destroy --all --force --app "$(PY) app.py"

diff: venv
	$(CDK) diff --all --app "$(PY) app.py" $(CONTEXT)

bench: venv
	$(PY) bench/spark_sort.py
	$(PY) bench/rehearsal.py
	$(PY) bench/enforcement_costs.py

diagram: venv
	$(PY) scripts/diagram.py

clean:
	rm -rf cdk.out .rehearsal .bench .pytest_cache spark-warehouse metastore_db derby.log
