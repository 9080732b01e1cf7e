#!/usr/bin/env bash
# Installs what a make target needs on a fresh Debian machine. Safe to run again: it skips what is there.
#   setup-machine.sh build  - headers and compiler for the virtualenv's source builds (mysqlclient)
#   setup-machine.sh demo   - build, plus what `make demo` runs: Java for Spark, rsync for the bootstrap,
#                             Node.js for the CDK synthesis whose IAM policies the emulator enforces,
#                             bindfs (FUSE) for the EFS access point's semantics on the shared DAG folder
#   setup-machine.sh        - everything the tests and the cluster rehearsal need, and starts the local
#                             services that stand in for RDS MySQL and ElastiCache
set -euo pipefail

profile=${1:-full}
# python3-venv: the pinned uv is installed into a venv; python3-dev: Python.h for the mysqlclient build.
build_packages=(pkg-config default-libmysqlclient-dev build-essential python3-dev python3-venv)
# bindfs brings Debian's FUSE userland with it; the kernel's /dev/fuse the rehearsal checks for itself.
demo_packages=("${build_packages[@]}" rsync openjdk-17-jre-headless nodejs bindfs)
# chromium: the headless browser the UI test drives (playwright is only its driver; no browser is downloaded).
# util-linux, mount: unshare and mount --bind give each cluster node process its own /etc/hosts (rehearsal/private_zone.py).
full_packages=("${demo_packages[@]}" shellcheck util-linux mount mariadb-server redis-server npm chromium)
case "$profile" in
  build) apt_packages=("${build_packages[@]}") ;;
  demo) apt_packages=("${demo_packages[@]}") ;;
  full) apt_packages=("${full_packages[@]}") ;;
  *) echo "setup: unknown profile '$profile' (use build, demo or full)" >&2; exit 2 ;;
esac

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A machine that already has Java 17 and Node 20 from elsewhere does not need Debian's.
command -v java >/dev/null && missing=("${missing[@]/openjdk-17-jre-headless}")
command -v node >/dev/null && missing=("${missing[@]/nodejs}")
command -v npm >/dev/null && missing=("${missing[@]/npm}")
read -r -a missing <<< "${missing[*]}"
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]} (a few minutes on a fresh machine)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Spark and Hadoop resolve the machine's own name; a root without an /etc/hosts entry fails deep in a step.
# (A root made by debootstrap has an /etc/hosts without even localhost.)
if [[ $profile != build ]] && command -v getent >/dev/null; then
  for entry in "127.0.0.1 localhost" "127.0.1.1 $HOSTNAME"; do
    if ! getent hosts "${entry#* }" >/dev/null; then
      echo "setup: ${entry#* } does not resolve; adding '$entry' to /etc/hosts"
      echo "$entry" >> /etc/hosts
    fi
  done
fi
[[ $profile == full ]] || exit 0

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "setup: $2 did not start on 127.0.0.1:$1" >&2; return 1
}

if ! port_open 3306; then
  echo "setup: starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  # mariadbd refuses to run as root; its own account owns the data directory.
  # Started directly (no process matching by name: a mariadbd of another container is not ours).
  setsid /usr/sbin/mariadbd --user=mysql > /var/log/mariadbd-setup.log 2>&1 < /dev/null &
  wait_port 3306 MariaDB
fi
# The tests log in as root over TCP with no password; a fresh Debian MariaDB lets root in by unix socket only.
if ! mariadb -h 127.0.0.1 -u root -e 'SELECT 1' >/dev/null 2>&1; then
  echo "setup: allowing MariaDB's root to log in over TCP on loopback without a password (local test server only)"
  mariadb -u root -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
fi
if ! port_open 6379; then
  echo "setup: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_port 6379 Redis
fi
