"""Make the Airflow user ``admin`` (FAB auth manager, role Admin) log in with the password in Secrets Manager.

The api-server unit runs this before every start (ExecStartPre, under ``airflow_secret.py exec`` like
the service itself), so the user exists once the scheduler node has migrated the database (which
creates the FAB tables), a changed secret takes effect with the next restart, and the password
never reaches a file or a command line.
"""

from __future__ import annotations

import argparse
import sys

ADMIN_ROLE = "Admin"


def sync_admin(username: str, password: str) -> str:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        role = security.find_role(ADMIN_ROLE)
        if role is None:
            raise SystemExit(f"admin_user: the FAB role {ADMIN_ROLE} does not exist (was `airflow db migrate` run?)")
        user = security.find_user(username=username)
        if user is None:
            if not security.add_user(username, "Airflow", "Admin", f"{username}@localhost", role, password):
                raise SystemExit(f"admin_user: FAB could not create the user {username}")
            return "created"
        if role not in user.roles:
            user.roles.append(role)
            security.update_user(user)
        if not security.reset_password(user.id, password):
            raise SystemExit(f"admin_user: FAB could not set the password of {username}")
        return "updated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("secret_id", help="Secrets Manager id of the plain-string admin password")
    parser.add_argument("--user", default="admin")
    args = parser.parse_args(argv)
    from airflow.providers.amazon.aws.hooks.secrets_manager import SecretsManagerHook

    try:
        password = SecretsManagerHook(aws_conn_id="aws_default").get_secret(args.secret_id)
    except Exception as error:  # the message names the secret id, never its value
        print(f"admin_user: cannot read secret {args.secret_id}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"admin_user: {sync_admin(args.user, password)} {args.user} (role {ADMIN_ROLE})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
