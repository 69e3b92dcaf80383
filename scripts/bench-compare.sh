#!/usr/bin/env bash
# The compare benchmark of issue 3: on a table of ROWS rows (default 1M) whose target copy has
# exactly 6 differences (3 rows deleted, 2 changed — one only in a float column, one only in a
# Chinese text column — and 1 inserted), the time of
#   gptransfer  `gptransfer compare --output json` (hash comparator, key = ["id"], the whole
#               generated day as ONE window by default), against
#   reladiff    reladiff (installed from PyPI into a venv), hashdiff across the two databases
#               (checksums in each database, bisecting on id), comparing every column, and
#   copy        copying the table: psql -c "\copy t to stdout" | psql -c "\copy t_copy from stdin"
#               into an empty table of the same definition on the target cluster (primary key
#               and index in place; `t` itself is filled the same way, once, before it is
#               damaged).
# Prints seconds and the differing keys each tool found, the ratios gptransfer/reladiff
# (target < 1) and gptransfer/copy (target < 0.5), and whether both tools name exactly the
# same keys (and the 6 that were damaged). Exits 1 when they do not.
#
#   scripts/bench-compare.sh                     # 1M rows, 3 runs of each tool
#   ROWS=100000 RUNS=1 scripts/bench-compare.sh  # a quick smoke run
#
# Both tools talk to both clusters over TCP with password authentication, as role gpt. After one
# uncounted warm-up round (it also creates gptransfer's state schema, where compare writes its
# alarms), the three run RUNS rounds, each round all three one after the other in a rotating
# order, so that the copy and the compares see the same load on a shared machine (copies first,
# compares later made the ratio depend on how busy the machine was in each phase); medians are
# reported. Every copy is followed by an untimed CHECKPOINT, so no tool pays for another's
# dirty buffers.
#
# Environment (all optional):
#   ROWS=1000000        rows generated on the source (ids 1..ROWS over one day)
#   RUNS=3              measured runs per tool           WARMUP=1   uncounted warm-up round
#   DURATION=1d         gptransfer window length (1h: 24 windows, compared one after another)
#   COMPARE_OPTIONS=…   extra options of the hash comparator, TOML, e.g. 'slices = 96' or
#                       'group_by = "site"'
#   RELADIFF_VERSION=0.6.0 (empty: latest)            RELADIFF_THREADS=1 (reladiff -j)
#   BENCH_DIR=/tmp/gptransfer-bench-compare          RUN_TIMEOUT=900 (s, per measured run)
#   SKIP_BUILD=1        do not run cargo build --release
#   STRICT=1            also exit 1 when a time target is missed
# Clusters are stopped at exit; the venv under BENCH_DIR is kept for the next run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-1000000}
runs=${RUNS:-3}
warmup=${WARMUP:-1}
duration=${DURATION:-1d}
compare_options=${COMPARE_OPTIONS:-}
reladiff_version=${RELADIFF_VERSION-0.6.0}
reladiff_threads=${RELADIFF_THREADS:-1}
run_timeout=${RUN_TIMEOUT:-900}
bench_dir=${BENCH_DIR:-/tmp/gptransfer-bench-compare}
src_dir=$bench_dir/src
dst_dir=$bench_dir/dst
venv=$bench_dir/venv
db=bench
day="2024-01-01"
next_day="2024-01-02"
table=eda.bench_compare
# The measured copies go here (same definition), so they can alternate with the compares.
copy_dest=eda.bench_compare_copy
state_schema=gptransfer_bench_compare
config=$bench_dir/bench-compare.toml
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}
# Every column but the key, for reladiff's -c (it always includes the key).
columns=(glass_id site defect_code evt_timestamp x y size judge comment load_time)

export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-bench-compare-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-bench-compare-secret}

section() { printf '\n==== %s ====\n' "$*"; }

src_sql() { su_psql "$src_dir" "$src_port" -d "$db" "$@"; }
dst_sql() { su_psql "$dst_dir" "$dst_port" -d "$db" "$@"; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$dst_dir" || true
  exit "$rc"
}

# reladiff from PyPI into a venv of its own (the system Python stays untouched).
install_reladiff() {
  local spec="reladiff[postgresql]${reladiff_version:+==$reladiff_version}"
  if [ -x "$venv/bin/reladiff" ] &&
    { [ -z "$reladiff_version" ] || "$venv/bin/reladiff" --version 2>/dev/null | grep -qF "v$reladiff_version"; }; then
    echo "reuse $("$venv/bin/reladiff" --version 2>/dev/null | head -n 1) in $venv"
    return
  fi
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv for `-m venv`.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv)"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec" || die "pip install $spec failed"
  echo "installed $("$venv/bin/reladiff" --version 2>/dev/null | head -n 1) in $venv"
}

# The copy variant, run by `bash -c` (hence exported): the whole table through two psql.
# shellcheck disable=SC2317  # called by `bash -c copy_table`
copy_table() {
  set -euo pipefail
  PGPASSWORD=$GPT_SRC_PASSWORD "$PSQL" "$SRC_URL" -X -q -v ON_ERROR_STOP=1 \
    -c "\\copy $TABLE to stdout" |
    PGPASSWORD=$GPT_DST_PASSWORD "$PSQL" "$DST_URL" -X -q -v ON_ERROR_STOP=1 \
      -c "\\copy ${COPY_TO:-$TABLE} from stdin"
}

write_config() {
  local options=""
  [ -z "$compare_options" ] || options=", $compare_options"
  cat >"$config" <<TOML
# Written by scripts/bench-compare.sh: compare only, no transfer; the whole day is compared.
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
duration = "$duration"
lag = "0s"

[[jobs.bench.tables]]
table = "$table"
condition_column = "evt_timestamp"
key = ["id"]
compare = { plugin = "hash"$options }
TOML
}

# Differing ids in gptransfer's JSON report: "key": "id=123" of every window, one per line.
gptransfer_keys() {
  "$venv/bin/python" - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
keys = set()
for w in report["windows"]:
    if w.get("error"):
        sys.exit("window %s: %s" % (w["window"], w["error"]))
    shown = w["differences"]
    if len(shown) != w["total_differences"]:
        sys.exit("window %s: %d differences shown of %d (raise --show)" % (w["window"], len(shown), w["total_differences"]))
    for d in shown:
        assert d["key"].startswith("id="), d
        keys.add(int(d["key"][3:]))
print("\n".join(str(k) for k in sorted(keys)))
PY
}

# gptransfer's drill-down, from the same report: the levels of each differing window.
gptransfer_levels() {
  "$venv/bin/python" - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
for w in report["windows"]:
    levels = ", ".join("%s %d/%d" % (l["level"], l["differing"], l["buckets"]) for l in w["levels"])
    kinds = {}
    for d in w["differences"]:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    if not w["equal"]:
        print("  window %s: source %d rows, target %d rows; differing/compared buckets: %s; %s" % (
            w["window"], w["source_count"], w["target_count"], levels,
            ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))))
PY
}

# Differing ids in reladiff's --json output: one ["+"|"-", [id, col, …]] per line; a changed
# row is a "-" and a "+" of the same id.
reladiff_keys() {
  "$venv/bin/python" - "$1" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
decoder, pos, keys = json.JSONDecoder(), 0, set()
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    (sign, row), pos = decoder.raw_decode(text, pos)
    assert sign in "+-", sign
    keys.add(int(row[0]))
print("\n".join(str(k) for k in sorted(keys)))
PY
}

# measure TOOL RUN: runs one tool once; appends "tool run seconds" to $results unless RUN is 0
# (a warm-up, not counted); leaves the differing ids in $bench_dir/TOOL.keys.
measure() {
  local tool=$1 run=$2
  local out=$bench_dir/$tool.out err=$bench_dir/$tool.err keys=$bench_dir/$tool.keys
  local cmd start_ns end_ns rc=0 expected_rc=0
  case "$tool" in
    copy)
      dst_sql -c "TRUNCATE $copy_dest" -c "CHECKPOINT"
      cmd=(env COPY_TO="$copy_dest" bash -c copy_table)
      ;;
    gptransfer)
      # Exit 3: differences found, which is what this benchmark expects.
      expected_rc=3
      cmd=("$bin" --config "$config" -q compare --from "$day 00:00:00" --to "$next_day 00:00:00"
        --show 1000 --output json)
      ;;
    reladiff)
      cmd=(env COLUMNS=100000 "$venv/bin/reladiff"
        "postgresql://gpt:$GPT_SRC_PASSWORD@127.0.0.1:$src_port/$db" "$table"
        "postgresql://gpt:$GPT_DST_PASSWORD@127.0.0.1:$dst_port/$db" "$table"
        -k id "${reladiff_columns[@]}" --algorithm hashdiff -j "$reladiff_threads" --json)
      ;;
    *) die "unknown tool $tool" ;;
  esac
  start_ns=$(date +%s%N)
  timeout "$run_timeout" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
  end_ns=$(date +%s%N)
  if [ "$rc" != "$expected_rc" ]; then
    printf '\n%s exited %s, expected %s\n--- last lines of its stderr ---\n' "$tool" "$rc" "$expected_rc" >&2
    tail -n 40 "$err" >&2
    die "$tool failed"
  fi
  case "$tool" in
    copy)
      local got
      got=$(dst_sql -At -c "SELECT count(*) FROM $copy_dest")
      [ "$got" = "$rows" ] || die "the copy left $got rows on the target, expected $rows"
      dst_sql -c "CHECKPOINT"
      : >"$keys"
      ;;
    gptransfer) gptransfer_keys "$out" >"$keys" || die "cannot read gptransfer's report $out" ;;
    reladiff) reladiff_keys "$out" >"$keys" || die "cannot read reladiff's output $out" ;;
  esac
  local secs label="run $run/$runs"
  secs=$(seconds_between "$start_ns" "$end_ns")
  if [ "$run" = 0 ]; then
    label="warm-up"
  else
    printf '%s %s %s\n' "$tool" "$run" "$secs" >>"$results"
    # Every measured run must find the same keys as the first one.
    if [ -f "$keys.first" ]; then
      cmp -s "$keys" "$keys.first" || die "$tool run $run found other keys than its first run"
    else
      cp "$keys" "$keys.first"
    fi
  fi
  printf '  %-10s %-8s %7.2f s  %s differing keys  (load %s)\n' \
    "$tool" "$label" "$secs" "$(grep -c . "$keys" || true)" "$(load_average)"
}

command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is missing"
command -v python3 >/dev/null 2>&1 || die "python3 is missing (apt-get install python3 python3-venv)"
psql=$(find_psql)
bench_start_ns=$(date +%s%N)

section "build"
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  echo "skipped (SKIP_BUILD=1)"
else
  cargo build --release
fi
[ -x "$bin" ] || die "no binary at $bin"
echo "$("$bin" --version) at $bin"

section "reladiff"
mkdir -p "$bench_dir"
chmod 755 "$bench_dir"
install_reladiff
reladiff_columns=()
for c in "${columns[@]}"; do reladiff_columns+=(-c "$c"); done

section "clusters under $bench_dir"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$dst_dir"
trap cleanup EXIT
src_port=$(free_port 55632)
dst_port=$(free_port $((src_port + 1)) "$src_port")
bench_server "$src_dir" "$src_port" "$GPT_SRC_PASSWORD" "$db"
bench_server "$dst_dir" "$dst_port" "$GPT_DST_PASSWORD" "$db"
echo "source 127.0.0.1:$src_port, target 127.0.0.1:$dst_port, $(nproc) cores, $("$psql" --version)"

export PSQL=$psql TABLE=$table
export SRC_URL="postgres://gpt@127.0.0.1:$src_port/$db"
export DST_URL="postgres://gpt@127.0.0.1:$dst_port/$db"
export -f copy_table
write_config
results=$bench_dir/results.txt
: >"$results"
rm -f "$bench_dir"/*.keys "$bench_dir"/*.keys.first

section "$rows rows: generate the source, create the target"
gen_start=$(date +%s%N)
src_sql -f scripts/sql/bench-compare-table.sql
src_sql -v rows="$rows" -v day="$day" -f scripts/sql/bench-compare-generate.sql
src_sql -f scripts/sql/bench-compare-indexes.sql
src_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
dst_sql -f scripts/sql/bench-compare-table.sql -f scripts/sql/bench-compare-indexes.sql
echo "generated in $(seconds_between "$gen_start" "$(date +%s%N)") s: $rows rows," \
  "source table $(src_sql -At -c "SELECT pg_size_pretty(pg_total_relation_size('$table'))")"

section "fill the target table the same way (untimed)"
fill_start=$(date +%s%N)
env COPY_TO="$table" bash -c copy_table
dst_sql -c "VACUUM (FREEZE, ANALYZE) $table" -c "CHECKPOINT"
echo "filled $table in $(seconds_between "$fill_start" "$(date +%s%N)") s"
dst_sql -c "CREATE TABLE $copy_dest (LIKE $table INCLUDING ALL)"

section "damage the target: 3 deleted, 2 changed, 1 inserted"
dst_sql -At -v rows="$rows" -f scripts/sql/bench-compare-damage.sql >"$bench_dir/expected.keys"
dst_sql -c "VACUUM ANALYZE $table" -c "CHECKPOINT"
src_sql -c "CHECKPOINT"
echo "damaged ids: $(paste -sd ' ' "$bench_dir/expected.keys")"
[ "$(grep -c . "$bench_dir/expected.keys")" = 6 ] || die "the damage script did not name 6 ids"

section "copy and compare ($runs rounds of the three, in a rotating order)"
if [ "$warmup" = 1 ]; then
  measure copy 0
  measure gptransfer 0
  measure reladiff 0
fi
tools=(copy gptransfer reladiff)
for run in $(seq 1 "$runs"); do
  order=()
  for i in 0 1 2; do order+=("${tools[$(((run - 1 + i) % 3))]}"); done
  for tool in "${order[@]}"; do
    measure "$tool" "$run"
  done
done
echo "gptransfer's drill-down (last run):"
gptransfer_levels "$bench_dir/gptransfer.out"

section "results ($rows rows, median of $runs runs)"
declare -A secs_of
for tool in copy gptransfer reladiff; do
  mapfile -t s < <(awk -v t="$tool" '$1 == t { print $3 }' "$results")
  secs_of[$tool]=$(median "${s[@]}")
done
printf '%-11s %8s %6s  %s\n' tool seconds keys "differing keys found"
printf '%-11s %8.2f %6s  %s\n' copy "${secs_of[copy]}" - "($rows rows copied)"
for tool in gptransfer reladiff; do
  printf '%-11s %8.2f %6s  %s\n' "$tool" "${secs_of[$tool]}" "$(grep -c . "$bench_dir/$tool.keys" || true)" \
    "$(paste -sd ' ' "$bench_dir/$tool.keys")"
done

verdict=0
check() { # check LABEL VALUE LIMIT: VALUE < LIMIT
  local ok
  ok=$(awk -v x="$2" -v l="$3" 'BEGIN { print (x < l) ? "ok" : "MISSED" }')
  printf '  %-30s %7.3f   (target < %s)  %s\n' "$1" "$2" "$3" "$ok"
  [ "$ok" = ok ] || verdict=1
}
section "ratios"
check "gptransfer / reladiff time" "$(ratio "${secs_of[gptransfer]}" "${secs_of[reladiff]}")" 1
check "gptransfer / copy time" "$(ratio "${secs_of[gptransfer]}" "${secs_of[copy]}")" 0.5
agree=no
cmp -s "$bench_dir/gptransfer.keys" "$bench_dir/reladiff.keys" && agree=yes
echo "keys agree: $agree"
status=0
[ "$agree" = yes ] || status=1
for tool in gptransfer reladiff; do
  if ! cmp -s "$bench_dir/$tool.keys" "$bench_dir/expected.keys"; then
    echo "$tool does not name exactly the 6 damaged ids ($(paste -sd ' ' "$bench_dir/expected.keys"))"
    status=1
  fi
done
echo "per-run figures: $results; whole benchmark took $(seconds_between "$bench_start_ns" "$(date +%s%N)") s"
if [ "$verdict" != 0 ] && [ "${STRICT:-0}" = 1 ]; then
  status=1
fi
exit "$status"
