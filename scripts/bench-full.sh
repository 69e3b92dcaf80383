#!/usr/bin/env bash
# A `full` reload of an indexed table (issue 11 part 5): gptransfer's copy sink drops the
# target's indexes after its TRUNCATE and builds them again after the COPY, in the window's
# transaction; the pipe a user would write loads into the indexed table row by row.
#
#   scripts/bench-full.sh                               # 5M rows into PostgreSQL; 3 runs per variant
#   ROWS=500000 RUNS=1 scripts/bench-full.sh            # a quick smoke run
#   TARGETS="pg gp6" scripts/bench-full.sh              # also into a real GP6 cluster (2 segments)
#
# The source is a PostgreSQL cluster holding the generated table of scripts/sql/ (bench.sh's).
# The target table has a primary key and 2 secondary indexes (evt_timestamp; site, defect_code).
# Per target, on the same rows, each run starting from the emptied indexed table:
#   pipe       psql -c "\copy (SELECT …) to stdout" | psql -c "\copy t from stdin"
#   full       `gptransfer run`, mode full (copy sink, rebuild_indexes = true: the default)
#   full-keep  the same with rebuild_indexes = false (the indexes stay during the COPY)
#   full-mwm   rebuild_indexes with maintenance_work_mem = $MWM (default 256MB) for the builds
#   full-freeze  rebuild_indexes and freeze = true (COPY … FREEZE; PostgreSQL targets only); the
#              VACUUM after each run is timed too: what FREEZE saves comes later
# After one uncounted warm-up run per target, each variant runs RUNS times, interleaved in a
# rotating order. Reported: median wall times, each variant's speed as pipe time / its time,
# peak RSS of the client processes. After the last gptransfer run the target is checked
# byte-exact against the source (count and an order-free sum of each row's md5) and its 3
# indexes present and valid.
#
# Environment (all optional):
#   ROWS=5000000  RUNS=3  TARGETS="pg"  VARIANTS="pipe full full-keep"  MWM=256MB
#   RUN_TIMEOUT=1800 (s, per measured run)  BENCH_DIR=/tmp/gptransfer-bench-full  SKIP_BUILD=1
#   STRICT=1  exit 1 when full is not 1.5x the pipe
# Clusters are stopped at exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-5000000}
runs=${RUNS:-3}
targets=${TARGETS:-"pg"}
variants=${VARIANTS:-"pipe full full-keep"}
mwm=${MWM:-256MB}
run_timeout=${RUN_TIMEOUT:-1800}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-full}
src_dir=$bench_dir/src
pg_dir=$bench_dir/pg
gp_dir=$bench_dir/gp6
db=bench
day="2024-01-01"
table=eda.wpp_fdefect_f_n
state_schema=gptransfer
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
columns="glass_id, defect_seq, site, defect_code, evt_timestamp, x, y, size, judge, comment, load_time"
quoted_columns=$(sed -E 's/([a-z_]+)/"\1"/g' <<<"$columns")
select_sql="SELECT $quoted_columns FROM \"eda\".\"wpp_fdefect_f_n\""
second_index="CREATE INDEX wpp_fdefect_f_n_site_code_idx ON $table (site, defect_code)"

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
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$pg_dir" || true
  scripts/gp-server.sh stop gp6 "$gp_dir" || true
  exit "$rc"
}

max_rss_kb() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }

dst_url() {
  case "$1" in
    pg) echo "postgres://gpt@127.0.0.1:$pg_port/$db" ;;
    gp6) echo "postgres://gpt@127.0.0.1:$gp_port/$db" ;;
  esac
}

# Every run starts from the same state: the indexed table empty, no state schema, a checkpoint.
reset_target() {
  dst_sql "$1" -c "TRUNCATE $table" -c "DROP SCHEMA IF EXISTS $state_schema CASCADE" -c "CHECKPOINT"
}

# write_config TARGET NAME SINK: the full job with the given copy sink options.
write_config() {
  local target=$1 name=$2 sink=$3
  cat >"$bench_dir/$target-$name.toml" <<TOML
# Written by scripts/bench-full.sh.
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
end = "$day 01:00:00"
duration = "1h"
sink = $sink

[[jobs.bench.tables]]
table = "$table"
mode = "full"
TOML
}

# "rows | sum of each row's md5 (60 bits)": equal on both sides when the copy is exact;
# order-free, so no 5M-row sort or string_agg. Doubles through numeric (15 digits on every
# version: PostgreSQL 12+ and 9.4 print float8 text differently).
digest() {
  local row="glass_id, defect_seq, site, defect_code, evt_timestamp, x::numeric, y::numeric, size, judge, comment, load_time"
  "$@" -At -c "SET TimeZone = 'UTC'" -c "SET DateStyle = 'ISO, MDY'" \
    -c "SELECT count(*) || ' | ' || coalesce(sum(('x' || substr(md5(row($row)::text), 1, 15))::bit(60)::bigint), 0) FROM $table"
}

# measure TARGET VARIANT RUN: runs one variant once; appends "target variant run seconds rss_kb"
# to $results, unless RUN is 0 (a warm-up, not counted).
measure() {
  local target=$1 variant=$2 run=$3
  local log=$bench_dir/$target-$variant.log timefile=$bench_dir/time.txt cmd start_ns end_ns rc=0
  reset_target "$target"
  case "$variant" in
    pipe) cmd=(env DST_URL="$(dst_url "$target")" bash -c pipe_copy) ;;
    full | full-keep | full-mwm | full-freeze) cmd=("$bin" --config "$bench_dir/$target-$variant.toml" run --job bench) ;;
    *) die "unknown variant $variant (VARIANTS may hold pipe, full, full-keep, full-mwm, full-freeze)" ;;
  esac
  start_ns=$(date +%s%N)
  /usr/bin/time -v -o "$timefile" timeout "$run_timeout" "${cmd[@]}" >"$log" 2>&1 || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != 0 ]; then
    printf '\n%s into %s failed (exit %s): %s\n--- last lines of its output ---\n' "$variant" "$target" "$rc" "${cmd[*]}" >&2
    tail -n 40 "$log" >&2
    die "$variant into $target failed"
  fi
  local got
  got=$(dst_sql "$target" -At -c "SELECT count(*) FROM $table")
  [ "$got" = "$rows" ] || { tail -n 40 "$log" >&2; die "$variant left $got rows on $target, expected $rows"; }
  local secs rss vacuum label="run $run/$runs" vacuum_ns
  secs=$(seconds_between "$start_ns" "$end_ns")
  rss=$(max_rss_kb "$timefile")
  # What a load leaves to do: the first VACUUM after it (hint bits, visibility map, freezing).
  vacuum_ns=$(date +%s%N)
  dst_sql "$target" -c "VACUUM $table"
  vacuum=$(seconds_between "$vacuum_ns" "$(date +%s%N)")
  if [ "$run" = 0 ]; then
    label="warm-up"
  else
    printf '%s %s %s %s %s %s\n' "$target" "$variant" "$run" "$secs" "$rss" "$vacuum" >>"$results"
  fi
  printf '  %-4s %-11s %-8s %7.2f s  peak RSS %6.1f MB  then VACUUM %6.2f s  (load %s)\n' "$target" "$variant" \
    "$label" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$vacuum" "$(load_average)"
}

psql=$(find_psql)
bench_start_ns=$(date +%s%N)

section "build"
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  echo "skipped (SKIP_BUILD=1)"
else
  cargo build --release -p gptransfer
fi
[ -x "$bin" ] || die "no binary at $bin"
echo "$("$bin" --version) at $bin"

warn_if_loaded

section "clusters under $bench_dir"
mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
exec 9>"$bench_dir/.lock"
flock -n 9 || die "another scripts/bench-full.sh is running with $bench_dir (lock $bench_dir/.lock)"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$pg_dir"
scripts/gp-server.sh stop gp6 "$gp_dir"
trap cleanup EXIT
src_port=$(free_port 55732)
pg_port=$(free_port 55733 "$src_port")
bench_server "$src_dir" "$src_port" "$GPT_SRC_PASSWORD" "$db"
if [[ " $targets " == *" pg "* ]]; then
  bench_server "$pg_dir" "$pg_port" "$GPT_DST_PASSWORD" "$db"
fi
if [[ " $targets " == *" gp6 "* ]]; then
  # A master and its 2 segments take 3 ports.
  gp_port=56740
  while port_in_use "$gp_port" || port_in_use $((gp_port + 1)) || port_in_use $((gp_port + 2)); do
    gp_port=$((gp_port + 3))
  done
  rm -rf "$gp_dir"
  scripts/gp-server.sh start gp6 "$gp_dir" "$gp_port" "$GPT_DST_PASSWORD" 9>&-
  PGOPTIONS='-c client_min_messages=warning' "$psql" -h 127.0.0.1 -p "$gp_port" -U gpadmin -d postgres -X -q \
    -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
fi
echo "source PostgreSQL 127.0.0.1:$src_port; targets: $targets (pg 127.0.0.1:${pg_port}, gp6 127.0.0.1:${gp_port:-none});" \
  "$(nproc) cores, $("$psql" --version)"

section "$rows rows: generate"
gen_start=$(date +%s%N)
src_sql -f scripts/sql/create_table.sql
src_sql -v rows="$rows" -v day="$day" -f scripts/sql/generate.sql
src_sql -f scripts/sql/add_indexes.sql
src_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
for target in $targets; do
  # Owned by gpt, the role gptransfer logs in as (it rebuilds only the indexes of its own tables).
  dst_sql "$target" -c "SET ROLE gpt" -f scripts/sql/create_table.sql -f scripts/sql/add_indexes.sql -c "$second_index"
  write_config "$target" full '"copy"'
  write_config "$target" full-keep '{ plugin = "copy", rebuild_indexes = false }'
  write_config "$target" full-mwm "{ plugin = \"copy\", maintenance_work_mem = \"$mwm\" }"
  write_config "$target" full-freeze '{ plugin = "copy", freeze = true }'
done
echo "generated in $(seconds_between "$gen_start" "$(date +%s%N)") s"

export PSQL=$psql SELECT_SQL=$select_sql TABLE=$table
export SRC_URL="postgres://gpt@127.0.0.1:$src_port/$db"
export -f pipe_copy

results=$bench_dir/results.txt
: >"$results"
read -r -a order <<<"$variants"
source_digest=$(digest src_sql)
for target in $targets; do
  section "$target: $runs runs of: $variants"
  # Uncounted: the first loads into a fresh cluster also create its WAL segment files.
  measure "$target" "${order[${#order[@]} - 1]}" 0
  for run in $(seq 1 "$runs"); do
    for ((i = 0; i < ${#order[@]}; i++)); do
      measure "$target" "${order[$(((i + run - 1) % ${#order[@]}))]}" "$run"
    done
  done
  # The last gptransfer load, checked (a pipe run may have come after it: load once more).
  for v in "${order[@]}"; do
    if [ "$v" = full ]; then
      measure "$target" full 0 >/dev/null
      got=$(digest dst_sql "$target")
      [ "$got" = "$source_digest" ] || die "$target after full: $got, source $source_digest"
      indexes=$(dst_sql "$target" -At -c "SELECT count(*) FROM pg_index WHERE indrelid = '$table'::regclass AND indisvalid")
      [ "$indexes" = 3 ] || die "$target after full: $indexes valid indexes, expected 3"
      echo "  $target after full: byte-exact ($got) and its 3 indexes valid"
    fi
  done
done

section "results: $rows rows, median of $runs runs (load average now $(load_average) on $(nproc) cores)"
warn_if_loaded
declare -A secs_of
verdict=0
for target in $targets; do
  for v in $variants; do
    mapfile -t s < <(awk -v t="$target" -v v="$v" '$1 == t && $2 == v { print $4 }' "$results")
    mapfile -t r < <(awk -v t="$target" -v v="$v" '$1 == t && $2 == v { print $5 }' "$results")
    mapfile -t w < <(awk -v t="$target" -v v="$v" '$1 == t && $2 == v { print $6 }' "$results")
    secs_of[$target,$v]=$(median "${s[@]}")
    printf '  %-4s %-11s %7.2f s  peak RSS %6.1f MB  then VACUUM %6.2f s  (runs: %s)\n' "$target" "$v" \
      "${secs_of[$target,$v]}" "$(awk -v k="$(median "${r[@]}")" 'BEGIN { print k / 1024 }')" "$(median "${w[@]}")" "${s[*]}"
  done
done
for target in $targets; do
  echo "$target:"
  [ -n "${secs_of[$target,pipe]:-}" ] || continue
  for v in $variants; do
    [ "$v" != pipe ] || continue
    x=$(ratio "${secs_of[$target,pipe]}" "${secs_of[$target,$v]}")
    mark=""
    if [ "$v" = full ]; then
      mark=$(awk -v x="$x" 'BEGIN { print (x >= 1.5) ? "ok (target >= 1.5)" : "MISSED (target >= 1.5)" }')
      [[ "$mark" == ok* ]] || verdict=1
    fi
    printf '  %-40s %8.3f  %s\n' "$v: pipe time / its time" "$x" "$mark"
  done
done
echo "per-run figures: $results; logs: $bench_dir/*.log; whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
if [ "$verdict" != 0 ] && [ "${STRICT:-0}" = 1 ]; then
  exit 1
fi
