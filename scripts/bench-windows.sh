#!/usr/bin/env bash
# The per-window fixed cost (issue 11): the same rows moved as ONE window and as 48 hourly
# windows, against the plain psql pipe, into PostgreSQL and into a real Greenplum 6 cluster
# (a master and 2 segments).
#
#   scripts/bench-windows.sh                          # 1M rows over 2 days; 3 runs per variant
#   ROWS=200000 RUNS=1 scripts/bench-windows.sh       # a quick smoke run
#
# The source is a PostgreSQL cluster holding the generated table of scripts/sql/ (bench.sh's),
# its rows spread over 2 days. Per target (TARGETS="pg gp6"), on the same rows:
#   pipe   psql -c "\copy (SELECT … 2 days) to stdout" | psql -c "\copy t from stdin"
#   one    `gptransfer run`, the 2 days as ONE window (duration 2d)
#   h48    `gptransfer run`, the 2 days as 48 windows of 1 hour each
#   one-base, h48-base  the same with another build, $BASE_BIN (e.g. the commit before a change),
#          interleaved with the others so both builds see the same load; add them to VARIANTS
# gptransfer's state lives on the target (as in production), mode append. Between runs the
# target table is truncated and the state schema dropped. After one uncounted warm-up run per
# target, each variant runs RUNS times, interleaved in a rotating order. Reported: the median
# wall times, each variant's throughput as a ratio to the pipe's, and the fixed cost per
# window = (t_h48 - t_one) / 47 — what a window costs beyond its rows.
#
# Environment (all optional):
#   ROWS=1000000   RUNS=3   TARGETS="pg gp6"   VARIANTS="pipe one h48"
#   RUN_TIMEOUT=900 (s, per measured run)      BENCH_DIR=/tmp/gptransfer-bench-windows
#   SKIP_BUILD=1   GPT_VERBOSE=-vv (extra gptransfer flags, e.g. to read its statement log)
#   STRICT=1       exit 1 when a target of issue 11 is missed
#   KEEP_CLUSTERS=1  leave the clusters running at exit (to read their logs, run by hand)
#   LOG_STATEMENTS=1 log every statement with its duration on the targets (log_min_duration_statement
#                  = 0 for the database; PostgreSQL: $BENCH_DIR/pg/server.log, GP6: the csv files of
#                  $BENCH_DIR/gp6/master/gpseg-1/pg_log)
# Clusters are stopped at exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-1000000}
runs=${RUNS:-3}
targets=${TARGETS:-"pg gp6"}
variants=${VARIANTS:-"pipe one h48"}
run_timeout=${RUN_TIMEOUT:-900}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-windows}
src_dir=$bench_dir/src
pg_dir=$bench_dir/pg
gp_dir=$bench_dir/gp6
db=bench
day="2024-01-01"
end_day="2024-01-03"
table=eda.wpp_fdefect_f_n
state_schema=gptransfer
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
columns="glass_id, defect_seq, site, defect_code, evt_timestamp, x, y, size, judge, comment, load_time"
quoted_columns=$(sed -E 's/([a-z_]+)/"\1"/g' <<<"$columns")
select_sql="SELECT $quoted_columns FROM \"eda\".\"wpp_fdefect_f_n\" WHERE \"evt_timestamp\" >= '$day 00:00:00'::timestamp AND \"evt_timestamp\" < '$end_day 00:00:00'::timestamp"

export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-bench-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-bench-secret}

section() { printf '\n==== %s ====\n' "$*"; }

src_sql() { su_psql "$src_dir" "$src_port" -d "$db" "$@"; }
# dst_sql TARGET ARGS…: superuser session on a target (gpadmin is trusted on 127.0.0.1 on GP6).
dst_sql() {
  local target=$1
  shift
  case "$target" in
    pg) su_psql "$pg_dir" "$pg_port" -d "$db" "$@" ;;
    gp6) PGOPTIONS='-c client_min_messages=warning' \
      "$psql" -h 127.0.0.1 -p "$gp_port" -U gpadmin -d "$db" -X -q -v ON_ERROR_STOP=1 "$@" ;;
  esac
}

cleanup() {
  local rc=$?
  if [ "${KEEP_CLUSTERS:-0}" = 1 ]; then
    echo "clusters left running (KEEP_CLUSTERS=1): source $src_dir, targets under $bench_dir"
    exit "$rc"
  fi
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$pg_dir" || true
  scripts/gp-server.sh stop gp6 "$gp_dir" || true
  exit "$rc"
}

dst_url() {
  case "$1" in
    pg) echo "postgres://gpt@127.0.0.1:$pg_port/$db" ;;
    gp6) echo "postgres://gpt@127.0.0.1:$gp_port/$db" ;;
  esac
}

reset_target() {
  dst_sql "$1" -c "TRUNCATE $table" -c "DROP SCHEMA IF EXISTS $state_schema CASCADE" -c "CHECKPOINT"
}

# write_config TARGET DURATION: the job moving the 2 days in windows of DURATION.
write_config() {
  local target=$1 duration=$2
  cat >"$bench_dir/$target-$duration.toml" <<TOML
# Written by scripts/bench-windows.sh.
[clusters.src]
url = "postgres://gpt@127.0.0.1:$src_port/$db"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "$(dst_url "$target")"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"
schema = "$state_schema"

[jobs.bench]
from = "src"
to = "dst"
start = "$day 00:00:00"
duration = "$duration"
lag = "0s"

[[jobs.bench.tables]]
table = "$table"
condition_column = "evt_timestamp"
final_end = "$end_day 00:00:00"
mode = "append"
key = ["glass_id", "defect_seq"]
TOML
}

# measure TARGET VARIANT RUN: runs one variant once; appends "target variant run seconds" to
# $results, unless RUN is 0 (a warm-up, not counted).
measure() {
  local target=$1 variant=$2 run=$3
  local log=$bench_dir/$target-$variant.log cmd start_ns end_ns rc=0 windows=1
  reset_target "$target"
  case "$variant" in
    pipe) cmd=(env DST_URL="$(dst_url "$target")" bash -c pipe_copy) ;;
    one) cmd=("$bin" ${GPT_VERBOSE:-} --config "$bench_dir/$target-2d.toml" run --job bench) ;;
    h48) cmd=("$bin" ${GPT_VERBOSE:-} --config "$bench_dir/$target-1h.toml" run --job bench) windows=48 ;;
    one-base) cmd=("${BASE_BIN:?one-base needs BASE_BIN}" ${GPT_VERBOSE:-} --config "$bench_dir/$target-2d.toml" run --job bench) ;;
    h48-base)
      cmd=("${BASE_BIN:?h48-base needs BASE_BIN}" ${GPT_VERBOSE:-} --config "$bench_dir/$target-1h.toml" run --job bench)
      windows=48
      ;;
    *) die "unknown variant $variant (VARIANTS may hold pipe, one, h48, one-base, h48-base)" ;;
  esac
  start_ns=$(date +%s%N)
  timeout "$run_timeout" "${cmd[@]}" >"$log" 2>&1 || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != 0 ]; then
    printf '\n%s into %s failed (exit %s): %s\n--- last lines of its output ---\n' "$variant" "$target" "$rc" "${cmd[*]}" >&2
    tail -n 40 "$log" >&2
    die "$variant into $target failed"
  fi
  local got
  got=$(dst_sql "$target" -At -c "SELECT count(*) FROM $table")
  [ "$got" = "$rows" ] || { tail -n 40 "$log" >&2; die "$variant left $got rows on $target, expected $rows"; }
  if [ "$variant" != pipe ]; then
    local landed
    landed=$(dst_sql "$target" -At -c "SELECT count(*) FROM $state_schema.history WHERE status = 'succeeded'")
    [ "$landed" = "$windows" ] || die "$variant into $target recorded $landed windows, expected $windows"
  fi
  local secs label="run $run/$runs"
  secs=$(seconds_between "$start_ns" "$end_ns")
  if [ "$run" = 0 ]; then
    label="warm-up"
  else
    printf '%s %s %s %s\n' "$target" "$variant" "$run" "$secs" >>"$results"
  fi
  printf '  %-4s %-5s %-8s %7.2f s  (load %s)\n' "$target" "$variant" "$label" "$secs" "$(load_average)"
}

psql=$(find_psql)
bench_start_ns=$(date +%s%N)

if [[ " $variants " == *" one "* || " $variants " == *" h48 "* ]]; then
  section "build"
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    echo "skipped (SKIP_BUILD=1)"
  else
    cargo build --release -p gptransfer
  fi
  [ -x "$bin" ] || die "no binary at $bin"
  echo "$("$bin" --version) at $bin"
fi

warn_if_loaded

section "clusters under $bench_dir"
mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
exec 9>"$bench_dir/.lock"
flock -n 9 || die "another scripts/bench-windows.sh is running with $bench_dir (lock $bench_dir/.lock)"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$pg_dir"
scripts/gp-server.sh stop gp6 "$gp_dir"
trap cleanup EXIT
src_port=$(free_port 55632)
pg_port=$(free_port 55633 "$src_port")
bench_server "$src_dir" "$src_port" "$GPT_SRC_PASSWORD" "$db"
if [[ " $targets " == *" pg "* ]]; then
  bench_server "$pg_dir" "$pg_port" "$GPT_DST_PASSWORD" "$db"
fi
if [[ " $targets " == *" gp6 "* ]]; then
  # A master and its 2 segments take 3 ports.
  gp_port=56640
  while port_in_use "$gp_port" || port_in_use $((gp_port + 1)) || port_in_use $((gp_port + 2)); do
    gp_port=$((gp_port + 3))
  done
  rm -rf "$gp_dir"
  scripts/gp-server.sh start gp6 "$gp_dir" "$gp_port" "$GPT_DST_PASSWORD" 9>&-
  PGOPTIONS='-c client_min_messages=warning' "$psql" -h 127.0.0.1 -p "$gp_port" -U gpadmin -d postgres -X -q \
    -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
fi
if [ "${LOG_STATEMENTS:-0}" = 1 ]; then
  for target in $targets; do
    dst_sql "$target" -c "ALTER DATABASE $db SET log_min_duration_statement = 0"
  done
fi
echo "source PostgreSQL 127.0.0.1:$src_port; targets: $targets (pg 127.0.0.1:${pg_port}, gp6 127.0.0.1:${gp_port:-none});" \
  "$(nproc) cores, $("$psql" --version)"

section "$rows rows over 2 days: generate"
gen_start=$(date +%s%N)
src_sql -f scripts/sql/create_table.sql
src_sql -v rows="$rows" -v day="$day" -f scripts/sql/generate.sql
# generate.sql spreads the rows over one day: stretch them over two.
src_sql -c "UPDATE $table SET evt_timestamp = '$day'::timestamp + 2 * (evt_timestamp - '$day'::timestamp)"
src_sql -f scripts/sql/add_indexes.sql
src_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
for target in $targets; do
  dst_sql "$target" -f scripts/sql/create_table.sql -f scripts/sql/add_indexes.sql
  write_config "$target" 2d
  write_config "$target" 1h
done
echo "generated in $(seconds_between "$gen_start" "$(date +%s%N)") s"

export PSQL=$psql SELECT_SQL=$select_sql TABLE=$table
export SRC_URL="postgres://gpt@127.0.0.1:$src_port/$db"
export -f pipe_copy

results=$bench_dir/results.txt
: >"$results"
read -r -a order <<<"$variants"
for target in $targets; do
  section "$target: $runs runs of: $variants"
  # Uncounted: the first loads into a fresh cluster also create its WAL segment files.
  measure "$target" "${order[${#order[@]} - 1]}" 0
  for run in $(seq 1 "$runs"); do
    for ((i = 0; i < ${#order[@]}; i++)); do
      measure "$target" "${order[$(((i + run - 1) % ${#order[@]}))]}" "$run"
    done
  done
done

section "results: $rows rows, median of $runs runs (load average now $(load_average))"
declare -A secs_of
verdict=0
check() { # check LABEL VALUE OP LIMIT
  local ok
  ok=$(awk -v x="$2" -v l="$4" -v op="$3" 'BEGIN { print ((op == ">=" && x >= l) || (op == "<=" && x <= l)) ? "ok" : "MISSED" }')
  printf '  %-52s %8.3f   (target %s %s)  %s\n' "$1" "$2" "$3" "$4" "$ok"
  [ "$ok" = ok ] || verdict=1
}
for target in $targets; do
  for v in $variants; do
    mapfile -t s < <(awk -v t="$target" -v v="$v" '$1 == t && $2 == v { print $4 }' "$results")
    secs_of[$target,$v]=$(median "${s[@]}")
    printf '  %-4s %-5s %7.2f s   (runs: %s)\n' "$target" "$v" "${secs_of[$target,$v]}" "${s[*]}"
  done
done
for target in $targets; do
  echo "$target:"
  if [ -n "${secs_of[$target,pipe]:-}" ]; then
    [ -z "${secs_of[$target,one]:-}" ] ||
      check "one window: pipe time / gptransfer time" "$(ratio "${secs_of[$target,pipe]}" "${secs_of[$target,one]}")" ">=" 1.0
    [ -z "${secs_of[$target,h48]:-}" ] ||
      check "48 windows: pipe time / gptransfer time" "$(ratio "${secs_of[$target,pipe]}" "${secs_of[$target,h48]}")" ">=" 0.8
  fi
  if [ -n "${secs_of[$target,one]:-}" ] && [ -n "${secs_of[$target,h48]:-}" ]; then
    check "fixed cost per window, ms: (t_h48 - t_one) / 47" \
      "$(awk -v a="${secs_of[$target,h48]}" -v b="${secs_of[$target,one]}" 'BEGIN { printf "%.1f", (a - b) / 47 * 1000 }')" "<=" 30
  fi
  if [ -n "${secs_of[$target,one-base]:-}" ] && [ -n "${secs_of[$target,h48-base]:-}" ]; then
    printf '  %-52s %8.1f   (BASE_BIN %s)\n' "fixed cost per window of the base build, ms" \
      "$(awk -v a="${secs_of[$target,h48-base]}" -v b="${secs_of[$target,one-base]}" 'BEGIN { printf "%.1f", (a - b) / 47 * 1000 }')" \
      "$BASE_BIN"
    [ -z "${secs_of[$target,pipe]:-}" ] ||
      printf '  %-52s %8.3f\n' "48 windows, base build: pipe time / its time" \
        "$(ratio "${secs_of[$target,pipe]}" "${secs_of[$target,h48-base]}")"
  fi
done
echo "per-run figures: $results; logs: $bench_dir/*.log; whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
if [ "$verdict" != 0 ] && [ "${STRICT:-0}" = 1 ]; then
  exit 1
fi
