"""The emulated AWS side of the local rehearsal: moto server, seeded resources, local EMR step runner."""

from rehearsal.aws.local_aws import LocalAws
from rehearsal.aws.spark_env import RehearsalEnvironmentError, find_spark_environment
from rehearsal.aws.step_commands import UnsupportedStepError

__all__ = ["LocalAws", "RehearsalEnvironmentError", "UnsupportedStepError", "find_spark_environment"]
