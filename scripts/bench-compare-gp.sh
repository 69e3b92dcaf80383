#!/usr/bin/env bash
# The compare benchmark on Greenplum 6 (issue 11): a table of ROWS rows (default 1M) on a real
# GP6 cluster, its copy in a second database of the SAME cluster damaged with exactly 6
# differences (3 rows deleted, 2 changed, 1 inserted: scripts/sql/bench-compare-damage.sql),
# and the time of
#   compare  `gptransfer compare --output json` (hash comparator, key = ["id"], the whole day
#            as ONE window), against
#   copy     `gptransfer run` of the same table (one 1-day window, mode replace) into an empty
#            table of the same definition in the target database.
# Prints seconds, the ratio compare/copy (target < 0.5) and whether compare named exactly the 6
# damaged keys (exit 1 when it did not).
#
#   scripts/bench-compare-gp.sh                      # 1M rows, 3 rounds
#   ROWS=100000 RUNS=1 scripts/bench-compare-gp.sh   # a quick smoke run
#
# One cluster, two databases (bsrc, bdst): two clusters of 2 segments each would put 6
# postgres servers on a 2-core machine for nothing, and both sides of a compare, like both
# ends of a copy, run at once on the same segments either way. Source and target talk to the
# tool over TCP with md5 password authentication (role gpt).
# After an uncounted warm-up round, RUNS rounds of the two in alternating order, so both see
# the same load on a shared machine; the load average is printed beside every run and medians
# are reported. Every copy is followed by an untimed CHECKPOINT.
#
# Environment (all optional):
#   ROWS=1000000  RUNS=3  WARMUP=1  SEGMENTS=2  PORT=56400 (master; segments take the next ones)
#   COMPARE_OPTIONS=…   extra options of the hash comparator, TOML, e.g. 'slices = 96'
#   BENCH_DIR=/tmp/gptransfer-bench-compare-gp     RUN_TIMEOUT=900 (s, per measured run)
#   SKIP_BUILD=1  do not run cargo build --release   STRICT=1  exit 1 when the 0.5 target is missed
#   EXPLAIN=1     also print EXPLAIN ANALYZE of the window-level statement compare sends
#   GPTRANSFER_BIN=…  the binary (default target/release/gptransfer); COMPARE_BIN=… another one
#                     for compare only; BASELINE_BIN=… an older binary whose compare is measured
#                     in the same rounds ("baseline"), for before/after figures under one load
# The cluster is stopped and its directory removed at exit (KEEP=1: left running, for a look).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-1000000}
runs=${RUNS:-3}
warmup=${WARMUP:-1}
segments=${SEGMENTS:-2}
compare_options=${COMPARE_OPTIONS:-}
run_timeout=${RUN_TIMEOUT:-900}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-compare-gp}
gp_dir=$bench_dir/gp6
day="2024-01-01"
next_day="2024-01-02"
table=eda.bench_compare
copy_dest=eda.bench_compare_copy
compare_state=gptransfer_bench_compare
copy_state=gptransfer_bench_copy
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
compare_bin=${COMPARE_BIN:-$bin}
baseline_bin=${BASELINE_BIN:-}
tools=(copy compare)
[ -z "$baseline_bin" ] || tools+=(baseline)
password=${GPT_BENCH_PASSWORD:-gp-bench-compare-secret}
export GPT_SRC_PASSWORD=$password GPT_DST_PASSWORD=$password

section() { printf '\n==== %s ====\n' "$*"; }

# Superuser (gpadmin, trusted on 127.0.0.1) session: gp_sql DB ARGS…
gp_sql() {
  local db=$1
  shift
  PGOPTIONS='-c client_min_messages=warning' \
    "$psql" -h 127.0.0.1 -p "$port" -U gpadmin -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  [ "${KEEP:-0}" != 1 ] || exit "$rc"
  scripts/gp-server.sh stop gp6 "$gp_dir" || true
  rm -rf "$gp_dir" "$gp_dir.log"
  exit "$rc"
}

# write_config FILE STATE_SCHEMA TARGET_TABLE: the one-day job, bsrc → bdst.
write_config() {
  local file=$1 state=$2 target=$3 options=""
  [ -z "$compare_options" ] || options=", $compare_options"
  cat >"$file" <<TOML
# Written by scripts/bench-compare-gp.sh.
[clusters.src]
url = "postgres://gpt@127.0.0.1:$port/bsrc"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:$port/bdst"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"
schema = "$state"

[jobs.bench]
from = "src"
to = "dst"
start = "$day 00:00:00"
duration = "1d"
lag = "0s"

[[jobs.bench.tables]]
table = "$table"
target_table = "$target"
condition_column = "evt_timestamp"
final_end = "$next_day 00:00:00"
mode = "replace"
key = ["id"]
compare = { plugin = "hash"$options }
TOML
}

# Differing ids in compare's JSON report, one per line, sorted.
compare_keys() {
  python3 - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
keys = set()
for w in report["windows"]:
    if w.get("error"):
        sys.exit("window %s: %s" % (w["window"], w["error"]))
    if len(w["differences"]) != w["total_differences"]:
        sys.exit("window %s: not every difference shown" % w["window"])
    for d in w["differences"]:
        assert d["key"].startswith("id="), d
        keys.add(int(d["key"][3:]))
    levels = ", ".join("%s %d/%d" % (l["level"], l["differing"], l["buckets"]) for l in w["levels"])
    print("  window %s: source %d rows, target %d rows; differing/compared buckets: %s"
          % (w["window"], w["source_count"], w["target_count"], levels), file=sys.stderr)
print("\n".join(str(k) for k in sorted(keys)))
PY
}

# measure TOOL RUN: one timed run; appends "tool run seconds" to $results unless RUN is 0.
measure() {
  local tool=$1 run=$2 out=$bench_dir/$1.out err=$bench_dir/$1.err cmd rc=0 expected_rc=0 start_ns end_ns
  case "$tool" in
    copy)
      # An empty target table and no cursor: the one window is due again (untimed).
      gp_sql bdst -c "TRUNCATE $copy_dest" -c "DELETE FROM $copy_state.cursors" -c "CHECKPOINT" 2>/dev/null ||
        gp_sql bdst -c "TRUNCATE $copy_dest" -c "CHECKPOINT"
      cmd=("$bin" --config "$bench_dir/copy.toml" -q run --until "$next_day 00:00:00")
      ;;
    compare | baseline)
      expected_rc=3 # differences found
      local which=$compare_bin
      [ "$tool" = compare ] || which=$baseline_bin
      cmd=("$which" --config "$bench_dir/compare.toml" -q compare --from "$day 00:00:00" --to "$next_day 00:00:00"
        --show 1000 --output json)
      ;;
  esac
  local load_before
  load_before=$(load_average)
  start_ns=$(date +%s%N)
  timeout "$run_timeout" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != "$expected_rc" ]; then
    printf '\n%s exited %s, expected %s\n' "$tool" "$rc" "$expected_rc" >&2
    tail -n 40 "$err" "$out" >&2
    die "$tool failed"
  fi
  local found="-"
  case "$tool" in
    copy)
      local got
      got=$(gp_sql bdst -At -c "SELECT count(*) FROM $copy_dest")
      [ "$got" = "$rows" ] || die "the copy left $got rows, expected $rows"
      gp_sql bdst -c "CHECKPOINT"
      ;;
    compare | baseline)
      compare_keys "$out" >"$bench_dir/compare.keys" 2>"$bench_dir/compare.levels" || die "cannot read $out"
      cmp -s "$bench_dir/compare.keys" "$bench_dir/expected.keys" ||
        die "compare named $(paste -sd ' ' "$bench_dir/compare.keys"), expected $(paste -sd ' ' "$bench_dir/expected.keys")"
      found="$(grep -c . "$bench_dir/compare.keys") keys, the damaged ones"
      ;;
  esac
  local secs label="run $run/$runs"
  secs=$(seconds_between "$start_ns" "$end_ns")
  if [ "$run" = 0 ]; then label="warm-up"; else printf '%s %s %s\n' "$tool" "$run" "$secs" >>"$results"; fi
  printf '  %-8s %-8s %7.2f s  %s  (load %s → %s)\n' "$tool" "$label" "$secs" "$found" "$load_before" "$(load_average)"
}

command -v python3 >/dev/null 2>&1 || die "python3 is missing"
psql=$(find_psql)
bench_start_ns=$(date +%s%N)

section "build"
if [ "${SKIP_BUILD:-0}" = 1 ]; then echo "skipped (SKIP_BUILD=1)"; else cargo build --release; fi
[ -x "$bin" ] || die "no binary at $bin"
echo "$("$bin" --version) at $bin; compare: $compare_bin${baseline_bin:+; baseline: $baseline_bin}"

section "GP6 cluster under $gp_dir ($segments segments)"
mkdir -p "$bench_dir"
scripts/gp-server.sh stop gp6 "$gp_dir"
rm -rf "$gp_dir"
trap cleanup EXIT
port=$(free_port "${PORT:-56400}")
scripts/gp-server.sh start gp6 "$gp_dir" "$port" "$password" "$segments"
gp_sql postgres -c "CREATE DATABASE bsrc" -c "CREATE DATABASE bdst"
echo "master 127.0.0.1:$port, $(nproc) cores, $(gp_sql postgres -At -c 'SELECT version()' | cut -c1-60)…"
write_config "$bench_dir/compare.toml" "$compare_state" "$table"
write_config "$bench_dir/copy.toml" "$copy_state" "$copy_dest"
results=$bench_dir/results.txt
: >"$results"

section "$rows rows: generate the source, fill and damage the target (untimed)"
gen_start=$(date +%s%N)
gp_sql bsrc -f scripts/sql/bench-compare-table.sql
gp_sql bsrc -v rows="$rows" -v day="$day" -f scripts/sql/bench-compare-generate.sql
gp_sql bsrc -f scripts/sql/bench-compare-indexes.sql -c "VACUUM ANALYZE $table"
gp_sql bdst -f scripts/sql/bench-compare-table.sql -f scripts/sql/bench-compare-indexes.sql
# Floats in full: 9.4 prints 15 digits unless told otherwise, and a COPY of a whole table
# formats rows on the segments, which do not see the setting; a query is formatted on the master.
PGOPTIONS='-c extra_float_digits=3' "$psql" -h 127.0.0.1 -p "$port" -U gpadmin -d bsrc -X -q -v ON_ERROR_STOP=1 \
  -c "\\copy (SELECT * FROM $table) to stdout" | gp_sql bdst -c "\\copy $table from stdin"
gp_sql bdst -c "CREATE TABLE $copy_dest (LIKE $table INCLUDING ALL)"
gp_sql bdst -At -v rows="$rows" -f scripts/sql/bench-compare-damage.sql | grep -E '^[0-9]+$' >"$bench_dir/expected.keys"
[ "$(grep -c . "$bench_dir/expected.keys")" = 6 ] || die "the damage script did not name 6 ids"
gp_sql bdst -c "VACUUM ANALYZE $table" -c "CHECKPOINT"
gp_sql bsrc -c "CHECKPOINT"
echo "ready in $(seconds_between "$gen_start" "$(date +%s%N)") s; per segment:" \
  "$(gp_sql bsrc -At -F ' ' -c "SELECT gp_segment_id, count(*) FROM $table GROUP BY 1 ORDER BY 1" | paste -sd ';')"
echo "damaged ids: $(paste -sd ' ' "$bench_dir/expected.keys")"

if [ "${EXPLAIN:-0}" = 1 ]; then
  section "EXPLAIN ANALYZE of the statements compare sends (source side)"
  gp_sql bsrc -c "ALTER DATABASE bsrc SET log_statement = 'all'"
  "$compare_bin" --config "$bench_dir/compare.toml" -q compare --from "$day 00:00:00" --to "$next_day 00:00:00" >/dev/null || true
  gp_sql bsrc -c "ALTER DATABASE bsrc RESET log_statement"
  # Every statement that reads the table (the window level, then the key listing), one per line.
  python3 - "$gp_dir/master/gpseg-1/pg_log" >"$bench_dir/statements.sql" <<'PY'
import csv, glob, re, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.csv")):
    for r in csv.reader(open(f, encoding="utf-8", errors="replace")):
        if len(r) > 18 and r[2] == "bsrc" and r[18].startswith("execute") and "md5(" in r[18]:
            print(re.sub(r"^execute [^:]*: ", "", r[18]).replace("\n", " "))
PY
  [ -s "$bench_dir/statements.sql" ] || die "no compare statement in the master's log"
  while IFS= read -r statement; do
    printf '\n%s…\n' "$(printf '%s' "$statement" | cut -c1-150)"
    gp_sql bsrc -c "SET DateStyle = 'ISO, MDY'" -c "EXPLAIN ANALYZE $statement" | cut -c1-200
  done <"$bench_dir/statements.sql"
fi

section "copy and compare ($runs rounds, alternating order)"
if [ "$warmup" = 1 ]; then
  for tool in "${tools[@]}"; do measure "$tool" 0; done
fi
for run in $(seq 1 "$runs"); do
  # A rotating order: each tool runs first, second… in turn.
  n=${#tools[@]}
  for i in $(seq 0 $((n - 1))); do measure "${tools[$(((run - 1 + i) % n))]}" "$run"; done
done
echo "compare's drill-down (last run):"
cat "$bench_dir/compare.levels"

section "results ($rows rows, median of $runs runs)"
declare -A secs_of
for tool in "${tools[@]}"; do
  mapfile -t s < <(awk -v t="$tool" '$1 == t { print $3 }' "$results")
  secs_of[$tool]=$(median "${s[@]}")
  printf '  %-8s %7.2f s   (runs: %s)\n' "$tool" "${secs_of[$tool]}" "${s[*]}"
done
r=$(ratio "${secs_of[compare]}" "${secs_of[copy]}")
ok=$(awk -v x="$r" 'BEGIN { print (x < 0.5) ? "ok" : "MISSED" }')
printf '  compare / copy  %s   (target < 0.5)  %s\n' "$r" "$ok"
[ -z "$baseline_bin" ] ||
  printf '  baseline / copy %s   (%s)\n' "$(ratio "${secs_of[baseline]}" "${secs_of[copy]}")" "$baseline_bin"
echo "compare named exactly the 6 damaged ids: $(paste -sd ' ' "$bench_dir/expected.keys")"
echo "whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
[ "$ok" = ok ] || [ "${STRICT:-0}" != 1 ] || exit 1
