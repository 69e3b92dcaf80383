#!/usr/bin/env bash
# Greenplum at cluster scale (issue 11, part 6): a real GP6 source cluster and a real GP6 target
# cluster, each a master and N segments, on this machine; the same rows moved by
#   pipe     psql -c "\copy (SELECT … 2 days) to stdout" | psql -c "\copy t from stdin"
#   master   `gptransfer run`, ONE 2-day window through both masters (transport stream)
#   segment  `gptransfer run`, ONE 2-day window segment to segment (transport gpfdist: the
#            source's segments write to gpfdist on this host, the target's segments read)
#   h48      `gptransfer run`, the 2 days as 48 hourly windows (master path, --parallel 1)
#   h48p4    the same 48 windows as a backfill with --parallel 4
#   compare  `gptransfer compare` of the 2 days after 6 rows of the target were damaged; it must
#            name exactly those 6 keys (timed against `master`, the copy of the same table)
# For every variant: the median wall time, its throughput against the pipe, the peak RSS of
# the measured command (GNU time), and the CPU time spent during the run, read from /proc: the
# two MASTERS' processes (each postmaster's own and reaped children's time, plus its live
# children's), all the SEGMENTS' processes (the same, per segment), and the measured command
# with its children (gptransfer and its gpfdist processes, or the pipe's two psql). The segment
# path must leave the masters nearly idle: its masters' CPU is printed as a share of the master
# path's (target < 10 %). The CPU of all processes is what decides the time on one machine,
# and the segments' share is what a real cluster spreads over its segment hosts.
#
#   scripts/bench-gp.sh                                    # 5M rows; 2 and 4 segments; 3 runs
#   ROWS=200000 RUNS=1 SEGMENTS_LIST=2 scripts/bench-gp.sh # a quick smoke run
#
# Environment (all optional):
#   ROWS=5000000  RUNS=3  SEGMENTS_LIST="2 4"  VARIANTS="pipe master segment h48 h48p4 compare"
#   RUN_TIMEOUT=1800 (s, per measured run)  BENCH_DIR=/tmp/gptransfer-bench-gp
#   SKIP_BUILD=1  GPTRANSFER_BIN=…  STRICT=1 (exit 1 when a target of issue 11 is missed)
#   KEEP_CLUSTERS=1 (leave the clusters running at exit)
# Runs are interleaved in a rotating order after one uncounted warm-up, so every variant sees
# the same load; the load average is printed beside each run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-5000000}
runs=${RUNS:-3}
segments_list=${SEGMENTS_LIST:-"2 4"}
variants=${VARIANTS:-"pipe master segment h48 h48p4 compare"}
run_timeout=${RUN_TIMEOUT:-1800}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-gp}
db=bench
day="2024-01-01"
end_day="2024-01-03"
table=eda.wpp_fdefect_f_n
state_schema=gptransfer
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
columns="glass_id, defect_seq, site, defect_code, evt_timestamp, x, y, size, judge, comment, load_time"
quoted_columns=$(sed -E 's/([a-z_]+)/"\1"/g' <<<"$columns")
select_sql="SELECT $quoted_columns FROM \"eda\".\"wpp_fdefect_f_n\" WHERE \"evt_timestamp\" >= '$day 00:00:00'::timestamp AND \"evt_timestamp\" < '$end_day 00:00:00'::timestamp"
clk_tck=$(getconf CLK_TCK)
password=${GPT_BENCH_PASSWORD:-gp-bench-secret}
export GPT_SRC_PASSWORD=$password GPT_DST_PASSWORD=$password

section() { printf '\n==== %s ====\n' "$*"; }

# gp_sql src|dst ARGS…: superuser session (gpadmin is trusted on 127.0.0.1).
gp_sql() {
  local side=$1 port
  shift
  if [ "$side" = src ]; then port=$src_port; else port=$dst_port; fi
  PGOPTIONS='-c client_min_messages=warning' \
    "$psql" -h 127.0.0.1 -p "$port" -U gpadmin -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}

cleanup() {
  local rc=$?
  if [ "${KEEP_CLUSTERS:-0}" = 1 ]; then
    echo "clusters left running (KEEP_CLUSTERS=1) under $bench_dir"
    exit "$rc"
  fi
  scripts/gp-server.sh stop gp6 "$bench_dir/src" || true
  scripts/gp-server.sh stop gp6 "$bench_dir/dst" || true
  exit "$rc"
}

# A port P such that P…P+N are all free (a master and its N segments), from $1 on.
free_cluster_port() {
  local port=$1 n=$2 i
  while :; do
    for ((i = 0; i <= n; i++)); do
      if port_in_use $((port + i)); then
        port=$((port + n + 1))
        continue 2
      fi
    done
    echo "$port"
    return
  done
}

# postmaster_cpu_ticks DATADIR: CPU ticks spent so far by one GP6 instance (a master or a
# segment): the postmaster's own and its reaped children's (backends that ended), plus every
# live child's. A child may end while it is read: it then counts in the reaped children's time
# of the next reading, and the read is skipped (with pipefail, a failed read would end the
# script silently).
postmaster_cpu_ticks() {
  local pid child
  pid=$(head -n 1 "$1/postmaster.pid")
  {
    # Fields after the command name: utime is the 12th, stime 13th, cutime 14th, cstime 15th.
    sed -E 's/^.*\) //' "/proc/$pid/stat" | awk '{ print $12 + $13 + $14 + $15 }'
    for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
      sed -E 's/^.*\) //' "/proc/$child/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true
    done
  } | awk '{ s += $1 } END { print s + 0 }'
}

# master_cpu_ticks DIR: the ticks of a cluster's master.
master_cpu_ticks() {
  postmaster_cpu_ticks "$1/master/gpseg-1"
}

# segments_cpu_ticks DIR: the ticks of all of a cluster's primary segments together.
segments_cpu_ticks() {
  local d total=0
  for d in "$1"/primary/gpseg*; do
    total=$((total + $(postmaster_cpu_ticks "$d")))
  done
  echo "$total"
}

# write_config NAME DURATION TRANSPORT: the job moving the 2 days in windows of DURATION.
write_config() {
  local name=$1 duration=$2 transport=$3
  cat >"$bench_dir/$name.toml" <<TOML
# Written by scripts/bench-gp.sh.
[clusters.src]
url = "postgres://gpt@127.0.0.1:$src_port/$db"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:$dst_port/$db"
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
transport = $transport

[[jobs.bench.tables]]
table = "$table"
condition_column = "evt_timestamp"
final_end = "$end_day 00:00:00"
mode = "replace"
key = ["glass_id", "defect_seq"]
TOML
}

reset_target() {
  gp_sql dst -c "TRUNCATE $table" -c "DROP SCHEMA IF EXISTS $state_schema CASCADE" -c "CHECKPOINT"
}

# The target holds the whole copy, with 6 rows changed: what compare must find.
prepare_compare() {
  local count
  count=$(gp_sql dst -At -c "SELECT count(*) FROM $table")
  if [ "$count" != "$rows" ] || [ ! -s "$bench_dir/expected.keys" ]; then
    reset_target
    timeout "$run_timeout" "$bin" --config "$bench_dir/master.toml" -q run --job bench >"$bench_dir/compare-load.log" 2>&1 ||
      { tail -n 40 "$bench_dir/compare-load.log" >&2; die "loading the table for compare failed"; }
    gp_sql dst -At -c "
      UPDATE $table SET comment = coalesce(comment, '') || ' (damaged)'
      WHERE (glass_id, defect_seq) IN (SELECT glass_id, defect_seq FROM $table
                                       WHERE defect_seq = 3 ORDER BY glass_id LIMIT 6)
      RETURNING glass_id || '|' || defect_seq" | grep -E '\|' | sort >"$bench_dir/expected.keys"
    [ "$(grep -c . "$bench_dir/expected.keys")" = 6 ] || die "damaging 6 rows of the target failed"
  fi
}

# The keys compare named, "glass_id|defect_seq" per line, sorted.
compare_keys() {
  python3 - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
keys = set()
for w in report["windows"]:
    if w.get("error"):
        sys.exit("window %s: %s" % (w["window"], w["error"]))
    for d in w["differences"]:
        parts = dict(p.split("=", 1) for p in d["key"].split(", "))
        keys.add("%s|%s" % (parts["glass_id"], parts["defect_seq"]))
print("\n".join(sorted(keys)))
PY
}

# measure SEGMENTS VARIANT RUN: one run; appends "segments variant run seconds rss_kb
# src_master_s dst_master_s" to $results unless RUN is 0 (a warm-up).
measure() {
  local n=$1 variant=$2 run=$3
  local log=$bench_dir/$variant.log cmd rc=0 expected_rc=0 windows=1
  case "$variant" in
    compare) prepare_compare ;;
    *)
      reset_target
      # The damaged copy compare needs is gone: the next compare loads and damages it again.
      rm -f "$bench_dir/expected.keys"
      ;;
  esac
  case "$variant" in
    pipe) cmd=(bash -c pipe_copy) ;;
    master) cmd=("$bin" --config "$bench_dir/master.toml" run --job bench) ;;
    segment) cmd=("$bin" --config "$bench_dir/segment.toml" run --job bench) ;;
    h48) cmd=("$bin" --config "$bench_dir/h48.toml" run --job bench --parallel 1) windows=48 ;;
    h48p4) cmd=("$bin" --config "$bench_dir/h48.toml" run --job bench --parallel 4) windows=48 ;;
    compare)
      expected_rc=3
      cmd=("$bin" --config "$bench_dir/master.toml" -q compare --from "$day 00:00:00" --to "$end_day 00:00:00"
        --show 1000 --output json)
      ;;
    *) die "unknown variant $variant (VARIANTS may hold pipe, master, segment, h48, h48p4, compare)" ;;
  esac
  local src_before dst_before start_ns end_ns load_before
  load_before=$(load_average)
  src_before=$(master_cpu_ticks "$bench_dir/src")
  dst_before=$(master_cpu_ticks "$bench_dir/dst")
  local src_segs_before dst_segs_before
  src_segs_before=$(segments_cpu_ticks "$bench_dir/src")
  dst_segs_before=$(segments_cpu_ticks "$bench_dir/dst")
  start_ns=$(date +%s%N)
  # Peak RSS, and the CPU of the command with its children (gpfdist, psql) as they are reaped.
  timeout "$run_timeout" /usr/bin/time -f '%M %U %S' -o "$bench_dir/rss" "${cmd[@]}" >"$log" 2>&1 || rc=$?
  end_ns=$(date +%s%N)
  local src_after dst_after
  src_after=$(master_cpu_ticks "$bench_dir/src")
  dst_after=$(master_cpu_ticks "$bench_dir/dst")
  local src_segs_after dst_segs_after
  src_segs_after=$(segments_cpu_ticks "$bench_dir/src")
  dst_segs_after=$(segments_cpu_ticks "$bench_dir/dst")
  if [ "$rc" != "$expected_rc" ]; then
    printf '\n%s (%s segments) exited %s, expected %s: %s\n--- last lines ---\n' "$variant" "$n" "$rc" "$expected_rc" "${cmd[*]}" >&2
    tail -n 40 "$log" >&2
    die "$variant failed"
  fi
  local found=""
  if [ "$variant" = compare ]; then
    compare_keys "$log" >"$bench_dir/compare.keys" || die "cannot read compare's report $log"
    cmp -s "$bench_dir/compare.keys" "$bench_dir/expected.keys" ||
      die "compare named $(paste -sd ' ' "$bench_dir/compare.keys"), expected $(paste -sd ' ' "$bench_dir/expected.keys")"
    found="named the 6 damaged keys"
  else
    local got
    got=$(gp_sql dst -At -c "SELECT count(*) FROM $table")
    [ "$got" = "$rows" ] || { tail -n 40 "$log" >&2; die "$variant left $got rows, expected $rows"; }
    if [ "$variant" != pipe ]; then
      local landed
      landed=$(gp_sql dst -At -c "SELECT count(*) FROM $state_schema.history WHERE status = 'succeeded'")
      [ "$landed" = "$windows" ] || die "$variant recorded $landed windows, expected $windows"
    fi
    gp_sql dst -c "CHECKPOINT"
  fi
  local secs rss user sys src_cpu dst_cpu segs_cpu tool_cpu label="run $run/$runs"
  secs=$(seconds_between "$start_ns" "$end_ns")
  read -r rss user sys < <(tail -n 1 "$bench_dir/rss")
  ticks_s() { awk -v a="$1" -v b="$2" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }'; }
  src_cpu=$(ticks_s "$src_before" "$src_after")
  dst_cpu=$(ticks_s "$dst_before" "$dst_after")
  segs_cpu=$(ticks_s $((src_segs_before + dst_segs_before)) $((src_segs_after + dst_segs_after)))
  tool_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  if [ "$run" = 0 ]; then
    label="warm-up"
  else
    printf '%s %s %s %s %s %s %s %s %s\n' "$n" "$variant" "$run" "$secs" "$rss" "$src_cpu" "$dst_cpu" "$segs_cpu" \
      "$tool_cpu" >>"$results"
  fi
  printf '  %s seg  %-8s %-8s %7.2f s  rss %6d KB  cpu: masters %5.2f + %5.2f s, segments %6.2f s, tool %5.2f s  %s (load %s → %s)\n' \
    "$n" "$variant" "$label" "$secs" "$rss" "$src_cpu" "$dst_cpu" "$segs_cpu" "$tool_cpu" "$found" "$load_before" \
    "$(load_average)"
}

command -v python3 >/dev/null 2>&1 || die "python3 is missing"
[ -x /usr/bin/time ] || ensure_packages time
psql=$(find_psql)
bench_start_ns=$(date +%s%N)
eval "$(scripts/gp-server.sh homes)"
gpfdist=$GP6_HOME/bin/gpfdist

section "build"
if [ "${SKIP_BUILD:-0}" = 1 ]; then echo "skipped (SKIP_BUILD=1)"; else cargo build --release -p gptransfer; fi
[ -x "$bin" ] || die "no binary at $bin"
echo "$("$bin" --version) at $bin; gpfdist: $gpfdist"
warn_if_loaded

mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
exec 9>"$bench_dir/.lock"
flock -n 9 || die "another scripts/bench-gp.sh is running with $bench_dir (lock $bench_dir/.lock)"
trap cleanup EXIT
results=$bench_dir/results.txt
: >"$results"
export PSQL=$psql SELECT_SQL=$select_sql TABLE=$table
export -f pipe_copy

for n in $segments_list; do
  section "GP6 → GP6, $n segments each, $rows rows over 2 days"
  scripts/gp-server.sh stop gp6 "$bench_dir/src"
  scripts/gp-server.sh stop gp6 "$bench_dir/dst"
  rm -rf "$bench_dir/src" "$bench_dir/dst" "$bench_dir/expected.keys"
  src_port=$(free_cluster_port 56700 "$n")
  scripts/gp-server.sh start gp6 "$bench_dir/src" "$src_port" "$password" "$n" 9>&-
  dst_port=$(free_cluster_port $((src_port + n + 1)) "$n")
  scripts/gp-server.sh start gp6 "$bench_dir/dst" "$dst_port" "$password" "$n" 9>&-
  for port in "$src_port" "$dst_port"; do
    PGOPTIONS='-c client_min_messages=warning' "$psql" -h 127.0.0.1 -p "$port" -U gpadmin -d postgres -X -q \
      -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
  done
  gpfdist_ports=$(free_cluster_port $((dst_port + n + 1)) 9)
  echo "source 127.0.0.1:$src_port, target 127.0.0.1:$dst_port, gpfdist ports $gpfdist_ports-$((gpfdist_ports + 9));" \
    "$(nproc) cores"
  gen_start=$(date +%s%N)
  gp_sql src -f scripts/sql/create_table.sql
  gp_sql src -v rows="$rows" -v day="$day" -f scripts/sql/generate.sql
  # generate.sql spreads the rows over one day: stretch them over two.
  gp_sql src -c "UPDATE $table SET evt_timestamp = '$day'::timestamp + 2 * (evt_timestamp - '$day'::timestamp)"
  gp_sql src -f scripts/sql/add_indexes.sql -c "VACUUM ANALYZE $table" -c "CHECKPOINT"
  gp_sql dst -f scripts/sql/create_table.sql -f scripts/sql/add_indexes.sql
  echo "generated in $(seconds_between "$gen_start" "$(date +%s%N)") s"
  write_config master 2d '"stream"'
  write_config h48 1h '"stream"'
  write_config segment 2d \
    "{ plugin = \"gpfdist\", host = \"127.0.0.1\", port_range = [$gpfdist_ports, $((gpfdist_ports + 9))], gpfdist = \"$gpfdist\" }"
  export SRC_URL="postgres://gpt@127.0.0.1:$src_port/$db" DST_URL="postgres://gpt@127.0.0.1:$dst_port/$db"

  read -r -a order <<<"$variants"
  # Uncounted: the first load into a fresh cluster also creates its files.
  measure "$n" "${order[0]}" 0
  for run in $(seq 1 "$runs"); do
    for ((i = 0; i < ${#order[@]}; i++)); do
      measure "$n" "${order[$(((i + run - 1) % ${#order[@]}))]}" "$run"
    done
  done
  scripts/gp-server.sh stop gp6 "$bench_dir/src"
  scripts/gp-server.sh stop gp6 "$bench_dir/dst"
done

section "results: $rows rows, medians of $runs runs (load average now $(load_average))"
declare -A secs_of cpu_of all_of
verdict=0
check() { # check LABEL VALUE OP LIMIT
  local ok
  ok=$(awk -v x="$2" -v l="$4" -v op="$3" 'BEGIN { print ((op == ">=" && x >= l) || (op == "<=" && x <= l)) ? "ok" : "MISSED" }')
  printf '    %-58s %8.3f   (target %s %s)  %s\n' "$1" "$2" "$3" "$4" "$ok"
  [ "$ok" = ok ] || verdict=1
}
column_of() { # column_of SEGMENTS VARIANT FIELD: that field of every run
  awk -v n="$1" -v v="$2" -v f="$3" '$1 == n && $2 == v { print $f }' "$results"
}
for n in $segments_list; do
  echo "  $n segments per cluster:"
  printf '    %-8s %9s %9s %12s %14s %14s %12s %9s %11s\n' variant "median s" "vs pipe" "max RSS KB" "src master s" \
    "dst master s" "segments s" "tool s" "all CPU s"
  for v in $variants; do
    mapfile -t s < <(column_of "$n" "$v" 4)
    [ "${#s[@]}" -gt 0 ] || continue
    mapfile -t r < <(column_of "$n" "$v" 5)
    mapfile -t cs < <(column_of "$n" "$v" 6)
    mapfile -t cd < <(column_of "$n" "$v" 7)
    mapfile -t cg < <(column_of "$n" "$v" 8)
    mapfile -t ct < <(column_of "$n" "$v" 9)
    secs_of[$n,$v]=$(median "${s[@]}")
    cpu_of[$n,$v]=$(awk -v a="$(median "${cs[@]}")" -v b="$(median "${cd[@]}")" 'BEGIN { printf "%.2f", a + b }')
    vs="-"
    [ -z "${secs_of[$n,pipe]:-}" ] || [ "$v" = compare ] || vs=$(ratio "${secs_of[$n,pipe]}" "${secs_of[$n,$v]}")
    all_of[$n,$v]=$(awk -v a="${cpu_of[$n,$v]}" -v b="$(median "${cg[@]}")" -v c="$(median "${ct[@]}")" \
      'BEGIN { printf "%.2f", a + b + c }')
    printf '    %-8s %9.2f %9s %12s %14s %14s %12s %9s %11s\n' "$v" "${secs_of[$n,$v]}" "$vs" \
      "$(printf '%s\n' "${r[@]}" | sort -g | tail -n 1)" "$(median "${cs[@]}")" "$(median "${cd[@]}")" \
      "$(median "${cg[@]}")" "$(median "${ct[@]}")" "${all_of[$n,$v]}"
  done
  if [ -n "${secs_of[$n,segment]:-}" ] && [ -n "${secs_of[$n,master]:-}" ]; then
    check "segment path speed / master path speed" "$(ratio "${secs_of[$n,master]}" "${secs_of[$n,segment]}")" ">=" 1.0
    # On one machine the time follows the CPU all processes need; on a real cluster the
    # segments' share is spread over the segment hosts.
    printf '    %-58s %8.2f\n' "all CPU, segment path / master path" \
      "$(awk -v a="${all_of[$n,segment]}" -v b="${all_of[$n,master]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    check "masters' CPU, segment path / master path (%)" \
      "$(awk -v a="${cpu_of[$n,segment]}" -v b="${cpu_of[$n,master]}" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')" "<=" 10
  fi
  if [ -n "${secs_of[$n,pipe]:-}" ] && [ -n "${secs_of[$n,master]:-}" ]; then
    check "one window (master path): pipe time / gptransfer time" "$(ratio "${secs_of[$n,pipe]}" "${secs_of[$n,master]}")" ">=" 1.0
  fi
  if [ -n "${secs_of[$n,pipe]:-}" ] && [ -n "${secs_of[$n,h48]:-}" ]; then
    check "48 hourly windows: pipe time / gptransfer time" "$(ratio "${secs_of[$n,pipe]}" "${secs_of[$n,h48]}")" ">=" 0.8
  fi
  if [ -n "${secs_of[$n,master]:-}" ] && [ -n "${secs_of[$n,h48]:-}" ]; then
    printf '    %-58s %8.1f\n' "fixed cost per window, ms: (t_h48 - t_master) / 47" \
      "$(awk -v a="${secs_of[$n,h48]}" -v b="${secs_of[$n,master]}" 'BEGIN { printf "%.1f", (a - b) / 47 * 1000 }')"
  fi
  if [ -n "${secs_of[$n,h48]:-}" ] && [ -n "${secs_of[$n,h48p4]:-}" ]; then
    check "backfill of 48 windows: --parallel 1 time / --parallel 4 time" "$(ratio "${secs_of[$n,h48]}" "${secs_of[$n,h48p4]}")" ">=" 1.0
  fi
  if [ -n "${secs_of[$n,compare]:-}" ] && [ -n "${secs_of[$n,master]:-}" ]; then
    check "compare time / copy (master path) time" "$(ratio "${secs_of[$n,compare]}" "${secs_of[$n,master]}")" "<=" 0.5
  fi
done
echo "per-run figures (segments variant run s rss_kb src_master_s dst_master_s segments_s tool_s): $results;" \
  "logs: $bench_dir/*.log"
echo "whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
if [ "$verdict" != 0 ] && [ "${STRICT:-0}" = 1 ]; then
  exit 1
fi
