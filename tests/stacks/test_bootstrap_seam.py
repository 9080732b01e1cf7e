"""The stack's node.env and commands, read by the node bootstrap of airflow_assets/ (contracts §4)."""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import REPO_ROOT

from .infra_support import VARIANTS, node_env, parse_env, render

BOOTSTRAP = REPO_ROOT / "airflow_assets" / "bootstrap"


def bootstrap_node_module():
    if not (BOOTSTRAP / "node.py").exists():
        pytest.skip("airflow_assets/bootstrap/node.py is not there")
    if str(BOOTSTRAP) not in sys.path:
        sys.path.insert(0, str(BOOTSTRAP))  # as when node.py runs as a script: its sibling modules import
    spec = importlib.util.spec_from_file_location("bootstrap_node", BOOTSTRAP / "node.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def instances(assembly):
    return dict(assembly.resources("AWS::EC2::Instance"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_node_runs_an_existing_role_entry_script(assemblies, variant):
    for logical_id, instance in instances(assemblies[variant]).items():
        command = instance["Metadata"]["AWS::CloudFormation::Init"]["bootstrap"]["commands"]["20-bootstrap"]["command"]
        script = command.split()[1].replace("/opt/airflow/assets/", "")
        assert (REPO_ROOT / "airflow_assets" / script).is_file(), (
            f"{logical_id} runs {script}, which airflow_assets/ lacks"
        )
        assert command.endswith(" all")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bootstrap_accepts_the_node_env_the_stack_writes(assemblies, variant, tmp_path):
    node = bootstrap_node_module()
    for logical_id in instances(assemblies[variant]):
        text = node_env(assemblies[variant].template, logical_id)
        path = tmp_path / f"{logical_id}.env"
        path.write_text(text)
        parsed = node.read_node_env(path)
        written = parse_env(text)
        for key, value in written.items():
            assert parsed[key] == value, key
        assert json.loads(parsed["EMR_PIPELINE_JSON"])["hive_database"] == "mall"


# -- the bootstrap under cfn-init's environment ---------------------------------------------------
# cfn-init runs a command with `env` as its whole environment ("overwrites, rather than appends, the
# existing environment"), through the shell. The tests below run the bootstrap exactly so: `env -i`
# plus the synthesized `env` map, inside a private mount namespace whose /usr/local/sbin (the first
# entry of AL2023's root PATH, empty on this machine) holds stand-ins for AL2023's dnf and rpm.
STANDIN_DIR = "/usr/local/sbin"
CLOUD_INIT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}


def bootstrap_command(assembly, logical_prefix: str) -> dict:
    instance = next(v for k, v in instances(assembly).items() if k.startswith(logical_prefix))
    return instance["Metadata"]["AWS::CloudFormation::Init"]["bootstrap"]["commands"]["20-bootstrap"]


def real_binary(name: str) -> Path | None:
    """`name` as an executable file, not a pyenv shim (a shim needs the caller's environment)."""
    for candidate in (
        Path(sys.executable).resolve().parent / name,
        Path(sys.prefix) / "bin" / name,
        shutil.which(name),
    ):
        if candidate and Path(candidate).is_file() and Path(candidate).read_bytes()[:4] == b"\x7fELF":
            return Path(candidate)
    return None


def can_bind_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False)
    return probe.returncode == 0 and Path(STANDIN_DIR).is_dir()


def al2023_standins(directory: Path, python311: Path) -> None:
    """dnf installs into the stand-in directory what AL2023 puts on root's PATH; rpm -q reports what dnf installed."""
    installed = directory / ".installed"
    installed.mkdir(parents=True)
    (directory / "rpm").write_text(f'#!/bin/sh\n[ "$1" = -q ] && [ -e "{installed}/$2" ]\n')
    (directory / "dnf").write_text(
        "#!/bin/sh\n"
        f'for pkg in "$@"; do case $pkg in -*|install) ;; *) /usr/bin/touch "{installed}/$pkg" ;; esac; done\n'
        f'[ -e "{installed}/python3.11" ] && /bin/cp {directory}/.python3.11 {directory}/python3.11\n'
        "exit 0\n"
    )
    # A wrapper, not a symlink: a symlinked interpreter would look for its standard library beside the link.
    (directory / ".python3.11").write_text(f'#!/bin/sh\nexec {python311} "$@"\n')
    for script in ("rpm", "dnf", ".python3.11"):
        (directory / script).chmod(0o755)


def probe_sdist_requirements(tmp_path: Path) -> Path:
    """A source-only package whose build runs pkg-config and gcc, as mysqlclient's does; no index needed."""
    source = tmp_path / "pkgconfig-probe"
    source.mkdir()
    (source / "pyproject.toml").write_text(
        '[project]\nname = "pkgconfig-probe"\nversion = "1.0"\n'
        '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\nbackend-path = ["."]\n'
    )
    (source / "probe_backend.py").write_text(
        "import base64, hashlib, subprocess, zipfile\n"
        "def _tools():\n"
        "    subprocess.run(['pkg-config', '--version'], check=True)\n"
        "    subprocess.run(['gcc', '--version'], check=True, capture_output=True)\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    _tools()\n"
        "    name = 'pkgconfig_probe-1.0-py3-none-any.whl'\n"
        "    files = {'pkgconfig_probe.py': b'BUILT = True\\n',\n"
        "             'pkgconfig_probe-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: pkgconfig-probe\\nVersion: 1.0\\n',\n"
        "             'pkgconfig_probe-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
        "    record = [f\"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\" for p, d in files.items()]\n"
        "    files['pkgconfig_probe-1.0.dist-info/RECORD'] = ('\\n'.join(record + ['pkgconfig_probe-1.0.dist-info/RECORD,,']) + '\\n').encode()\n"
        "    with zipfile.ZipFile(f'{wheel_directory}/{name}', 'w') as wheel:\n"
        "        for path, data in files.items():\n"
        "            wheel.writestr(path, data)\n"
        "    return name\n"
    )
    requirements = tmp_path / "requirements-airflow.txt"
    requirements.write_text(f"--no-index\npkgconfig-probe @ file://{source}\n")
    return requirements


def in_private_mounts(mounts: dict[Path, str], steps: list[tuple[dict[str, str], str]]) -> subprocess.CompletedProcess:
    """Each (environment, shell command) step through /bin/sh with exactly `env -i` + that environment,
    in order, stopping at the first failure, inside a private mount namespace with `mounts` bound."""
    binding = " && ".join(
        f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}" for source, target in mounts.items()
    )
    runs = [
        f"(cd / && env -i {' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())} /bin/sh -c {shlex.quote(command)})"
        for env, command in steps
    ]
    inner = " && ".join([binding, *runs])
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", inner],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def cfn_init_env(command: dict) -> dict[str, str]:
    """A command's `env` replaces cfn-init's environment; without one it inherits cloud-init's (root's login PATH)."""
    env = dict(command["env"]) if "env" in command else dict(CLOUD_INIT_ENV)
    assert all(isinstance(v, str) for v in env.values()), f"env holds unresolved tokens: {env}"
    return env


def run_as_cfn_init(
    command: dict, script_command: str, standins: Path, node_env_file: Path, binds: dict[Path, str] | None = None
) -> subprocess.CompletedProcess:
    """`script_command` as cfn-init runs `command`, with `standins` on /usr/local/sbin and `binds` mounted."""
    env = {
        **cfn_init_env(command),
        "NODE_ENV_FILE": str(node_env_file),
    }  # the same file, in tmp instead of /etc/airflow
    return in_private_mounts({standins: STANDIN_DIR, **(binds or {})}, [(env, script_command)])


def role_script(command: dict, phase: str) -> str:
    return (
        command["command"]
        .replace("/opt/airflow/assets/", f"{REPO_ROOT / 'airflow_assets'}/")
        .replace(" all", f" {phase}")
    )


@pytest.mark.skipif(
    not can_bind_mount(), reason="needs root and `unshare --mount` to put AL2023's dnf/rpm stand-ins on the PATH"
)
@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="needs a Python 3.11 interpreter to stand in for AL2023's python3.11"
)
def test_install_phase_works_with_exactly_the_environment_cfn_init_gives_it(dev, tmp_path):
    uv = real_binary("uv")
    if uv is None:
        pytest.skip("no uv executable (only a shim) to seed the bootstrap's tool venv with")
    command = bootstrap_command(dev, "Scheduler")
    standins = tmp_path / "usr-local-sbin"
    al2023_standins(standins, Path(sys.executable).resolve())
    home = tmp_path / "home"
    # This machine reaches PyPI only with its own CA settings, which cfn-init's environment does not
    # carry: the bootstrap's pinned uv is put where its first run would have installed it.
    (home / ".bootstrap-tools" / "bin").mkdir(parents=True)
    (home / ".bootstrap-tools" / "bin" / "uv").symlink_to(uv)
    node_env_file = tmp_path / "node.env"
    node_env_file.write_text(
        node_env(dev.template, "Scheduler")
        + f"AIRFLOW_HOME={home}\nAIRFLOW_VENV={tmp_path / 'venv'}\nAIRFLOW_USER=\n"
        + f"AIRFLOW_REQUIREMENTS={probe_sdist_requirements(tmp_path)}\n"
    )
    result = run_as_cfn_init(command, role_script(command, "install"), standins, node_env_file)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (standins / ".installed").iterdir()} >= {"python3.11", "gcc", "pkgconf-pkg-config"}
    assert list((tmp_path / "venv").glob("lib/python3.11/site-packages/pkgconfig_probe.py"))


@pytest.mark.skipif(
    not can_bind_mount(), reason="needs root and `unshare --mount` to give useradd a private copy of /etc"
)
def test_install_creates_the_service_user_with_the_uid_and_gid_the_efs_access_point_forces(dev, tmp_path):
    posix_user = next(iter(dev.resources("AWS::EFS::AccessPoint").values()))["Properties"]["PosixUser"]
    command = bootstrap_command(dev, "Worker")
    standins = tmp_path / "usr-local-sbin"
    al2023_standins(standins, Path(sys.executable).resolve())
    etc = tmp_path / "etc"
    # useradd/groupadd rewrite /etc/passwd and /etc/group by renaming, so the whole /etc is a private copy.
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True)
    written = parse_env(node_env(dev.template, "Worker"))
    user = written["AIRFLOW_USER"]
    assert user and subprocess.run(["getent", "passwd", user], capture_output=True).returncode, (
        f"{user} exists on this machine"
    )
    # The venv is already there (install then only sees to the user), so no package is installed.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".bootstrap-requirements.sha256").write_text(hashlib.sha256(requirements.read_bytes()).hexdigest() + "\n")
    node_env_file = tmp_path / "node.env"
    node_env_file.write_text(
        node_env(dev.template, "Worker")
        + f"AIRFLOW_HOME={tmp_path / 'home'}\nAIRFLOW_VENV={venv}\nAIRFLOW_REQUIREMENTS={requirements}\n"
    )
    for run in ("first", "again"):
        result = run_as_cfn_init(command, role_script(command, "install"), standins, node_env_file, binds={etc: "/etc"})
        assert result.returncode == 0, f"{run}: {result.stderr}"
    passwd = {line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()}
    group = {line.split(":")[0]: line.split(":") for line in (etc / "group").read_text().splitlines()}
    assert (passwd[user][2], passwd[user][3]) == (str(posix_user["Uid"]), str(posix_user["Gid"]))
    assert group[user][2] == str(posix_user["Gid"])
    assert (tmp_path / "home").stat().st_uid == int(posix_user["Uid"])


def systemd_standins(directory: Path, calls: Path) -> None:
    """systemctl that knows only the unit files on disk (like systemd after daemon-reload), mount/mountpoint for EFS."""
    (directory / "systemctl").write_text(
        "#!/bin/sh\n"
        'verb=$1; unit=${2:-}; case $unit in ""|*.*) ;; *) unit=$unit.service ;; esac\n'
        f'echo "$verb${{unit:+ $unit}}" >> {calls}\n'
        'known() { [ -e "/etc/systemd/system/$unit" ] || [ -e "/usr/lib/systemd/system/$unit" ]; }\n'
        "case $verb in\n"
        "  daemon-reload) exit 0 ;;\n"
        '  cat) known || { echo "No files found for $unit." >&2; exit 1; } ;;\n'
        '  *) known || { echo "Unit $unit could not be found." >&2; exit 5; } ;;\n'
        "esac\n"
    )
    (directory / "mountpoint").write_text("#!/bin/sh\nexit 1\n")
    (directory / "mount").write_text("#!/bin/sh\nexit 0\n")
    for script in ("systemctl", "mountpoint", "mount"):
        (directory / script).chmod(0o755)


@pytest.mark.skipif(
    not can_bind_mount(), reason="needs root and `unshare --mount` for a private /etc and stand-ins on the PATH"
)
def test_files_config_enables_cfn_hup_where_aws_cfn_bootstrap_installed_no_unit(dev, tmp_path):
    """The `files` config as cfn-init applies it on an AL2023 node whose aws-cfn-bootstrap put no
    cfn-hup.service where systemd looks (amazon-linux-2023#728): its commands in key order, then its
    systemd services (enable, ensureRunning)."""
    instance = next(v for k, v in instances(dev).items() if k.startswith("Scheduler"))
    files_config = instance["Metadata"]["AWS::CloudFormation::Init"]["files"]
    standins = tmp_path / "usr-local-sbin"
    standins.mkdir()
    calls = tmp_path / "systemctl.calls"
    systemd_standins(standins, calls)
    etc, mnt = tmp_path / "etc", tmp_path / "mnt"
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True)
    mnt.mkdir()
    assert not (etc / "systemd" / "system" / "cfn-hup.service").exists()
    steps = []
    for _key, command in sorted(files_config.get("commands", {}).items()):
        text = render(command["command"]).replace("/opt/airflow/assets/", f"{REPO_ROOT / 'airflow_assets'}/")
        steps.append((cfn_init_env(command), text))
    services = files_config["services"]["systemd"]
    assert "cfn-hup" in services
    for name, spec in services.items():
        if str(spec.get("enabled")).lower() == "true":
            steps.append((dict(CLOUD_INIT_ENV), f"systemctl enable {name}"))
        if str(spec.get("ensureRunning")).lower() == "true":
            steps.append((dict(CLOUD_INIT_ENV), f"systemctl start {name}"))
    result = in_private_mounts({standins: STANDIN_DIR, etc: "/etc", mnt: "/mnt"}, steps)
    assert result.returncode == 0, result.stderr
    unit = etc / "systemd" / "system" / "cfn-hup.service"
    assert unit.is_file()
    service = configparser.ConfigParser(strict=False)
    service.read_string(unit.read_text())
    assert service["Service"]["ExecStart"].split()[0] == "/opt/aws/bin/cfn-hup"
    assert service["Install"]["WantedBy"] == "multi-user.target"
    made = calls.read_text().splitlines()
    assert made.index("daemon-reload") < made.index("enable cfn-hup.service") < made.index("start cfn-hup.service")
