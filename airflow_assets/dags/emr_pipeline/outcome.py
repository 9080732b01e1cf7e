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
{% if o.ended %}<tr><th align="left">Ended</th><td>{{ o.ended }}</td></tr>{% endif %}
<tr><th align="left">Failed tasks</th><td>{% for t in o.failed_tasks %}{{ t }}<br>{% else %}none{% endfor %}</td></tr>
<tr><th align="left">EMR cluster</th><td>{{ o.cluster_id or "not created" }}</td></tr>
<tr><th align="left">Triggered run</th><td>{{ o.triggered_run_id or "none" }}</td></tr>
<tr><th align="left">Why</th><td>{% for r in o.reasons %}{{ r }}<br>{% else %}{{ "-" if o.succeeded else "no reason reported by EMR or the steps; see the task logs" }}{% endfor %}</td></tr>
<tr><th align="left">Output</th><td>{{ o.output_uri }}{% if o.published %} (published run: {{ o.output_uri }}{{ o.published.run }}, {{ o.published.rows }} rows; readers follow {{ o.output_uri }}_LATEST){% endif %}</td></tr>
{% if o.published %}<tr><th align="left">Output schema</th><td>Parquet, sorted by {{ o.published.sorted_by | join(", ") }}:<br>{% for c in o.published.columns %}{{ c.name }} {{ c.type }}<br>{% endfor %}</td></tr>{% endif %}
<tr><th align="left">Duration</th><td>{{ "unknown" if o.duration is none else o.duration }}</td></tr>
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
    duration: timedelta | None
    failed_tasks: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # emr_pipeline.diagnosis.failure_reasons
    published: dict | None = None  # the output's _LATEST pointer, shown on success
    # Why the run ended before its outcome task could mail (emr_pipeline.ending); such a run failed.
    ended: str | None = None

    @property
    def succeeded(self) -> bool:
        return not self.failed_tasks and self.ended is None

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


def whole_seconds(duration: timedelta) -> timedelta:
    return timedelta(seconds=round(duration.total_seconds()))
