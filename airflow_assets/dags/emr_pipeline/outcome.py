"""The outcome mail of dag_1: what happened, composed from task states and sent through SES."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from jinja2 import Environment

FAILED_STATES = frozenset({"failed", "upstream_failed"})

_MAIL = Environment(autoescape=True).from_string(
    """<h2>EMR pipeline {{ o.verdict }}</h2>
<table>
<tr><th align="left">DAG run</th><td>{{ o.dag_id }} / {{ o.run_id }}</td></tr>
<tr><th align="left">Outcome</th><td>{{ o.verdict }}</td></tr>
<tr><th align="left">Failed tasks</th><td>{% for t in o.failed_tasks %}{{ t }}<br>{% else %}none{% endfor %}</td></tr>
{% if o.step_errors %}<tr><th align="left">EMR step errors</th><td>{% for e in o.step_errors %}{{ e }}<br>{% endfor %}</td></tr>
{% endif %}<tr><th align="left">EMR cluster</th><td>{{ o.cluster_id or "not created" }}</td></tr>
<tr><th align="left">Triggered run</th><td>{{ o.triggered_run_id or "none" }}</td></tr>
<tr><th align="left">Output</th><td>{{ o.output_uri }}</td></tr>
<tr><th align="left">Duration</th><td>{{ o.duration }}</td></tr>
</table>
"""
)


@dataclass(frozen=True)
class Outcome:
    dag_id: str
    run_id: str
    cluster_id: str | None
    triggered_run_id: str | None
    output_uri: str
    duration: timedelta
    failed_tasks: list[str] = field(default_factory=list)
    # "step name: what EMR found in the step's logs" for each failed step (e.g. the job's `error:` line)
    step_errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return not self.failed_tasks

    @property
    def verdict(self) -> str:
        return "SUCCEEDED" if self.succeeded else "FAILED"

    @property
    def subject(self) -> str:
        return f"[{self.dag_id}] EMR pipeline {self.verdict}: {self.run_id}"

    def html(self) -> str:
        return _MAIL.render(o=self)


def failed_tasks(dag_id: str, states: dict[str, str | None]) -> list[str]:
    """``dag_id.task_id (state)`` for every task that failed or could not run because of a failure."""
    return [f"{dag_id}.{task} ({state})" for task, state in sorted(states.items()) if state in FAILED_STATES]


def step_errors(steps: list[dict]) -> list[str]:
    """One line per failed EMR step (ListSteps' StepSummary) from its FailureDetails."""
    lines = []
    for step in steps:
        details = step.get("Status", {}).get("FailureDetails") or {}
        found = [text for text in (details.get("Reason"), details.get("Message")) if text]
        lines.append(f"{step.get('Name', step.get('Id'))}: {' / '.join(dict.fromkeys(found)) or 'no details'}")
    return lines


def whole_seconds(duration: timedelta) -> timedelta:
    return timedelta(seconds=round(duration.total_seconds()))
