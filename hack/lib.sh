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

# mysql_up reports whether a MySQL-compatible server answers on the test address.
mysql_up() {
  mysqladmin --protocol=tcp -h "${MEETING_TEST_MYSQL_HOST:-127.0.0.1}" -P "${MEETING_TEST_MYSQL_PORT:-3306}" \
    -u root --connect-timeout=2 ping >/dev/null 2>&1
}

# ensure_mariadb installs and starts MariaDB when nothing answers on 127.0.0.1:3306,
# and makes sure root may log in over TCP with an empty password (the test account).
ensure_mariadb() {
  if ! command -v mysqladmin >/dev/null; then apt_install mariadb-client; fi
  mysql_up && return 0
  apt_install mariadb-server
  log "starting MariaDB"
  sudo_if_needed mkdir -p /run/mysqld
  sudo_if_needed chown mysql:mysql /run/mysqld 2>/dev/null || true
  sudo_if_needed start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 --port=3306 >&2
  for _ in $(seq 1 60); do mysql_up && break; sleep 1; done
  if ! mysql_up; then
    # A fresh Debian install lets root in through the socket only.
    sudo_if_needed mysql -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" || true
  fi
  mysql_up || { log "MariaDB did not come up on 127.0.0.1:3306"; return 1; }
}
