#!/usr/bin/env bash
# The benchmark of SPEC §9: one table, one stream, against the plain psql pipe and against the
# target's own ingest limit, at two table sizes (to see memory stay flat).
#
#   scripts/bench.sh                      # 1M rows, then 4M rows; 3 runs per variant
#   ROWS=200000 RUNS=1 scripts/bench.sh   # a quick smoke run
#
# On the same generated table (eda.wpp_fdefect_f_n: 11 columns of text, integers, floats,
# numerics, timestamps; primary key and an index on the condition column, on both sides):
#   gptransfer  `gptransfer run` moving the whole table as ONE window (duration 1d) into the
#               empty target table (MODE=append by default)
#   pipe        psql -c "\copy (SELECT …) to stdout" | psql -c "\copy t from stdin", same SELECT
#   ingest-text the target's own server-side `COPY t FROM '/file'` of a pre-dumped file (the
#               ingest limit: no source, no network, no client), in COPY text format, as the
#               pipe carries it
#   ingest-bin  the same with a `COPY … WITH BINARY` dump: the limit for gptransfer, which moves
#               PostgreSQL-to-PostgreSQL data in binary COPY format (about 20% cheaper to ingest)
# Between runs the target table is truncated, gptransfer's state schema dropped (so the window
# is due again) and a CHECKPOINT taken. After one uncounted warm-up run per size, each variant
# runs RUNS times, interleaved in a rotating order. Reported: the median wall time, and the
# peak RSS (/usr/bin/time -v) of the largest process of the measured command (for gptransfer:
# the gptransfer process itself; for the pipe: the larger psql).
#
# Environment (all optional):
#   ROWS=1000000  base size; the second size is 4x    RUNS=3   runs per variant
#   SIZES="…"     explicit list of sizes instead       MODE=append|replace
#   VARIANTS="gptransfer pipe ingest-text ingest-bin"  RUN_TIMEOUT=900 (s, per measured run)
#   BENCH_DIR=/tmp/gptransfer-bench                    SKIP_BUILD=1
#   STRICT=1      exit 1 when a target of §9 is missed
# Clusters are stopped and the dump files removed at exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

base_rows=${ROWS:-1000000}
sizes=${SIZES:-"$base_rows $((base_rows * 4))"}
runs=${RUNS:-3}
variants=${VARIANTS:-"gptransfer pipe ingest-text ingest-bin"}
mode=${MODE:-append}
run_timeout=${RUN_TIMEOUT:-900}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench}
src_dir=$bench_dir/src
dst_dir=$bench_dir/dst
db=bench
day="2024-01-01"
next_day="2024-01-02"
table=eda.wpp_fdefect_f_n
state_schema=gptransfer
config=$bench_dir/bench.toml
# Dumps of the window, in a directory the postgres OS user owns: both servers use them.
dump_text=$src_dir/window.copy
dump_bin=$src_dir/window.bin
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
columns="glass_id, defect_seq, site, defect_code, evt_timestamp, x, y, size, judge, comment, load_time"
# The same SELECT as gptransfer's copy source sends for the window.
quoted_columns=$(sed -E 's/([a-z_]+)/"\1"/g' <<<"$columns")
select_sql="SELECT $quoted_columns FROM \"eda\".\"wpp_fdefect_f_n\" WHERE \"evt_timestamp\" >= '$day 00:00:00'::timestamp AND \"evt_timestamp\" < '$next_day 00:00:00'::timestamp"

export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-bench-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-bench-secret}

section() { printf '\n==== %s ====\n' "$*"; }

src_sql() { su_psql "$src_dir" "$src_port" -d "$db" "$@"; }
dst_sql() { su_psql "$dst_dir" "$dst_port" -d "$db" "$@"; }

cleanup() {
  local rc=$?
  rm -f "$dump_text" "$dump_bin"
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$dst_dir" || true
  exit "$rc"
}

max_rss_kb() {
  awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"
}

# User + system CPU seconds of the measured command's processes (not of the servers).
client_cpu_seconds() {
  awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$1"
}

reset_target() {
  dst_sql -c "TRUNCATE $table" -c "DROP SCHEMA IF EXISTS $state_schema CASCADE" -c "CHECKPOINT"
}

# measure VARIANT ROWS RUN: runs one variant once; appends "rows variant run seconds rss_kb
# cpu_seconds" to $results, unless RUN is 0 (a warm-up, not counted).
measure() {
  local variant=$1 n=$2 run=$3
  local timefile=$bench_dir/time.txt log=$bench_dir/$variant.log cmd start_ns end_ns rc=0
  reset_target
  case "$variant" in
    gptransfer) cmd=("$bin" --config "$config" run --job bench) ;;
    pipe) cmd=(bash -c pipe_copy) ;;
    ingest-text) cmd=("$psql" -h "$dst_dir" -p "$dst_port" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1
      -c "COPY $table ($columns) FROM '$dump_text'") ;;
    ingest-bin) cmd=("$psql" -h "$dst_dir" -p "$dst_port" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1
      -c "COPY $table ($columns) FROM '$dump_bin' WITH BINARY") ;;
    *) die "unknown variant $variant (VARIANTS may hold gptransfer, pipe, ingest-text, ingest-bin)" ;;
  esac
  start_ns=$(date +%s%N)
  /usr/bin/time -v -o "$timefile" timeout "$run_timeout" "${cmd[@]}" >"$log" 2>&1 || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != 0 ]; then
    printf '\n%s failed (exit %s): %s\n--- last lines of its output ---\n' "$variant" "$rc" "${cmd[*]}" >&2
    tail -n 40 "$log" >&2
    die "$variant failed"
  fi
  local got
  got=$(dst_sql -At -c "SELECT count(*) FROM $table")
  [ "$got" = "$n" ] || { tail -n 40 "$log" >&2; die "$variant left $got rows on the target, expected $n"; }
  local secs rss cpu
  secs=$(seconds_between "$start_ns" "$end_ns")
  rss=$(max_rss_kb "$timefile")
  cpu=$(client_cpu_seconds "$timefile")
  local label="run $run/$runs"
  if [ "$run" = 0 ]; then
    label="warm-up"
  else
    printf '%s %s %s %s %s %s\n' "$n" "$variant" "$run" "$secs" "$rss" "$cpu" >>"$results"
  fi
  printf '  %-11s rows=%-9s %-8s %7.2f s  peak RSS %6.1f MB  client CPU %6.2f s  (load %s)\n' \
    "$variant" "$n" "$label" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$cpu" "$(load_average)"
}

write_config() {
  cat >"$config" <<TOML
# Written by scripts/bench.sh: the whole generated day is ONE window.
[clusters.src]
url = "$SRC_URL"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "$DST_URL"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"
schema = "$state_schema"

[jobs.bench]
from = "src"
to = "dst"
start = "$day 00:00:00"
duration = "1d"
lag = "0s"

[[jobs.bench.tables]]
table = "$table"
condition_column = "evt_timestamp"
final_end = "$next_day 00:00:00"
mode = "$mode"
key = ["glass_id", "defect_seq"]
TOML
}

[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
psql=$(find_psql)
bench_start_ns=$(date +%s%N)

if [[ " $variants " == *" gptransfer "* ]]; then
  section "build"
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    echo "skipped (SKIP_BUILD=1)"
  else
    cargo build --release
  fi
  [ -x "$bin" ] || die "no binary at $bin"
  echo "$("$bin" --version) at $bin"
fi

warn_if_loaded

section "clusters under $bench_dir"
mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
# Two benchmarks at once would stop each other's clusters (and skew each other's figures).
exec 9>"$bench_dir/.lock"
flock -n 9 || die "another scripts/bench.sh is running with $bench_dir (lock $bench_dir/.lock)"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$dst_dir"
trap cleanup EXIT
src_port=$(free_port 55532)
dst_port=$(free_port 55533 "$src_port")
bench_server "$src_dir" "$src_port" "$GPT_SRC_PASSWORD" "$db"
bench_server "$dst_dir" "$dst_port" "$GPT_DST_PASSWORD" "$db"
echo "source 127.0.0.1:$src_port, target 127.0.0.1:$dst_port, $(nproc) cores, $("$psql" --version)"

export PSQL=$psql SELECT_SQL=$select_sql TABLE=$table
export SRC_URL="postgres://gpt@127.0.0.1:$src_port/$db"
export DST_URL="postgres://gpt@127.0.0.1:$dst_port/$db"
export -f pipe_copy
write_config

results=$bench_dir/results.txt
: >"$results"
declare -A bytes_of

for n in $sizes; do
  section "$n rows: generate"
  gen_start=$(date +%s%N)
  src_sql -f scripts/sql/create_table.sql
  src_sql -v rows="$n" -v day="$day" -f scripts/sql/generate.sql
  src_sql -f scripts/sql/add_indexes.sql
  src_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
  dst_sql -f scripts/sql/create_table.sql -f scripts/sql/add_indexes.sql
  rm -f "$dump_text" "$dump_bin"
  src_sql -c "COPY ($select_sql) TO '$dump_text'" -c "COPY ($select_sql) TO '$dump_bin' WITH BINARY"
  bytes_of[$n]=$(stat -c %s "$dump_text")
  echo "generated and dumped in $(seconds_between "$gen_start" "$(date +%s%N)") s:" \
    "$n rows, ${bytes_of[$n]} bytes of COPY text ($((bytes_of[$n] / n)) bytes/row)," \
    "$(stat -c %s "$dump_bin") bytes of binary COPY," \
    "source table $(src_sql -At -c "SELECT pg_size_pretty(pg_total_relation_size('$table'))")"

  section "$n rows: $runs runs of: $variants"
  read -r -a order <<<"$variants"
  # One uncounted run first: the first big load into a fresh cluster also creates its WAL
  # segment files and is markedly slower, whichever variant it is.
  measure "${order[${#order[@]} - 1]}" "$n" 0
  for run in $(seq 1 "$runs"); do
    for ((i = 0; i < ${#order[@]}; i++)); do
      measure "${order[$(((i + run - 1) % ${#order[@]}))]}" "$n" "$run"
    done
  done
done

section "results (median of $runs runs; MB = 10^6 bytes of COPY text; peak RSS of the largest client process; client CPU = user + system s of the client processes)"
declare -A secs_of rss_of cpu_of
for n in $sizes; do
  for v in $variants; do
    mapfile -t s < <(awk -v n="$n" -v v="$v" '$1 == n && $2 == v { print $4 }' "$results")
    mapfile -t r < <(awk -v n="$n" -v v="$v" '$1 == n && $2 == v { print $5 }' "$results")
    secs_of[$n,$v]=$(median "${s[@]}")
    rss_of[$n,$v]=$(median "${r[@]}")
    mapfile -t c < <(awk -v n="$n" -v v="$v" '$1 == n && $2 == v { print $6 }' "$results")
    cpu_of[$n,$v]=$(median "${c[@]}")
  done
done
printf '%-11s %9s %8s %8s %10s %9s %11s\n' variant rows seconds "MB/s" "rows/s" "peak RSS" "client CPU"
for n in $sizes; do
  for v in $variants; do
    awk -v v="$v" -v n="$n" -v s="${secs_of[$n,$v]}" -v b="${bytes_of[$n]}" -v r="${rss_of[$n,$v]}" \
      -v c="${cpu_of[$n,$v]}" 'BEGIN {
      printf "%-11s %9d %8.2f %8.1f %10.0f %6.1f MB %9.2f s\n", v, n, s, b / s / 1e6, n / s, r / 1024, c }'
  done
done

verdict=0
check() { # check LABEL VALUE OP LIMIT
  local ok
  ok=$(awk -v x="$2" -v l="$4" -v op="$3" 'BEGIN { print ((op == ">=" && x >= l) || (op == "<=" && x <= l)) ? "ok" : "MISSED" }')
  printf '  %-62s %6.3f   (target %s %s)  %s\n' "$1" "$2" "$3" "$4" "$ok"
  [ "$ok" = ok ] || verdict=1
}

section "ratios"
if [[ " $variants " == *" gptransfer "* ]]; then
  for n in $sizes; do
    if [[ " $variants " == *" pipe "* ]]; then
      check "rows=$n gptransfer throughput / pipe throughput" \
        "$(ratio "${secs_of[$n,pipe]}" "${secs_of[$n,gptransfer]}")" ">=" 0.95
    fi
    for v in ingest-text ingest-bin; do
      if [[ " $variants " == *" $v "* ]]; then
        check "rows=$n gptransfer time / $v time" \
          "$(ratio "${secs_of[$n,gptransfer]}" "${secs_of[$n,$v]}")" "<=" 1.15
      fi
    done
  done
  read -r -a size_list <<<"$sizes"
  if [ "${#size_list[@]}" -ge 2 ]; then
    first=${size_list[0]} last=${size_list[${#size_list[@]} - 1]}
    # Flat: the whole window is 4x larger; a buffered window would grow RSS by hundreds of MB.
    # Peak RSS of the same run varies by 1-2 MB around ~20 MB, hence 1.25 rather than 1.0.
    check "gptransfer peak RSS, $first -> $last rows: $(awk -v a="${rss_of[$first,gptransfer]}" \
      -v b="${rss_of[$last,gptransfer]}" 'BEGIN { printf "%.1f -> %.1f MB", a / 1024, b / 1024 }')" \
      "$(ratio "${rss_of[$last,gptransfer]}" "${rss_of[$first,gptransfer]}")" "<=" 1.25
  fi
fi
echo "per-run figures: $results; whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
if [ "$verdict" != 0 ] && [ "${STRICT:-0}" = 1 ]; then
  exit 1
fi
