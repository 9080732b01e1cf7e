"""Code shared by dag_1 (EMR cluster lifecycle) and dag_2 (Hive load and PySpark sort on that cluster)."""
