"""Test fixture: a PySpark job that fails with a recognisable error and exit status 3."""

import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("fail").getOrCreate()
spark.stop()
print("error: fixture failure on purpose", file=sys.stderr)
sys.exit(3)
