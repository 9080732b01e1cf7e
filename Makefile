# Every target installs what it needs first, so each works on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CDK := npx --yes aws-cdk@2.1148.1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: venv machine test demo rehearsal synth deploy destroy diff bench diagram clean

$(VENV)/.installed: requirements.txt requirements-airflow.txt requirements-dev.txt
	command -v uv >/dev/null || python3 -m pip install -q uv==0.13.8
	[ -x $(PY) ] || uv venv -q -p python3.11 $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

machine:
	bash scripts/setup-machine.sh

test: machine venv
	$(VENV)/bin/pytest -q tests

# make demo INPUT=my.csv SERVE=1 KEEP=1 (docs/rehearsal.md)
REHEARSAL_OPTIONS = $(if $(INPUT),--input "$(INPUT)") $(if $(SERVE),--serve) $(if $(KEEP),--keep)

demo: venv
	$(PY) -m rehearsal --profile embedded $(REHEARSAL_OPTIONS)

rehearsal: machine venv
	$(PY) -m rehearsal --profile cluster $(REHEARSAL_OPTIONS)

synth: venv
	CDK_OUTDIR=cdk.out $(PY) app.py

deploy: venv
	$(CDK) deploy --all --app "$(PY) app.py"

destroy: venv
	$(CDK) destroy --all --force --app "$(PY) app.py"

diff: venv
	$(CDK) diff --all --app "$(PY) app.py"

bench: venv
	$(PY) bench/spark_sort.py
	$(PY) bench/rehearsal.py

diagram: venv
	$(PY) scripts/diagram.py

clean:
	rm -rf cdk.out .rehearsal .bench .pytest_cache spark-warehouse metastore_db derby.log
