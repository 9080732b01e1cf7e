"""CDK stacks and constructs of the self-managed Airflow 3 cluster."""
