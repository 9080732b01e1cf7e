"""The blockers of the two review issues (first deploy, first run), each as a mutation of the code that
fixed it and the cheapest check that models the AWS rule it breaks (rehearsal/fidelity.py runs them).

Each check is the narrowest pytest selection that fails for that rule, so `make fidelity` stays minutes.
"""

from __future__ import annotations

from rehearsal.fidelity import Check, Edit, Mutation


def pytest(*node_ids: str) -> tuple[str, ...]:
    # -x: the first failure is enough; -p no:cacheprovider: nothing written beside the scratch copy's tests.
    return ("{pytest}", "-q", "-x", "--tb=short", "-p", "no:cacheprovider", *node_ids)


IAM_TESTS = "tests/stacks/test_iam.py"
SEAM_TESTS = "tests/stacks/test_bootstrap_seam.py"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "run-job-flow-on-cluster-arn",
        "RunJobFlow supports no resource type: IAM authorises it against * only",
        (
            Edit(
                "stacks/constructs/node_role.py",
                'actions=["elasticmapreduce:RunJobFlow"],\n                resources=["*"],',
                'actions=["elasticmapreduce:RunJobFlow"],\n'
                '                resources=[stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")],',
            ),
        ),
        # parliament names the resource-type mismatch; the evaluator then denies the DAG's request.
        # One pytest (one synthesis), no -x: parliament names the resource-type mismatch, the evaluator
        # then denies the DAG's request.
        (
            Check(
                (
                    "{pytest}",
                    "-q",
                    "--tb=short",
                    "-p",
                    "no:cacheprovider",
                    f"{IAM_TESTS}::test_parliament_finds_no_policy_aws_would_not_honour[dev]",
                    f"{IAM_TESTS}::test_the_node_role_may_create_the_cluster_the_dag_requests",
                ),
                (
                    r"RESOURCE_MISMATCH.*elasticmapreduce:RunJobFlow|elasticmapreduce:RunJobFlow.*RESOURCE_MISMATCH",
                    r"NodeRole\w*: no statement allows elasticmapreduce:RunJobFlow on \* \(implicit deny\)",
                ),
            ),
        ),
    ),
    Mutation(
        "cluster-without-managed-policy-tag",
        "AmazonEMRServicePolicy_v2 acts only on resources tagged for-use-with-amazon-emr-managed-policies=true",
        (
            Edit(
                "stacks/constructs/node_role.py",
                'return {EMR_TAG_KEY: "true", STACK_TAG_KEY: stack.stack_name}',
                "return {STACK_TAG_KEY: stack.stack_name}",
            ),
        ),
        (
            Check(
                pytest(f"{IAM_TESTS}::test_emr_can_launch_the_clusters_instances_with_the_v2_service_policy"),
                (r"lack for-use-with-amazon-emr-managed-policies=true, which AmazonEMRServicePolicy_v2 requires",),
            ),
        ),
    ),
    Mutation(
        "instance-profile-named-apart-from-role",
        "EMR rejects a JobFlowRole instance profile whose name differs from its role's",
        (
            Edit(
                "stacks/constructs/emr_roles.py",
                "role=self.instance_role, instance_profile_name=self.instance_role.role_name",
                "role=self.instance_role",
            ),
        ),
        (
            Check(
                pytest(f"{IAM_TESTS}::test_the_instance_profile_is_named_like_its_role"),
                (r"must be named like its role",),
            ),
        ),
    ),
    Mutation(
        "staging-outside-output-prefix",
        "the instance role may write only under the output prefix (EMRFS PUTs a sibling staging folder elsewhere)",
        (
            Edit(
                "emr_steps/sort_by_spending_score.py",
                '        frame.write.mode("error").parquet(run_path.toString())\n',
                '        staging = jvm.org.apache.hadoop.fs.Path(root.getParent(), f"_tmp_{root.getName()}_{uuid.uuid4().hex[:8]}")\n'
                '        frame.write.mode("error").parquet(staging.toString())\n'
                "        fs.mkdirs(run_path.getParent())\n"
                "        fs.rename(staging, run_path)\n",
            ),
        ),
        (
            Check(
                pytest(
                    "tests/rehearsal/aws/test_spark_steps.py::test_the_real_emr_steps_sort_the_real_dataset_on_the_releases_spark_line"
                ),
                (r"not authorized to perform: s3:PutObject",),
            ),
        ),
    ),
    Mutation(
        "pyspark-4-only-api",
        "EMR 7.x runs Spark 3.5: Column.try_cast exists only from PySpark 4.0",
        (
            Edit(
                "emr_steps/sort_by_spending_score.py",
                'typed = F.when(raw.rlike(WHOLE_NUMBER), raw.cast("int"))',
                'typed = F.when(raw.rlike(WHOLE_NUMBER), raw.try_cast("int"))',
            ),
        ),
        # The API comparison of the two Spark lines (seconds, no JVM); the job tests on the release's line
        # (tests/emr_steps/test_sort_job.py, test_hive_load.py) fail too, after minutes of Spark.
        (
            Check(
                pytest(
                    "tests/emr_steps/test_spark_api.py::test_the_steps_use_no_pyspark_api_the_releases_spark_line_lacks"
                ),
                (
                    r"uses \['try_cast'\], which pyspark 4[\d.]* has and pyspark 3\.5[\d.]* of emr-[\d.]+ \(what EMR runs\) lacks",
                ),
            ),
        ),
    ),
    Mutation(
        "cfn-init-env-without-path",
        "cfn-init's `env` replaces the command's whole environment: no PATH unless it names one",
        # Both defences go: the template's PATH and the bootstrap's `export PATH` of bash's built-in
        # default (either alone keeps the install working, so removing one is no blocker).
        (
            Edit(
                "stacks/constructs/airflow_node.py",
                '    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",\n',
                "",
            ),
            Edit("airflow_assets/bootstrap/lib/bootstrap.sh", "\nexport PATH\n", "\n"),
        ),
        (
            Check(
                pytest(f"{SEAM_TESTS}::test_install_phase_works_with_exactly_the_environment_cfn_init_gives_it"),
                (r"python3\.11 on PATH",),
            ),
        ),
    ),
    Mutation(
        "scheduler-gate-waits-on-api-server",
        "CloudFormation creates the api-server (and its DNS record) only after the scheduler node signalled",
        (
            Edit(
                "airflow_assets/bootstrap/node.py",
                "    def scheduler(self) -> str | None:\n",
                "    def scheduler(self) -> str | None:\n"
                "        return self._component(f\"http://{self.node.env['API_SERVER_HOST']}:{self.node.env['API_SERVER_PORT']}"
                '/api/v2/monitor/health", "scheduler")\n',
            ),
        ),
        (
            Check(
                pytest(
                    "tests/stacks/test_start_order.py::test_first_wave_nodes_pass_their_health_gate_before_later_nodes_exist"
                ),
                (r"unhealthy: scheduler: .*(Name or service not known|Temporary failure in name resolution)",),
            ),
        ),
    ),
    Mutation(
        "api-server-record-named-apart-from-its-host",
        "a name resolves only once its Route 53 record exists: the nodes' API_SERVER_HOST needs an A record of that name",
        (
            Edit(
                "stacks/constructs/dns.py",
                "            record_name=API_SERVER_RECORD,\n",
                '            record_name="api",\n',
            ),
        ),
        # The rehearsal's start refuses the template (a cluster run would fail its first task's Execution API
        # call with "Name or service not known" minutes later).
        (
            Check(
                pytest(
                    "tests/rehearsal/test_private_zone.py::test_every_name_the_template_hands_a_node_has_its_record"
                ),
                (
                    r"API_SERVER_HOST=api-server\.airflow\.internal, but the template has no A record of that name",
                    r"NXDOMAIN",
                ),
            ),
        ),
    ),
    Mutation(
        "rsync-owner-onto-access-point",
        "an EFS access point forces its uid/gid and refuses chown, even to root",
        (
            Edit(
                "airflow_assets/bootstrap/lib/bootstrap.sh",
                "rsync -a --no-owner --no-group --delete",
                "rsync -a --delete",
            ),
        ),
        (
            Check(
                pytest(
                    "tests/airflow_assets/bootstrap/test_configure.py::test_dag_sync_works_where_chown_is_refused_like_the_efs_access_point"
                ),
                (r"chown .*failed: (Operation not permitted|Permission denied)",),
            ),
        ),
    ),
    Mutation(
        "database-url-without-tls",
        "the RDS parameter group sets require_secure_transport: a connection without TLS is refused",
        (
            Edit(
                "airflow_assets/bootstrap/node.py",
                'sync_tls = ["--ca-bundle", env["DB_CA_BUNDLE"]] if tls else []',
                "sync_tls = []",
            ),
        ),
        (
            Check(
                pytest(
                    "tests/airflow_assets/bootstrap/test_db_tls.py::test_sync_and_async_engines_connect_over_verified_tls"
                ),
                (r"refused by a server with require_secure_transport=ON", r"Access denied|insecure transport"),
            ),
        ),
    ),
    Mutation(
        "secure-transport-off-and-client-not-verifying",
        "RDS accepts plain connections unless require_secure_transport=1; a client that does not verify the RDS CA accepts any server",
        (
            Edit(
                "stacks/constructs/database.py", '"require_secure_transport": "1",', '"require_secure_transport": "0",'
            ),
            Edit(
                "airflow_assets/bootstrap/metadata_db_tls.py",
                '    return {"ssl": ssl.create_default_context(cafile=ca_bundle)}',
                "    context = ssl.create_default_context(cafile=ca_bundle)\n"
                "    context.check_hostname = False\n"
                "    context.verify_mode = ssl.CERT_NONE\n"
                '    return {"ssl": context}',
            ),
        ),
        (
            Check(
                pytest(
                    "tests/stacks/constructs/test_database.py::test_database_mysql_84_tls_only_encrypted_and_private"
                ),
                (r"require_secure_transport",),
            ),
            Check(
                pytest(
                    "tests/airflow_assets/bootstrap/test_db_tls.py::test_both_engines_refuse_a_server_certificate_from_another_ca"
                ),
                (r"accepted a server certificate the CA bundle did not sign",),
            ),
        ),
    ),
)
