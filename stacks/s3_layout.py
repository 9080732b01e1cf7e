"""The S3 layout of contracts §5: under which prefix of which bucket each kind of object lives.

The stack grants, uploads and renders these; the rehearsal's seed lays out its emulated buckets the same
way, and the tests check against them. Pure Python (no CDK): bucket names may be CDK tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

# data bucket
INPUT_PREFIX = "input/mall_customers/"
# The pipeline reads this key; the stack uploads the `dataset_path` CSV to it whatever the local file is called.
INPUT_FILE_NAME = "Mall_Customers.csv"
INPUT_KEY = INPUT_PREFIX + INPUT_FILE_NAME
OUTPUT_PREFIX = "output/customers_by_spending_score/"
# logs bucket
AIRFLOW_LOG_PREFIX = "airflow/"
EMR_LOG_PREFIX = "emr/"
# code bucket
EMR_STEPS_PREFIX = "emr_steps/"


def s3_uri(bucket_name: str, key: str = "") -> str:
    return f"s3://{bucket_name}/{key}"


@dataclass(frozen=True, kw_only=True)
class PipelineUris:
    """The S3 locations the pipeline and the nodes use (input/output may point outside the stack's buckets)."""

    input: str
    output: str
    steps: str
    emr_logs: str
    airflow_logs: str

    @classmethod
    def in_buckets(
        cls,
        *,
        data_bucket: str,
        logs_bucket: str,
        code_bucket: str,
        input_uri: str | None = None,
        output_uri: str | None = None,
    ) -> PipelineUris:
        """The layout above in these buckets; `input_uri` / `output_uri`, when given, replace the data bucket's."""
        return cls(
            input=input_uri or s3_uri(data_bucket, INPUT_KEY),
            output=output_uri or s3_uri(data_bucket, OUTPUT_PREFIX),
            steps=s3_uri(code_bucket, EMR_STEPS_PREFIX),
            emr_logs=s3_uri(logs_bucket, EMR_LOG_PREFIX),
            airflow_logs=s3_uri(logs_bucket, AIRFLOW_LOG_PREFIX),
        )
