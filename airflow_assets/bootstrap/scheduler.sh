#!/usr/bin/env bash
# Bootstraps an Airflow scheduler node: scheduler.sh install|configure|start|health|all (see lib/bootstrap.sh).
# shellcheck source-path=SCRIPTDIR source=lib/bootstrap.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/bootstrap.sh"
bootstrap_main scheduler "$@"
