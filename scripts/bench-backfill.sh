#!/usr/bin/env bash
# The backfill benchmark of issue 11: one table, 30 daily windows due at once (a first run),
# `gptransfer run --parallel 1` against `--parallel 4`, and the ratio of their wall times.
#
#   scripts/bench-backfill.sh                     # 1.2M rows (40 000 a day), 3 runs each
#   ROWS=300000 RUNS=1 scripts/bench-backfill.sh  # a quick run
#
# The table is bench.sh's eda.wpp_fdefect_f_n (scripts/sql/), its generated day stretched
# over 30 days; primary key and condition-column index on both sides. Before every run the
# target is truncated, gptransfer's state schema dropped (so the 30 windows are due again) and
# a CHECKPOINT taken. After one uncounted warm-up run, the variants run RUNS times each,
# interleaved. Each run is checked: 30 windows succeeded, the cursor at the 30th day's end,
# and the target's rows byte-identical to the source's (md5 of all rows as text, in key order).
#
# Environment (all optional):
#   ROWS=1200000   rows over the 30 days           RUNS=3        runs per variant
#   PARALLEL="1 4" the --parallel values compared  MODE=replace  (or merge)
#   BENCH_DIR=/tmp/gptransfer-bench-backfill       RUN_TIMEOUT=900 (s, per run)
#   SKIP_BUILD=1   no cargo build --release        GPTRANSFER_BIN=path to the binary
# Clusters are stopped at exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-1200000}
runs=${RUNS:-3}
read -r -a parallels <<<"${PARALLEL:-1 4}"
mode=${MODE:-replace}
run_timeout=${RUN_TIMEOUT:-900}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-backfill}
src_dir=$bench_dir/src
dst_dir=$bench_dir/dst
db=bench
first_day="2024-01-01"
end_day="2024-01-31"
table=eda.wpp_fdefect_f_n
config=$bench_dir/bench.toml
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
digest_sql="SELECT count(*) || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY glass_id, defect_seq)) FROM $table t"

export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-bench-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-bench-secret}

section() { printf '\n==== %s ====\n' "$*"; }
src_sql() { su_psql "$src_dir" "$src_port" -d "$db" "$@"; }
dst_sql() { su_psql "$dst_dir" "$dst_port" -d "$db" "$@"; }

cleanup() {
  local rc=$?
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$dst_dir" || true
  exit "$rc"
}

# measure P RUN: one run with --parallel P; appends "P run seconds" to $results unless RUN is
# 0 (the warm-up).
measure() {
  local p=$1 run=$2 log=$bench_dir/parallel-$1.log start_ns end_ns rc=0
  dst_sql -c "TRUNCATE $table" -c "DROP SCHEMA IF EXISTS gptransfer CASCADE" -c "CHECKPOINT"
  start_ns=$(date +%s%N)
  timeout "$run_timeout" "$bin" --config "$config" run --job backfill --parallel "$p" >"$log" 2>&1 || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != 0 ]; then
    tail -n 40 "$log" >&2
    die "--parallel $p failed (exit $rc), output in $log"
  fi
  local windows cursor got
  windows=$(dst_sql -At -c "SELECT count(*) FROM gptransfer.history WHERE status = 'succeeded'")
  cursor=$(dst_sql -At -c "SELECT cursor_end FROM gptransfer.cursors")
  got=$(dst_sql -At -c "$digest_sql")
  [ "$windows" = 30 ] || die "--parallel $p: $windows windows succeeded, expected 30 (output in $log)"
  [ "$cursor" = "$end_day 00:00:00" ] || die "--parallel $p: cursor at $cursor, expected $end_day 00:00:00"
  [ "$got" = "$source_digest" ] || die "--parallel $p: target $got differs from source $source_digest"
  local secs label="run $run/$runs"
  secs=$(seconds_between "$start_ns" "$end_ns")
  if [ "$run" = 0 ]; then label="warm-up"; else printf '%s %s %s\n' "$p" "$run" "$secs" >>"$results"; fi
  printf '  --parallel %-3s %-8s %7.2f s  (30 windows, byte-exact; load %s)\n' "$p" "$label" "$secs" "$(load_average)"
}

psql=$(find_psql)
section "build"
if [ "${SKIP_BUILD:-0}" = 1 ]; then echo "skipped (SKIP_BUILD=1)"; else cargo build --release -p gptransfer; fi
[ -x "$bin" ] || die "no binary at $bin"
echo "$("$bin" --version) at $bin"

section "clusters under $bench_dir"
mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
exec 9>"$bench_dir/.lock"
flock -n 9 || die "another scripts/bench-backfill.sh is running with $bench_dir"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$dst_dir"
trap cleanup EXIT
src_port=$(free_port 55542)
dst_port=$(free_port 55543 "$src_port")
bench_server "$src_dir" "$src_port" "$GPT_SRC_PASSWORD" "$db"
bench_server "$dst_dir" "$dst_port" "$GPT_DST_PASSWORD" "$db"
echo "source 127.0.0.1:$src_port, target 127.0.0.1:$dst_port, $(nproc) cores, $("$psql" --version)"

section "$rows rows over 30 days: generate"
src_sql -f scripts/sql/create_table.sql
src_sql -v rows="$rows" -v day="$first_day" -f scripts/sql/generate.sql
# The generated day, stretched evenly over the 30 days.
src_sql -c "UPDATE $table SET evt_timestamp = '$first_day'::timestamp + (evt_timestamp - '$first_day'::timestamp) * 30"
src_sql -f scripts/sql/add_indexes.sql
src_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
dst_sql -f scripts/sql/create_table.sql -f scripts/sql/add_indexes.sql
source_digest=$(src_sql -At -c "$digest_sql WHERE evt_timestamp >= '$first_day' AND evt_timestamp < '$end_day'")
echo "source: $source_digest (rows md5)"

cat >"$config" <<TOML
# Written by scripts/bench-backfill.sh: 30 daily windows due at once.
[clusters.src]
url = "postgres://gpt@127.0.0.1:$src_port/$db"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:$dst_port/$db"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.backfill]
from = "src"
to = "dst"
start = "$first_day 00:00:00"
duration = "1d"
lag = "0s"

[[jobs.backfill.tables]]
table = "$table"
condition_column = "evt_timestamp"
final_end = "$end_day 00:00:00"
mode = "$mode"
key = ["glass_id", "defect_seq"]
TOML

section "runs: --parallel ${parallels[*]}, $runs each"
results=$bench_dir/results.txt
: >"$results"
measure "${parallels[0]}" 0
for run in $(seq 1 "$runs"); do
  for ((i = 0; i < ${#parallels[@]}; i++)); do
    measure "${parallels[$(((i + run - 1) % ${#parallels[@]}))]}" "$run"
  done
done

section "results (median of $runs runs, $rows rows in 30 windows, $mode)"
declare -A secs_of
for p in "${parallels[@]}"; do
  mapfile -t s < <(awk -v p="$p" '$1 == p { print $3 }' "$results")
  secs_of[$p]=$(median "${s[@]}")
  printf '  --parallel %-3s %7.2f s  %10.0f rows/s\n' "$p" "${secs_of[$p]}" "$(awk -v n="$rows" -v s="${secs_of[$p]}" 'BEGIN { print n / s }')"
done
first=${parallels[0]} last=${parallels[${#parallels[@]} - 1]}
echo "  time --parallel $first / time --parallel $last: $(ratio "${secs_of[$first]}" "${secs_of[$last]}")"
