"""The emr_pipeline Variable's one definition: what it accepts and what it writes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow_assets.dags.emr_pipeline.variable import DEFAULTS, DagSettings, EmrPipelineVariable

from ...pipeline_support import PIPELINE_CONFIG


def test_json_round_trip_keeps_only_chosen_optional_keys():
    variable = EmrPipelineVariable.from_json(json.dumps(PIPELINE_CONFIG))
    assert json.loads(variable.to_json()) == PIPELINE_CONFIG
    assert "poll_interval_seconds" in PIPELINE_CONFIG and "sensor_mode" not in PIPELINE_CONFIG
    assert variable.sensor_mode == DEFAULTS["sensor_mode"] == "deferrable"


def test_every_missing_and_unknown_key_is_named_at_once():
    broken = {k: v for k, v in PIPELINE_CONFIG.items() if k not in {"subnet_id", "log_uri"}}
    with pytest.raises(ValueError, match="'emr_pipeline' lacks log_uri, subnet_id and has unknown keys poll_interval"):
        EmrPipelineVariable.from_dict({**broken, "poll_interval": 5})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"idle_timeout_seconds": "3600"}, "idle_timeout_seconds must be a number, not '3600'"),
        ({"core_instance_count": True}, "core_instance_count must be a number"),
        ({"sensor_mode": "async"}, r"sensor_mode must be one of \['deferrable', 'reschedule', 'poke'\], not 'async'"),
        ({"cluster_tags": ["a"]}, "cluster_tags must be an object"),
        ({"retry_delay_seconds": -5}, "retry_delay_seconds must be a positive number of seconds, not -5"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds must be a positive number of seconds, not 0"),
    ],
)
def test_malformed_values_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        EmrPipelineVariable.from_dict({**PIPELINE_CONFIG, **change})


def test_a_json_that_is_no_object_is_named():
    with pytest.raises(ValueError, match="must be a JSON object, not list"):
        EmrPipelineVariable.from_json("[]")


def test_dag_settings_need_no_variable_and_take_the_defaults():
    settings = DagSettings.from_dict(None)
    assert settings == DagSettings.from_dict(
        PIPELINE_CONFIG | {"poll_interval_seconds": DEFAULTS["poll_interval_seconds"]}
    )
    assert (settings.retry_delay, settings.deferrable, settings.mode) == (timedelta(seconds=60), True, "poke")
    assert (settings.sensor_timeout_seconds, settings.run_timeout_seconds) == (6 * 60 * 60, None)


def test_dag_settings_ignore_the_required_keys_and_name_every_bad_parse_time_key():
    assert DagSettings.from_dict({"sensor_mode": "reschedule"}).mode == "reschedule"
    with pytest.raises(
        ValueError, match="sensor_mode must be one of .*; retry_delay_seconds must be a positive number"
    ):
        DagSettings.from_dict({"retry_delay_seconds": "5", "sensor_mode": "async"})
    with pytest.raises(ValueError, match="must be a JSON object, not list"):
        DagSettings.from_dict([])
