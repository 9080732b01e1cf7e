# shellcheck shell=bash
# Shared by the role entries (api-server.sh, scheduler.sh, worker.sh). Phases: install | configure |
# start | health | all. Everything a phase needs comes from node.env (contracts §4); each phase can
# run again and then changes nothing.
set -euo pipefail

BOOTSTRAP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS_DIR=$(dirname "$BOOTSTRAP_DIR")
NODE_ENV_FILE=${NODE_ENV_FILE:-/etc/airflow/node.env}
export NODE_ENV_FILE
# cfn-init replaces the environment with its `env` map. A bash started without PATH searches its
# built-in default but does not export it, so uv and the builds it runs would find nothing: export it,
# and HOME from the password database when the caller gave none.
export PATH
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export HOME
UV_VERSION=0.13.8
AL2023_PACKAGES=(python3.11 python3.11-devel gcc mariadb-connector-c-devel pkgconf-pkg-config rsync amazon-efs-utils)
ROLE=unknown

log() { printf 'bootstrap[%s] %s\n' "$ROLE" "$*" >&2; }
fail() {
  printf 'bootstrap[%s]: error: %s\n' "$ROLE" "$*" >&2
  exit 1
}

# One value of node.env, read without sourcing it: KEY=VALUE, the value optionally quoted.
node_env() {
  local key=$1 line value
  line=$(grep -E "^${key}=" "$NODE_ENV_FILE" | tail -n 1 || true)
  value=${line#*=}
  if [[ $value =~ ^\'(.*)\'$ || $value =~ ^\"(.*)\"$ ]]; then
    value=${BASH_REMATCH[1]}
  fi
  if [[ -z $value ]]; then
    (($# > 1)) || fail "$NODE_ENV_FILE has no value for $key"
    value=$2
  fi
  printf '%s' "$value"
}

venv_dir() { node_env AIRFLOW_VENV; }
node_py() { "$(venv_dir)/bin/python" "$BOOTSTRAP_DIR/node.py" "$@"; }

# Runs the airflow CLI as the service user with this node's rendered settings.
airflow_cli() {
  local env_file user
  env_file=$(node_py env-file)
  [[ -f $env_file ]] || fail "$env_file is missing: run the configure phase first"
  user=$(node_env AIRFLOW_USER "")
  local as_user=()
  if [[ -n $user && $(id -u) == 0 ]]; then as_user=(runuser -u "$user" --); fi
  (
    set -a
    # shellcheck source=/dev/null
    . "$env_file"
    set +a
    # One secrets lookup for the whole command instead of one per *_CMD option Airflow reads.
    exec "${as_user[@]}" "$(venv_dir)/bin/python" "$BOOTSTRAP_DIR/airflow_secret.py" exec -- "$(venv_dir)/bin/airflow" "$@"
  )
}

default_requirements() {
  local candidate
  for candidate in "$ASSETS_DIR/requirements-airflow.txt" "$ASSETS_DIR/../requirements-airflow.txt"; do
    if [[ -f $candidate ]]; then
      printf '%s' "$candidate"
      return 0
    fi
  done
  printf '%s' "$ASSETS_DIR/requirements-airflow.txt"
}

install_os_packages() {
  local missing=() pkg
  for pkg in "${AL2023_PACKAGES[@]}"; do
    rpm -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "install: dnf install ${missing[*]}"
    dnf install -y -q "${missing[@]}" >/dev/null || fail "dnf could not install ${missing[*]}"
  fi
}

# The service user gets the uid/gid the EFS access point forces (AIRFLOW_UID/AIRFLOW_GID), so the
# files on the shared file system belong to it on every node.
ensure_service_user() {
  local user home uid gid
  user=$(node_env AIRFLOW_USER "")
  home=$(node_env AIRFLOW_HOME)
  if [[ -n $user ]]; then
    uid=$(node_env AIRFLOW_UID)
    gid=$(node_env AIRFLOW_GID)
    if ! getent group "$user" >/dev/null; then
      log "install: creating system group $user ($gid)"
      groupadd --system --gid "$gid" "$user" || fail "could not create group $user with gid $gid"
    fi
    [[ $(getent group "$user" | cut -d: -f3) == "$gid" ]] || fail "group $user exists with gid $(getent group "$user" | cut -d: -f3), not AIRFLOW_GID=$gid"
    if ! id -u "$user" >/dev/null 2>&1; then
      log "install: creating system user $user ($uid:$gid)"
      useradd --system --uid "$uid" --gid "$gid" --home-dir "$home" --shell /sbin/nologin "$user" ||
        fail "could not create user $user with uid $uid"
    fi
    [[ $(id -u "$user") == "$uid" && $(id -g "$user") == "$gid" ]] ||
      fail "user $user exists as $(id -u "$user"):$(id -g "$user"), not AIRFLOW_UID:AIRFLOW_GID=$uid:$gid"
  fi
  mkdir -p "$home"
  if [[ -n $user && $(stat -c %U "$home") != "$user" ]]; then chown "$user:" "$home"; fi
}

# Prints the path of a uv binary, installing the pinned uv into a tool venv when none is on PATH.
uv_binary() {
  if command -v uv >/dev/null 2>&1; then
    command -v uv
    return 0
  fi
  local tools
  tools="$(node_env AIRFLOW_HOME)/.bootstrap-tools"
  if [[ ! -x $tools/bin/uv ]]; then
    log "install: installing uv $UV_VERSION into $tools"
    python3.11 -m venv "$tools" || fail "python3.11 is missing: install it (dnf install python3.11) and rerun"
    "$tools/bin/pip" install -q "uv==$UV_VERSION" >&2 || fail "could not pip install uv==$UV_VERSION"
  fi
  printf '%s' "$tools/bin/uv"
}

phase_install() {
  local venv requirements stamp wanted uv
  venv=$(venv_dir)
  requirements=$(node_env AIRFLOW_REQUIREMENTS "$(default_requirements)")
  [[ -f $requirements ]] || fail "requirements file $requirements not found (set AIRFLOW_REQUIREMENTS in $NODE_ENV_FILE)"
  if command -v dnf >/dev/null 2>&1; then install_os_packages; fi
  ensure_service_user
  stamp="$venv/.bootstrap-requirements.sha256"
  wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$wanted" && -x $venv/bin/python ]]; then
    log "install: $venv already holds $requirements, nothing to do"
    return 0
  fi
  uv=$(uv_binary)
  if [[ ! -x $venv/bin/python ]]; then
    log "install: creating venv $venv"
    "$uv" venv --quiet --no-python-downloads --python 3.11 "$venv" || fail "uv could not create a Python 3.11 venv at $venv (is python3.11 on PATH?)"
  fi
  log "install: uv pip install -r $requirements into $venv"
  VIRTUAL_ENV=$venv "$uv" pip install --quiet -r "$requirements" || fail "uv pip install -r $requirements failed"
  printf '%s\n' "$wanted" >"$stamp"
}

sync_dags() {
  local source target
  source=$(node_env DAGS_SOURCE_DIR "")
  target=$(node_env DAGS_FOLDER)
  if [[ -z $source ]]; then
    log "configure: no DAGS_SOURCE_DIR, leaving $target as it is"
    return 0
  fi
  [[ -d $source ]] || fail "DAGS_SOURCE_DIR $source does not exist"
  command -v rsync >/dev/null 2>&1 || fail "rsync is missing: install it (dnf/apt-get install rsync)"
  mkdir -p "$target"
  # --delay-updates renames all files into place at the end, so the dag-processor never parses half a sync.
  # No owner/group: the EFS access point forces its uid/gid on every file and refuses chown, even root's.
  rsync -a --no-owner --no-group --delete --checksum --delay-updates --exclude '__pycache__' --itemize-changes "$source/" "$target/" |
    sed "s|^|bootstrap[$ROLE] configure: dags |" >&2
}

phase_configure() {
  [[ -x "$(venv_dir)/bin/python" ]] || fail "no venv at $(venv_dir): run the install phase first"
  # The DAG folder is shared (EFS); only the node that parses DAGs writes it, so nodes never race.
  if [[ $(node_env AIRFLOW_ROLE) == scheduler ]]; then sync_dags; fi
  local changed
  changed=$(node_py render) || fail "could not render the Airflow configuration from $NODE_ENV_FILE"
  if [[ -n $changed ]]; then
    printf '%s\n' "$changed" | sed "s|^|bootstrap[$ROLE] configure: |" >&2
  else
    log "configure: configuration unchanged"
  fi
}

# The pipeline's settings (contracts §1) live in the metadata DB as the Variable `emr_pipeline`, where
# the UI and the REST API show them and an edit takes effect for the next runs; every deploy (this
# phase) writes the stack's value again.
publish_pipeline_variable() {
  log "start: writing the stack's pipeline settings into the Variable emr_pipeline"
  airflow_cli variables set emr_pipeline "$(node_env EMR_PIPELINE_JSON)" \
    --description "Written by the stack at each deploy (node parameter EMR_PIPELINE_JSON, docs/contracts.md §1); an edit here applies to the next runs until the next deploy" >&2 ||
    fail "airflow variables set emr_pipeline failed"
}

wait_for_database() {
  if ! node_py uses-database; then
    log "start: a worker node has no metadata DB access (its tasks use the Execution API), nothing to wait for"
    return 0
  fi
  if node_py migrates; then
    log "start: migrating the metadata database (this node owns migrations)"
    airflow_cli db migrate >&2 || fail "airflow db migrate failed"
    publish_pipeline_variable
  else
    log "start: waiting until the scheduler node has migrated the metadata database"
    airflow_cli db check-migrations --migration-wait-timeout "$(node_env MIGRATION_WAIT_SECONDS 900)" >&2 ||
      fail "the metadata database was not migrated in time (is the scheduler node up?)"
  fi
}

phase_start() {
  wait_for_database
  local units=()
  mapfile -t units < <(node_py units)
  case $(node_env PROCESS_MANAGER systemd) in
    systemd)
      command -v systemctl >/dev/null 2>&1 || fail "systemctl not found: set PROCESS_MANAGER=external to run units yourself"
      systemctl daemon-reload
      if node_py restart-needed; then
        log "start: (re)starting ${units[*]}"
        systemctl enable --quiet "${units[@]}"
        systemctl restart "${units[@]}"
      else
        systemctl enable --now --quiet "${units[@]}"
      fi
      ;;
    external)
      log "start: PROCESS_MANAGER=external, the supervisor runs ${units[*]}"
      ;;
    *) fail "PROCESS_MANAGER must be systemd or external" ;;
  esac
}

phase_health() {
  node_py health || fail "node is not healthy"
}

bootstrap_main() {
  ROLE=$1
  local phase=${2:-} configured started
  [[ -f $NODE_ENV_FILE ]] || fail "node parameters file $NODE_ENV_FILE not found (set NODE_ENV_FILE)"
  configured=$(node_env AIRFLOW_ROLE)
  [[ $configured == "$ROLE" ]] || fail "$NODE_ENV_FILE says AIRFLOW_ROLE=$configured, but this is the $ROLE entry"
  local phases
  case $phase in
    install | configure | start | health) phases=("$phase") ;;
    all) phases=(install configure start health) ;;
    *)
      printf 'usage: %s install|configure|start|health|all\n' "$0" >&2
      exit 2
      ;;
  esac
  for phase in "${phases[@]}"; do
    started=$SECONDS
    "phase_$phase"
    log "$phase: done in $((SECONDS - started))s"
  done
}
