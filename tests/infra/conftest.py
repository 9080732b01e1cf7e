"""Fixtures for the infrastructure tests.

Synthesis goes through jsii and takes seconds, so every app variant is synthesized once per
session (in-process, into a tmp dir) and all tests read the resulting cloud assembly.
"""

from __future__ import annotations

import pytest

from .infra_support import VARIANTS, Assembly, synthesize


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory) -> dict[str, Assembly]:
    return {name: synthesize(tmp_path_factory.mktemp(f"cdk-{name}"), ctx) for name, ctx in VARIANTS.items()}


@pytest.fixture(scope="session")
def dev(assemblies) -> Assembly:
    return assemblies["dev"]
