"""docs/architecture.md is generated from the app and must match what the app synthesizes now."""

from __future__ import annotations

import importlib.util

from stacks.config import REPO_ROOT


def load_diagram_module():
    spec = importlib.util.spec_from_file_location("diagram", REPO_ROOT / "scripts" / "diagram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_diagram_is_up_to_date(dev):
    diagram = load_diagram_module()
    expected = diagram.render(dev.outdir, dev.stack_name)
    committed = (REPO_ROOT / "docs" / "architecture.md").read_text()
    assert committed == diagram.page_with(expected, committed), "run .venv/bin/python scripts/diagram.py"


def test_readme_carries_the_same_diagram(dev):
    diagram = load_diagram_module()
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == diagram.readme_with(diagram.render(dev.outdir, dev.stack_name), readme), (
        "run .venv/bin/python scripts/diagram.py"
    )
    assert readme.count("```mermaid") == 1


def test_diagram_shows_the_security_group_paths(dev):
    text = load_diagram_module().render(dev.outdir, dev.stack_name)
    assert text.count("```mermaid") == 1
    for edge in (
        'Worker -->|"tcp 6380"| Broker',
        'Scheduler -->|"tcp 3307"| MetadataDb',
        'ApiServer -->|"tcp 2049"| SharedFs',
    ):
        assert edge in text
    assert "0.0.0.0" not in text and "<asset-hash>" not in text
