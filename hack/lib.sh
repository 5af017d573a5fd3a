# Shared shell helpers for hack/ scripts. Source it; it defines functions only.

log() { printf '==> %s\n' "$*" >&2; }

# sudo_if_needed runs a command as root, through sudo when we are not root.
sudo_if_needed() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install installs the Debian packages given that are not installed yet,
# without recommends (big recommends fail on some images).
apt_updated=
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    sudo_if_needed apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# apt_install_no_start installs packages like apt_install, but forbids their
# maintainer scripts to start services: a policy-rc.d that answers 101 is put
# in place for the install only, and only when the machine has none (an
# existing one is the machine's own and is left as it is). It is removed right
# after the install, whether the install succeeded or not (and by
# cleanup_hack, which the scripts trap on EXIT, if the script is interrupted).
own_policy_rc=
apt_install_no_start() {
  local rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy_rc=1
    sudo_if_needed sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
  fi
  apt_install "$@" || rc=$?
  remove_own_policy_rc
  return "$rc"
}

# remove_own_policy_rc removes the policy-rc.d that apt_install_no_start put
# in place, and only that one.
remove_own_policy_rc() {
  if [ -n "$own_policy_rc" ]; then
    sudo_if_needed rm -f /usr/sbin/policy-rc.d
    own_policy_rc=
  fi
}

# cleanup_hack undoes what the helpers left running or in place: scripts
# run `trap cleanup_hack EXIT` before using them.
cleanup_hack() {
  remove_own_policy_rc
  stop_test_mariadb
}

# The tests' MariaDB is a private, throwaway instance: its own data directory
# in a temporary directory, its own socket, a random free port on 127.0.0.1,
# and a root user that exists only inside it, with a random password that is
# only in MEETING_TEST_MYSQL_URL (other local users cannot log in, and file
# import and export are confined to the instance's directory). The
# machine's own MariaDB (if any) is neither used, started, stopped nor
# reconfigured. Set MEETING_TEST_MYSQL_URL (mysql://USER:PASS@HOST:PORT/) to
# use a server of your choice instead; the tests create and drop their own
# databases on it.
test_mariadb_dir=
test_mariadb_pid=
test_mariadb_password=

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now, below
# the kernel's ephemeral range (net.ipv4.ip_local_port_range): ports in that
# range are what outgoing connections and every listener on port 0 take, so
# one picked there can be taken between the pick and the bind (the local
# cluster's controller manager once failed so, "address already in use").
free_port() {
  local lo=32768 base=10000 span p
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  span=$(( lo - base ))
  if [ "$span" -lt 2000 ]; then base=20000 span=40000; fi # an unusual range: no safe band
  for _ in $(seq 1 50); do
    p=$(( base + ((RANDOM << 15) | RANDOM) % span ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# start_test_mariadb starts the tests' MariaDB (see above) and exports
# MEETING_TEST_MYSQL_URL; stop it with stop_test_mariadb (callers trap
# cleanup_hack on EXIT). With MEETING_TEST_MYSQL_URL already set it only
# checks that the client tools are there. It installs the server's binaries
# (mariadb-server-core: mariadbd and mariadb-install-db, no service, no init
# script, nothing started) and the client when they are missing.
start_test_mariadb() {
  if ! command -v mysqladmin >/dev/null || ! command -v mysql >/dev/null; then apt_install mariadb-client; fi
  if [ -n "${MEETING_TEST_MYSQL_URL:-}" ]; then
    log "MariaDB: using MEETING_TEST_MYSQL_URL (not started by the tests)"
    return 0
  fi
  if [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb-install-db >/dev/null; then
    # The core package has no service to start; policy-rc.d guards the install anyway.
    apt_install_no_start mariadb-server-core
  fi
  test_mariadb_dir=$(mktemp -d "${TMPDIR:-/tmp}/meeting-mariadb.XXXXXX")
  mkdir "$test_mariadb_dir/files"
  # mariadbd refuses to run as root without --user; as root it runs as the
  # unprivileged mysql account when there is one.
  local user=()
  if [ "$(id -u)" = 0 ]; then
    if id mysql >/dev/null 2>&1; then
      user=(--user=mysql)
      chown -R mysql "$test_mariadb_dir"
    else
      user=(--user=root)
    fi
  fi
  log "MariaDB: private instance in $test_mariadb_dir"
  mariadb-install-db --no-defaults --datadir="$test_mariadb_dir/data" "${user[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >"$test_mariadb_dir/install.log" 2>&1 ||
    { cat "$test_mariadb_dir/install.log" >&2; log "mariadb-install-db failed"; return 1; }
  local port
  for _ in 1 2 3; do
    port=$(free_port) || { log "no free port on 127.0.0.1"; return 1; }
    /usr/sbin/mariadbd --no-defaults "${user[@]}" --datadir="$test_mariadb_dir/data" \
      --socket="$test_mariadb_dir/mysqld.sock" --pid-file="$test_mariadb_dir/mysqld.pid" \
      --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
      --innodb-buffer-pool-size=64M --log-error="$test_mariadb_dir/error.log" \
      --secure-file-priv="$test_mariadb_dir/files" --local-infile=0 >/dev/null 2>&1 &
    test_mariadb_pid=$!
    for _ in $(seq 1 60); do
      kill -0 "$test_mariadb_pid" 2>/dev/null || break
      if mysqladmin --no-defaults --socket="$test_mariadb_dir/mysqld.sock" -u root --connect-timeout=2 ping >/dev/null 2>&1; then
        set_test_mariadb_password || return 1
        export MEETING_TEST_MYSQL_URL="mysql://root:$test_mariadb_password@127.0.0.1:$port/"
        log "MariaDB: up on 127.0.0.1:$port (pid $test_mariadb_pid)"
        return 0
      fi
      sleep 0.5
    done
    # Most likely the port was taken between the check and the bind: try another.
    stop_test_mariadb_process
  done
  cat "$test_mariadb_dir/error.log" >&2 || true
  log "MariaDB did not come up"
  return 1
}

# set_test_mariadb_password gives every root account of the private instance a
# random password, through its socket.
set_test_mariadb_password() {
  test_mariadb_password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  local sock=(--no-defaults --socket="$test_mariadb_dir/mysqld.sock" -u root)
  # Only the address accounts matter: with --skip-name-resolve an account for
  # the machine's host name (which ALTER USER may fail on) never matches.
  mysql "${sock[@]}" -e "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$test_mariadb_password';
    ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '$test_mariadb_password';
    ALTER USER 'root'@'localhost' IDENTIFIED BY '$test_mariadb_password';" ||
    { log "could not set the test MariaDB's root password"; return 1; }
}

stop_test_mariadb_process() {
  [ -n "$test_mariadb_pid" ] || return 0
  kill "$test_mariadb_pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$test_mariadb_pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$test_mariadb_pid" 2>/dev/null || true
  wait "$test_mariadb_pid" 2>/dev/null || true
  test_mariadb_pid=
}

# stop_test_mariadb stops the instance start_test_mariadb started and removes
# its data; it does nothing when the tests used MEETING_TEST_MYSQL_URL.
stop_test_mariadb() {
  stop_test_mariadb_process
  if [ -n "$test_mariadb_dir" ]; then
    rm -rf "$test_mariadb_dir"
    test_mariadb_dir=
    unset MEETING_TEST_MYSQL_URL
  fi
}
