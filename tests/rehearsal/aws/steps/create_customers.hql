-- Test fixture: an external table over a CSV prefix, then a typed managed copy in the warehouse.
CREATE DATABASE IF NOT EXISTS ${hivevar:database};
DROP TABLE IF EXISTS ${hivevar:database}.raw_customers;
CREATE EXTERNAL TABLE ${hivevar:database}.raw_customers (
  customer_id STRING, genre STRING, age STRING, income STRING, score STRING
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY ','
LOCATION '${hivevar:input_location}';
DROP TABLE IF EXISTS ${hivevar:database}.customers;
CREATE TABLE ${hivevar:database}.customers STORED AS PARQUET AS
SELECT CAST(customer_id AS INT) AS customer_id, CAST(score AS INT) AS score
FROM ${hivevar:database}.raw_customers
WHERE customer_id RLIKE '^[0-9]+$';
