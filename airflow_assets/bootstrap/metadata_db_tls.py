"""TLS for Airflow's async metadata engine (aiomysql): ``[database] sql_alchemy_connect_args_async``.

Airflow 3 derives its async URL from ``sql_alchemy_conn`` by switching the driver to aiomysql.
PyMySQL's ``ssl_ca=`` URL option would then reach aiomysql as a dict, and aiomysql takes TLS only
as an ``ssl.SSLContext`` (``'dict' object has no attribute 'wrap_bio'``). So the node gives the async
engine a URL without TLS options and these connect args, which verify the server certificate and
its host name against the CA bundle named by ``METADATA_DB_CA_BUNDLE``. Without that variable
the async engine connects without TLS (sqlite and the rehearsal's loopback MariaDB).

node.py copies this file into ``$AIRFLOW_HOME/config``, which Airflow puts on ``sys.path``.
"""

from __future__ import annotations

import os
import ssl

CA_BUNDLE_VARIABLE = "METADATA_DB_CA_BUNDLE"


def tls_connect_args(ca_bundle: str) -> dict[str, ssl.SSLContext]:
    # create_default_context: CERT_REQUIRED and check_hostname, like PyMySQL with ssl_ca.
    return {"ssl": ssl.create_default_context(cafile=ca_bundle)}


CONNECT_ARGS = tls_connect_args(os.environ[CA_BUNDLE_VARIABLE]) if os.environ.get(CA_BUNDLE_VARIABLE) else {}
