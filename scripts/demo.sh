#!/usr/bin/env bash
# The README's "run the main job on a local default": two throw-away PostgreSQL clusters
# (source and target), a sample display-panel defect fact table on the source, the same empty
# table on the target, then `gptransfer config check`, `plan`, `run`, `history`; then `compare`
# (equal), three rows broken on the target, `compare` naming them, `alarm check`, `compare
# --repair`; and last a row count plus an ordered md5 of the whole table on both sides to show
# that they are equal.
#
#   scripts/demo.sh
#
# Environment (all optional):
#   ROWS=240000          rows generated over 2024-01-01 (a multiple of 24 puts rows exactly on
#                        the hour boundaries, which exercises the half-open windows)
#   DEMO_DIR=/tmp/gptransfer-demo
#   DEMO_RESET=1         wipe the clusters' directories and initdb again
#   DEMO_STOP=1          stop both clusters at the end (by default they keep running, so that
#                        you can try more commands against them; the last lines say how)
#   DEMO_COMPARE=0       skip the compare / alarm / repair part
#   SKIP_SETUP=1 / SKIP_BUILD=1
#
# Re-running is safe: the clusters are stopped and started again (on free ports, 55432/55433
# unless taken), the demo databases are dropped and created again, configs/demo.toml is
# rewritten.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${ROWS:-240000}
demo_dir=${DEMO_DIR:-/tmp/gptransfer-demo}
src_dir=$demo_dir/src
dst_dir=$demo_dir/dst
db=qms
day="2024-01-01"
next_day="2024-01-02"
table=$sample_table
config=$root/configs/demo.toml
bin=${GPTRANSFER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gptransfer}

# Passwords of the TCP role `gpt` on each cluster; gptransfer reads them from these variables.
export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-demo-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-demo-secret}

step=0
bold='' plain=''
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
section() {
  step=$((step + 1))
  printf '\n%s==== %d. %s ====%s\n' "$bold" "$step" "$*" "$plain"
}

note() { printf '  %s\n' "$*"; }

# expect_exit CODE COMMAND…: runs the command, which must exit with CODE.
expect_exit() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  [ "$rc" = "$want" ] || die "expected exit $want, got $rc from: $*"
  note "(exit $rc, as expected)"
}

psql=$(find_psql)

section "Setup (scripts/setup.sh)"
if [ "${SKIP_SETUP:-0}" = 1 ]; then
  note "skipped (SKIP_SETUP=1)"
elif [ -f scripts/setup.sh ]; then
  bash scripts/setup.sh
else
  note "no scripts/setup.sh; assuming PostgreSQL and a Rust toolchain are installed"
fi
psql=$(find_psql)

section "Build the release binary"
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  note "skipped (SKIP_BUILD=1)"
else
  cargo build --release
fi
[ -x "$bin" ] || die "no binary at $bin"
note "binary: $bin"

section "Start two local clusters under $demo_dir"
mkdir -p "$demo_dir"
chmod 755 "$demo_dir"
exec 9>"$demo_dir/.lock"
flock -n 9 || die "another scripts/demo.sh is running with $demo_dir (lock $demo_dir/.lock)"
scripts/pg-cluster.sh stop "$src_dir"
scripts/pg-cluster.sh stop "$dst_dir"
if [ "${DEMO_RESET:-0}" = 1 ]; then
  note "DEMO_RESET=1: wiping $src_dir and $dst_dir"
  rm -rf "$src_dir" "$dst_dir"
fi
src_port=$(free_port 55432)
dst_port=$(free_port 55433 "$src_port")
start_cluster "$src_dir" "$src_port" "$GPT_SRC_PASSWORD"
start_cluster "$dst_dir" "$dst_port" "$GPT_DST_PASSWORD"
note "source: 127.0.0.1:$src_port  (socket dir $src_dir)"
note "target: 127.0.0.1:$dst_port  (socket dir $dst_dir)"

section "Sample data: $table, $rows rows over $day"
sample_load "$src_dir" "$src_port" "$dst_dir" "$dst_port" "$db" "$rows" "$day"
note "source rows per hour (first 3 of 24):"
su_psql "$src_dir" "$src_port" -d "$db" -c "
  SELECT date_trunc('hour', evt_timestamp) AS hour, count(*) AS rows,
         count(*) FILTER (WHERE comment IS NULL) AS null_comments
  FROM $table GROUP BY 1 ORDER BY 1 LIMIT 3"
note "a few source rows:"
su_psql "$src_dir" "$src_port" -d "$db" -c "
  SELECT glass_id, defect_seq, site, defect_code, evt_timestamp, size, judge, comment
  FROM $table ORDER BY glass_id, defect_seq LIMIT 6"
note "target table is empty: $(su_psql "$dst_dir" "$dst_port" -d "$db" -At -c "SELECT count(*) FROM $table") rows"

section "Config: $config"
{
  echo "# The demo job. Written by scripts/demo.sh (ports are the free ones it found); passwords come"
  echo "# from the environment variables it exports, never from this file."
  sample_config "$src_port" "$dst_port" "$db" "$day" "$next_day"
} >"$config"
cat "$config"
gpt=("$bin" --config "$config")

section "gptransfer config check"
"${gpt[@]}" config check

section "gptransfer plan"
"${gpt[@]}" plan

section "gptransfer run --job demo"
start_ns=$(date +%s%N)
"${gpt[@]}" run --job demo
end_ns=$(date +%s%N)
note "run took $(awk -v ns="$((end_ns - start_ns))" 'BEGIN { printf "%.2f", ns / 1e9 }') s"

section "gptransfer run --job demo again (nothing is due: a no-op)"
"${gpt[@]}" run --job demo

section "gptransfer history --limit 30"
"${gpt[@]}" history --limit 30

if [ "${DEMO_COMPARE:-1}" != 0 ]; then
  section "gptransfer compare --job demo (equal: exit 0)"
  expect_exit 0 "${gpt[@]}" compare --job demo

  section "Break three rows on the target"
  dst_break=(
    "DELETE FROM $table WHERE glass_id = 'AA000000000' AND defect_seq = 3"
    "UPDATE $table SET judge = '报废 (scrap)' WHERE glass_id = 'BA000000001' AND defect_seq = 2"
    "INSERT INTO $table SELECT 'ZZ999999999', 1, site, defect_code, evt_timestamp, x, y, size, judge,
       comment, load_time FROM $table WHERE evt_timestamp = '$day 06:00:00'"
  )
  for statement in "${dst_break[@]}"; do
    note "$statement"
    su_psql "$dst_dir" "$dst_port" -d "$db" -c "$statement"
  done

  section "gptransfer compare --job demo (differences: exit 3, keys named)"
  expect_exit 3 "${gpt[@]}" compare --job demo

  section "gptransfer alarm check --hours 72 (what a monitor polls: exit 3)"
  expect_exit 3 "${gpt[@]}" alarm check --hours 72

  section "gptransfer compare --job demo --repair (re-transfers the differing windows)"
  expect_exit 0 "${gpt[@]}" compare --job demo --repair

  section "gptransfer alarm check --hours 72 (NORMAL again: exit 0)"
  expect_exit 0 "${gpt[@]}" alarm check --hours 72
fi

section "Verify: row count and ordered md5 on both sides"
src_digest=$(sample_digest "$src_dir" "$src_port" "$db")
dst_digest=$(sample_digest "$dst_dir" "$dst_port" "$db")
printf '  %-7s %s\n' "side" "rows | md5(rows ordered by glass_id, defect_seq)"
printf '  %-7s %s\n' "source" "$src_digest"
printf '  %-7s %s\n' "target" "$dst_digest"
if [ "$src_digest" != "$dst_digest" ]; then
  die "source and target differ"
fi
note "OK: source and target are identical"

if [ "${DEMO_STOP:-0}" = 1 ]; then
  section "Stop the clusters"
  scripts/pg-cluster.sh stop "$src_dir"
  scripts/pg-cluster.sh stop "$dst_dir"
  note "stopped"
else
  section "Try more"
  cat <<EOF
  The clusters keep running. In this shell:
    export GPT_SRC_PASSWORD=... GPT_DST_PASSWORD=...   # demo defaults: src-demo-secret, dst-demo-secret
    $bin --config $config history
    psql -h $dst_dir -p $dst_port -U postgres $db      # superuser on the target
  Stop them with:
    scripts/pg-cluster.sh stop $src_dir; scripts/pg-cluster.sh stop $dst_dir
EOF
fi
