#!/usr/bin/env bash
# Makes sure the local MariaDB the tests of the MySQL config reader use is running and has the
# test account. Idempotent; quick when it already runs. Needs root (or sudo) only to start it.
#
#   scripts/mariadb.sh
#
# The tests connect to 127.0.0.1:3306 as gpt_test / gpt_test (override with
# GPT_TEST_MYSQL_URL=mysql://user:password@host:port) and create one database per test.
set -euo pipefail

say() { printf 'mariadb: %s\n' "$*"; }
die() { printf 'mariadb: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null 2>&1; then as_root=(sudo); else as_root=(); fi

daemon=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
[ -n "$daemon" ] || die "mariadbd not found: install mariadb-server (scripts/setup.sh does)"
client=$(command -v mariadb || command -v mysql || true)
[ -n "$client" ] || die "mariadb client not found: install mariadb-client"
admin=$(command -v mariadb-admin || command -v mysqladmin || true)

alive() { "$admin" --protocol=tcp -h 127.0.0.1 -P 3306 --connect-timeout=2 ping >/dev/null 2>&1; }

if ! alive; then
  datadir=/var/lib/mysql
  if [ ! -d "$datadir/mysql" ]; then
    say "initialising $datadir"
    "${as_root[@]}" mariadb-install-db --user=mysql --datadir="$datadir" >/dev/null
  fi
  "${as_root[@]}" install -d -o mysql -g mysql /run/mysqld
  say "starting $daemon"
  "${as_root[@]}" start-stop-daemon --start --oknodo --background --exec "$daemon" -- \
    --user=mysql --bind-address=127.0.0.1 --port=3306
  for _ in $(seq 1 120); do
    alive && break
    sleep 0.5
  done
  alive || die "MariaDB did not answer on 127.0.0.1:3306 within 60 s (see /var/log/mysql/error.log or the journal)"
fi

# The test account, created once as the server's root: over the socket (unix_socket auth, the
# Debian default) or, where root has no password, over TCP.
sql="CREATE USER IF NOT EXISTS 'gpt_test'@'127.0.0.1' IDENTIFIED BY 'gpt_test';
CREATE USER IF NOT EXISTS 'gpt_test'@'localhost' IDENTIFIED BY 'gpt_test';
GRANT ALL PRIVILEGES ON *.* TO 'gpt_test'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'gpt_test'@'localhost';"
if ! MYSQL_PWD=gpt_test "$client" --protocol=tcp -h 127.0.0.1 -P 3306 -u gpt_test -e 'SELECT 1' >/dev/null 2>&1; then
  say "creating the test account gpt_test"
  "${as_root[@]}" "$client" -u root -e "$sql" 2>/dev/null \
    || "$client" --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e "$sql" \
    || die "cannot create the test account: neither root over the socket nor root without password over TCP works"
fi
say "ok (127.0.0.1:3306, account gpt_test)"
