"""Fixtures for the infrastructure tests.

Synthesis goes through jsii and takes seconds (a minute on a loaded machine), so every app variant is
synthesized at most once per session (in-process, into a tmp dir) and all tests read the resulting
cloud assembly. A variant is synthesized when a test first asks for it: a run of a few dev-only tests
(e.g. `make fidelity`'s checks) pays for one synthesis, not three.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest

from .infra_support import VARIANTS, Assembly, synthesize


def pytest_configure(config):
    # Before any test module imports aws_cdk (which starts jsii): the tests read none of its banner about
    # the Node.js version, and it would clutter every synthesis's output.
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


class Assemblies(Mapping[str, Assembly]):
    def __init__(self, tmp_path_factory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._done: dict[str, Assembly] = {}

    def __getitem__(self, name: str) -> Assembly:
        if name not in self._done:
            self._done[name] = synthesize(self._tmp_path_factory.mktemp(f"cdk-{name}"), VARIANTS[name])
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(VARIANTS)

    def __len__(self) -> int:
        return len(VARIANTS)


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory) -> Mapping[str, Assembly]:
    return Assemblies(tmp_path_factory)


@pytest.fixture(scope="session")
def dev(assemblies) -> Assembly:
    return assemblies["dev"]
