"""Test fixture: read the Hive table the HQL fixture created and write it sorted as Parquet."""

import sys

from pyspark.sql import SparkSession

table, output = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.appName("write_sorted").enableHiveSupport().getOrCreate()
frame = spark.table(table).orderBy("score", "customer_id").coalesce(1)
frame.write.mode("overwrite").parquet(output)
print(f"wrote {frame.count()} rows to {output}")
spark.stop()
