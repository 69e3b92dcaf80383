# Shell functions shared by demo.sh, bench.sh and bench-compare.sh; sourced, not run.
# The caller runs under `set -euo pipefail` and sets `psql` (see find_psql) before su_psql.

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

median() {
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
