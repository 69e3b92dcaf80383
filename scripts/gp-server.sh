#!/usr/bin/env bash
# Starts or stops a throw-away real Greenplum 4.3, 6 or 7 cluster (a master + segments) or
# PostgreSQL 8.2 server (GP4's SQL kernel alone) for the tests and benchmarks.
#
#   scripts/gp-server.sh start gp4|gp6|gp7|pg82 DIR PORT PASSWORD [SEGMENTS]
#   scripts/gp-server.sh stop gp4|gp6|gp7|pg82 DIR
#   scripts/gp-server.sh homes                # prints GP4_HOME=…, GP6_HOME=…, GP7_HOME=…, PG82_HOME=…
#
# The installs come from GP4_HOME / GP6_HOME / GP7_HOME / PG82_HOME when set (a user's own), else from the prebuilt
# archives in the shared Greenplum directory (GPT_GREENPLUM_DIST, else ../shared/greenplum
# beside the repository), unpacked by its setup.sh. A gp6 cluster takes ports PORT (master) and
# PORT+1… (segments); so do gp4 and gp7. The superuser (gpadmin on gp6, postgres on 8.2) is trusted on
# 127.0.0.1 and on the socket in /tmp; role `gpt` (superuser) logs in with PASSWORD over md5,
# so the tool is exercised with real password authentication.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() { printf 'gp-server.sh: %s\n' "$*" >&2; exit 1; }

greenplum_dist() {
  local d
  for d in "${GPT_GREENPLUM_DIST:-}" "$here/../../shared/greenplum" /work/shared/greenplum; do
    if [ -n "$d" ] && [ -x "$d/setup.sh" ]; then (cd "$d" && pwd); return; fi
  done
  die "no Greenplum install: set GP4_HOME, GP6_HOME, GP7_HOME and PG82_HOME, or GPT_GREENPLUM_DIST to the directory holding greenplum/setup.sh"
}

# Sets GP4_HOME, GP6_HOME, GP7_HOME and PG82_HOME: the environment's first, else the shared
# archives' (unpacked once).
resolve_homes() {
  if [ -n "${GP4_HOME:-}" ] && [ -n "${GP6_HOME:-}" ] && [ -n "${GP7_HOME:-}" ] && [ -n "${PG82_HOME:-}" ]; then
    return
  fi
  local prefix=${GPT_TEST_PREFIX:-/opt/gptransfer-test} v
  for v in gp4 gp6 gp7 pg82; do
    if [ ! -x "$prefix/$v/bin/postgres" ]; then
      local dist
      dist=$(greenplum_dist)
      "$dist/setup.sh" "$prefix" >/dev/null || die "$dist/setup.sh failed"
      break
    fi
  done
  GP4_HOME=${GP4_HOME:-$prefix/gp4}
  GP6_HOME=${GP6_HOME:-$prefix/gp6}
  GP7_HOME=${GP7_HOME:-$prefix/gp7}
  PG82_HOME=${PG82_HOME:-$prefix/pg82}
  export GP4_HOME GP6_HOME GP7_HOME PG82_HOME
}

# The cluster scripts that ship with the archives; a user's own install has none, so fall back to
# the shared directory's copies.
cluster_script() {
  local name=$1 dist
  dist=$(greenplum_dist)
  echo "$dist/$name"
}

cmd=${1:-}
case "$cmd" in
  homes)
    resolve_homes
    echo "GP4_HOME=$GP4_HOME"
    echo "GP6_HOME=$GP6_HOME"
    echo "GP7_HOME=$GP7_HOME"
    echo "PG82_HOME=$PG82_HOME"
    exit 0
    ;;
  start | stop) ;;
  *) die "usage: gp-server.sh start gp4|gp6|gp7|pg82 DIR PORT PASSWORD [SEGMENTS] | stop gp4|gp6|gp7|pg82 DIR | homes" ;;
esac

kind=${2:?kind: gp4, gp6, gp7 or pg82}
dir=${3:?directory}
resolve_homes

case "$kind:$cmd" in
  gp4:start | gp6:start | gp7:start)
    port=${4:?port}
    password=${5:?password}
    segments=${6:-2}
    # gp6-cluster.sh reads GP6_HOME/GP6_DATA/…, gp4-cluster.sh GP4_…, gp7-cluster.sh GP7_….
    var=$(printf '%s' "$kind" | tr a-z A-Z)
    script=$(cluster_script "$kind-cluster.sh")
    cluster() { env "${var}_DATA=$dir" "${var}_PORT=$port" "${var}_SEGMENTS=$segments" "$script" "$@"; }
    mkdir -p "$dir"
    cluster init >"$dir.log" 2>&1 || { cat "$dir.log" >&2; die "$kind cluster on port $port did not start"; }
    master=$dir/master/gpseg-1
    # Each query gets a gang of processes on every segment (several per partitioned or joined
    # table): with a whole test suite on one cluster, the scripts' 50–150 run out.
    cluster stop >/dev/null 2>&1
    for conf in "$dir"/primary/gpseg*/postgresql.conf; do echo "max_connections=300" >>"$conf"; done
    echo "max_connections=150" >>"$master/postgresql.conf"
    cluster start >>"$dir.log" 2>&1 || { cat "$dir.log" >&2; die "$kind cluster on port $port did not restart"; }
    # Password (md5) for every role but the superuser gpadmin, which the segments and the
    # harness use; first match wins in pg_hba.conf.
    printf 'local all all trust\nhost all gpadmin 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 md5\n' \
      >"$master/pg_hba.conf"
    home_var=${var}_HOME
    home=${!home_var}
    if [ "$kind" = gp4 ]; then
      gp_env="export GPHOME=$home PATH=$home/bin:\$PATH LD_LIBRARY_PATH=$home/lib; unset PYTHONHOME"
    else
      gp_env="source $home/greenplum_path.sh"
    fi
    su gpadmin -s /bin/bash -c "cd /tmp; $gp_env; pg_ctl -D $master reload >/dev/null"
    su gpadmin -s /bin/bash -c "cd /tmp; $gp_env; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -d postgres" >/dev/null <<SQL \
      || die "cannot create role gpt on the $kind cluster"
CREATE ROLE gpt LOGIN SUPERUSER PASSWORD '$password';
SQL
    ;;
  gp4:stop | gp6:stop | gp7:stop)
    var=$(printf '%s' "$kind" | tr a-z A-Z)
    env "${var}_DATA=$dir" "$(cluster_script "$kind-cluster.sh")" stop >/dev/null 2>&1 || true
    ;;
  pg82:start)
    port=${4:?port}
    password=${5:?password}
    mkdir -p "$dir"
    PG82_DATA=$dir/data PG82_PORT=$port "$(cluster_script pg82-cluster.sh)" init >"$dir.log" 2>&1 \
      || { cat "$dir.log" >&2; die "8.2 server on port $port did not start"; }
    data=$dir/data
    cat >"$data/pg_hba.conf" <<HBA
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 md5
HBA
    su postgres -s /bin/bash -c "$PG82_HOME/bin/pg_ctl -D $data reload >/dev/null"
    # Any newer psql talks to 8.2 (8.2's own cannot read URLs).
    su postgres -s /bin/bash -c "$PG82_HOME/bin/psql -X -q -v ON_ERROR_STOP=1 -h /tmp -p $port -U postgres -d postgres" \
      >/dev/null <<SQL || die "cannot create role gpt on the 8.2 server"
CREATE ROLE gpt LOGIN SUPERUSER PASSWORD '$password';
SQL
    ;;
  pg82:stop)
    PG82_DATA=$dir/data "$(cluster_script pg82-cluster.sh)" stop >/dev/null 2>&1 || true
    ;;
  *) die "unknown server kind '$kind' (gp4, gp6, gp7 or pg82)" ;;
esac
