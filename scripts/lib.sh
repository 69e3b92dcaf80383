# Shell functions shared by demo.sh, image.sh, bench.sh and bench-compare.sh; sourced, not run.
# The caller runs under `set -euo pipefail`, from the repository root, and sets `psql` (see
# find_psql) before su_psql and the sample_* functions.

die() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# psql from PATH, else the newest one Debian's PostgreSQL packages installed.
find_psql() {
  if command -v psql >/dev/null 2>&1; then
    command -v psql
    return
  fi
  local found
  found=$(find /usr/lib/postgresql -path '*/bin/psql' 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] || die "psql not found; install PostgreSQL (scripts/setup.sh does it)"
  echo "$found"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First port >= $1 that nothing listens on and that is not $2 (a port already chosen).
free_port() {
  local port=$1 taken=${2:-}
  while [ "$port" = "$taken" ] || port_in_use "$port"; do
    port=$((port + 1))
  done
  echo "$port"
}

# Superuser session over the cluster's Unix socket (trusted): su_psql DIR PORT ARGS…
su_psql() {
  local dir=$1 port=$2
  shift 2
  PGOPTIONS='-c client_min_messages=warning' \
    "$psql" -h "$dir" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"
}

# Seconds between two `date +%s%N` readings, two decimals.
seconds_between() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
}

load_average() { cut -d ' ' -f 1 /proc/loadavg; }

# warn_if_loaded: says so when other work runs (load above half the cores): figures will be noisy.
warn_if_loaded() {
  if awk -v l="$(load_average)" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    echo "warning: load average $(load_average) on $(nproc) cores: other work is running, the figures will be noisy"
  fi
}

# bench_server DIR PORT PASSWORD DB: a benchmark's PostgreSQL server on 127.0.0.1:PORT with an
# empty database DB and no autovacuum worker waking up in a measured run (2 cores: tables are
# vacuumed explicitly). The server does not inherit fd 9, a benchmark's lock.
bench_server() {
  local dir=$1 port=$2 password=$3 db=$4
  scripts/pg-cluster.sh start "$dir" "$port" "$password" 9>&-
  su_psql "$dir" "$port" -d postgres -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
  su_psql "$dir" "$port" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
}

# pipe_copy: the baseline every benchmark measures against, run by `bash -c` (export -f it):
# psql -c "\copy ($SELECT_SQL) to stdout" | psql -c "\copy $TABLE from stdin", from $SRC_URL to
# $DST_URL with the passwords of GPT_SRC_PASSWORD / GPT_DST_PASSWORD; $PSQL is the psql.
pipe_copy() {
  set -euo pipefail
  PGPASSWORD=$GPT_SRC_PASSWORD "$PSQL" "$SRC_URL" -X -q -v ON_ERROR_STOP=1 \
    -c "\\copy ($SELECT_SQL) to stdout" |
    PGPASSWORD=$GPT_DST_PASSWORD "$PSQL" "$DST_URL" -X -q -v ON_ERROR_STOP=1 \
      -c "\\copy $TABLE from stdin"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# --- The sample job of demo.sh and image.sh -------------------------------------------------
# Two throw-away clusters (scripts/pg-cluster.sh), the defect fact table of scripts/sql/ filled
# on the source and empty on the target, and a job moving one day of it in 1h windows.

sample_table=eda.wpp_fdefect_f_n

# start_cluster DIR PORT PASSWORD: starts (initdb once) a cluster; one that does not start is
# wiped and made again.
start_cluster() {
  local dir=$1 port=$2 password=$3
  # 9>&-: the servers, which outlive the caller, must not inherit (and so hold) its lock.
  if ! scripts/pg-cluster.sh start "$dir" "$port" "$password" 9>&-; then
    printf '  the cluster in %s did not start; wiping it and running initdb again\n' "$dir"
    scripts/pg-cluster.sh stop "$dir" || true
    rm -rf "$dir"
    scripts/pg-cluster.sh start "$dir" "$port" "$password" 9>&-
  fi
}

# recreate_database DIR PORT DB
recreate_database() {
  local dir=$1 port=$2 db=$3
  su_psql "$dir" "$port" -d postgres \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "CREATE DATABASE $db"
}

# sample_load SRC_DIR SRC_PORT DST_DIR DST_PORT DB ROWS DAY: database DB made again on both
# clusters; the table with ROWS generated rows over DAY on the source, empty on the target.
sample_load() {
  local src_dir=$1 src_port=$2 dst_dir=$3 dst_port=$4 db=$5 rows=$6 day=$7
  recreate_database "$src_dir" "$src_port" "$db"
  recreate_database "$dst_dir" "$dst_port" "$db"
  su_psql "$src_dir" "$src_port" -d "$db" -f scripts/sql/create_table.sql
  su_psql "$src_dir" "$src_port" -d "$db" -v rows="$rows" -v day="$day" -f scripts/sql/generate.sql
  su_psql "$src_dir" "$src_port" -d "$db" -f scripts/sql/add_indexes.sql
  su_psql "$dst_dir" "$dst_port" -d "$db" -f scripts/sql/create_table.sql
  su_psql "$dst_dir" "$dst_port" -d "$db" -f scripts/sql/add_indexes.sql
}

# sample_digest DIR PORT DB: "rows | md5 of every row as text, ordered by the key".
sample_digest() {
  local dir=$1 port=$2 db=$3
  su_psql "$dir" "$port" -d "$db" -At -F ' | ' -c "
    SELECT count(*) AS row_count,
           coalesce(md5(string_agg(t::text, E'\n' ORDER BY glass_id, defect_seq)), md5('')) AS ordered_md5
    FROM $sample_table AS t"
}

# sample_config SRC_PORT DST_PORT DB DAY NEXT_DAY: the job's TOML on stdout (clusters on
# 127.0.0.1; passwords from $GPT_SRC_PASSWORD / $GPT_DST_PASSWORD, never in the file).
sample_config() {
  local src_port=$1 dst_port=$2 db=$3 day=$4 next_day=$5
  cat <<TOML
[clusters.src]
url = "postgres://gpt@127.0.0.1:$src_port/$db"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:$dst_port/$db"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"
schema = "gptransfer"

[jobs.demo]
from = "src"
to = "dst"
start = "$day 00:00:00"
duration = "1h"
lag = "0s"

[[jobs.demo.tables]]
table = "$sample_table"
condition_column = "evt_timestamp"
final_end = "$next_day 00:00:00"
mode = "replace"
key = ["glass_id", "defect_seq"]
TOML
}

# --- Debian packages -----------------------------------------------------------------------

# ensure_packages PKG…: apt-get installs those not installed (as root, or through sudo).
ensure_packages() {
  local package missing=() as_root=()
  for package in "$@"; do
    # `dpkg -s` alone also succeeds for removed packages whose config files remain.
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] \
      || missing+=("$package")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}) and neither root nor sudo to install them"
    as_root=(sudo)
  fi
  printf '  installing %s\n' "${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
