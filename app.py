#!/usr/bin/env python3
"""CDK entry point: reads the context, validates it, wires the stack and runs cdk-nag on synth."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.airflow_stack import AirflowStack
from stacks.config import ConfigError, cdk_json_context, context_keys, parse_config


def build_app(overrides: Mapping[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The whole app. cdk.json's context is the base even without the CDK CLI (`python app.py`),
    the CLI's -c values come next, and `overrides` (used by tests) win over both."""
    app = cdk.App(
        context=cdk_json_context(), post_cli_context=dict(overrides or {}), outdir=outdir, analytics_reporting=False
    )
    raw = {key: app.node.try_get_context(key) for key in context_keys()}
    config = parse_config({key: value for key, value in raw.items() if value is not None})
    # Region only, no account: synthesis stays offline and needs no credentials or lookups.
    AirflowStack(app, config.stack_name, config=config, env=cdk.Environment(region=config.region))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> int:
    # cdk.App creates its output directory up front; a rejected configuration must leave nothing behind.
    outdir = Path(os.environ["CDK_OUTDIR"]) if os.environ.get("CDK_OUTDIR") else None
    outdir_existed = outdir is not None and outdir.exists()
    try:
        app = build_app()
    except ConfigError as error:
        if outdir is not None and not outdir_existed and outdir.is_dir() and not any(outdir.iterdir()):
            outdir.rmdir()
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        app.synth()
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        # The plugin report (cdk-nag findings, with the id to acknowledge) has been printed above.
        print("error: synthesis stopped by a validation finding (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
