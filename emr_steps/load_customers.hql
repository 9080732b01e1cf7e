-- Load the mall customers CSV into Hive: an external table over the CSV prefix and a typed table.
--
-- Runs unchanged with `hive -f` (EMR step) and `spark-sql -f` (local tests, rehearsal):
--   --hivevar input_location=<prefix holding only the input CSVs, e.g. s3://data/input/mall_customers/>
--   --hivevar database=<Hive database, e.g. mall>
--
-- Columns are positional, so the header's spelling (`Genre` or `Gender`) does not matter; the header
-- line (and with it a UTF-8 BOM) is skipped. CRLF files leave a carriage return on the last field, so
-- every value is stripped of \r before TRIM. Non-numeric values become NULL (the CASE avoids CAST
-- errors under Spark's ANSI mode); sort_by_spending_score.py rejects such rows with a clear error.

CREATE DATABASE IF NOT EXISTS ${hivevar:database};

-- External: dropping it only forgets the metadata, the CSV stays. Recreated so LOCATION follows the run.
DROP TABLE IF EXISTS ${hivevar:database}.customers_csv;

CREATE EXTERNAL TABLE ${hivevar:database}.customers_csv (
  customer_id STRING,
  gender STRING,
  age STRING,
  annual_income_k_usd STRING,
  spending_score STRING
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY ','
STORED AS TEXTFILE
LOCATION '${hivevar:input_location}'
TBLPROPERTIES ('skip.header.line.count' = '1');

CREATE TABLE IF NOT EXISTS ${hivevar:database}.customers (
  customer_id INT,
  gender STRING,
  age INT,
  annual_income_k_usd INT,
  spending_score INT
)
STORED AS PARQUET;

INSERT OVERWRITE TABLE ${hivevar:database}.customers
SELECT
  CASE WHEN customer_id RLIKE '^[0-9]{1,9}$' THEN CAST(customer_id AS INT) END,
  gender,
  CASE WHEN age RLIKE '^[0-9]{1,9}$' THEN CAST(age AS INT) END,
  CASE WHEN annual_income_k_usd RLIKE '^[0-9]{1,9}$' THEN CAST(annual_income_k_usd AS INT) END,
  CASE WHEN spending_score RLIKE '^[0-9]{1,9}$' THEN CAST(spending_score AS INT) END
FROM (
  SELECT
    TRIM(regexp_replace(customer_id, '\r', '')) AS customer_id,
    TRIM(regexp_replace(gender, '\r', '')) AS gender,
    TRIM(regexp_replace(age, '\r', '')) AS age,
    TRIM(regexp_replace(annual_income_k_usd, '\r', '')) AS annual_income_k_usd,
    TRIM(regexp_replace(spending_score, '\r', '')) AS spending_score
  FROM ${hivevar:database}.customers_csv
) cleaned
-- Spark's Hive reader ignores skip.header.line.count, so header lines (with or without a BOM) are
-- dropped here too; blank lines (e.g. a trailing empty line) are not records either.
WHERE lower(customer_id) NOT LIKE '%customerid'
  AND (customer_id <> '' OR gender <> '' OR spending_score <> '');
