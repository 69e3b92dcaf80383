#!/usr/bin/env bash
# Starts or stops a throw-away PostgreSQL cluster for the demo, the benchmarks and the tests.
#
#   scripts/pg-cluster.sh start DIR PORT [PASSWORD]   initdb (once) + start on 127.0.0.1:PORT
#   scripts/pg-cluster.sh stop DIR
#
# The cluster runs as the `postgres` OS user when invoked as root (PostgreSQL refuses root).
# Local socket connections (socket dir = DIR) are trusted, so the harness is superuser there;
# TCP connections need the password of role `gpt` (created with PASSWORD, default "gpt-secret"),
# so the tool is exercised with real password authentication. The server has ssl = on with a
# throw-away CA (DIR/root.crt); role gpt_tls (same password) may log in over TLS only.
set -euo pipefail

cmd=${1:?usage: pg-cluster.sh start DIR PORT [PASSWORD] | stop DIR}
dir=${2:?cluster directory}

pgbin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$found" ]; then
    echo "pg-cluster.sh: $name not found; install PostgreSQL (scripts/setup.sh does it)" >&2
    exit 1
  fi
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    port=${3:?port}
    password=${4:-gpt-secret}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$(pgbin initdb)" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      # TLS for the sslmode tests: a throw-away CA ($dir/root.crt) and a server certificate for
      # IP 127.0.0.1 only (so verify-full to "localhost" is a host name mismatch). Role gpt_tls
      # may log in over TLS only.
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=gptransfer test CA" -keyout "$dir/ca.key" -out "$dir/root.crt" >"$dir/tls.log" 2>&1 \
        || { cat "$dir/tls.log" >&2; exit 1; }
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/data/server.key" -out "$dir/server.csr" >>"$dir/tls.log" 2>&1 \
        || { cat "$dir/tls.log" >&2; exit 1; }
      printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/san.ext"
      openssl x509 -req -in "$dir/server.csr" -CA "$dir/root.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 30 -extfile "$dir/san.ext" -out "$dir/data/server.crt" >>"$dir/tls.log" 2>&1 \
        || { cat "$dir/tls.log" >&2; exit 1; }
      chmod 600 "$dir/data/server.key"
      chmod 644 "$dir/root.crt"
      if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/data/server.key" "$dir/data/server.crt"; fi
      cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host all postgres 127.0.0.1/32 trust
hostssl all gpt_tls 127.0.0.1/32 scram-sha-256
host all gpt_tls 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
HBA
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
max_wal_size = 2GB
logging_collector = off
ssl = on
CONF
    fi
    as_owner "$(pgbin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -o "-p $port -k $dir" -w -t 60 start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    as_owner "$(pgbin psql)" -h "$dir" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 -c "
      DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gpt') THEN
          CREATE ROLE gpt LOGIN SUPERUSER;
        END IF;
      END \$\$;
      ALTER ROLE gpt PASSWORD '$password';
      DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gpt_tls') THEN
          CREATE ROLE gpt_tls LOGIN SUPERUSER;
        END IF;
      END \$\$;
      ALTER ROLE gpt_tls PASSWORD '$password';" >/dev/null
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$(pgbin pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    ;;
  *)
    echo "usage: pg-cluster.sh start DIR PORT [PASSWORD] | stop DIR" >&2
    exit 2
    ;;
esac
