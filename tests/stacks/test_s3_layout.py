"""stacks/s3_layout.py: the prefixes of contracts §5 and the pipeline's URIs built from them."""

from __future__ import annotations

from stacks import s3_layout
from stacks.s3_layout import PipelineUris


def test_the_pipeline_uris_lay_out_the_stacks_buckets():
    uris = PipelineUris.in_buckets(data_bucket="data", logs_bucket="logs", code_bucket="code")
    assert uris == PipelineUris(
        input="s3://data/input/mall_customers/Mall_Customers.csv",
        output="s3://data/output/customers_by_spending_score/",
        steps="s3://code/emr_steps/",
        emr_logs="s3://logs/emr/",
        airflow_logs="s3://logs/airflow/",
    )


def test_given_input_and_output_uris_replace_only_the_data_buckets():
    uris = PipelineUris.in_buckets(
        data_bucket="data",
        logs_bucket="logs",
        code_bucket="code",
        input_uri="s3://mine/in/x.csv",
        output_uri="s3://mine/out/",
    )
    assert (uris.input, uris.output) == ("s3://mine/in/x.csv", "s3://mine/out/")
    assert uris.steps == "s3://code/emr_steps/" and uris.emr_logs == "s3://logs/emr/"


def test_every_prefix_is_a_folder_and_no_two_overlap():
    prefixes = [
        s3_layout.INPUT_PREFIX,
        s3_layout.OUTPUT_PREFIX,
        s3_layout.AIRFLOW_LOG_PREFIX,
        s3_layout.EMR_LOG_PREFIX,
        s3_layout.EMR_STEPS_PREFIX,
    ]
    assert all(prefix.endswith("/") and not prefix.startswith("/") for prefix in prefixes)
    assert not any(a != b and a.startswith(b) for a in prefixes for b in prefixes)
