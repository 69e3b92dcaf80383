#!/usr/bin/env bash
# The one test command: set-up, formatting, lints, then the whole test suite (integration tests
# start their own PostgreSQL clusters). Stops at the first failing step; exits non-zero on any
# failure.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "scripts/setup.sh"
scripts/setup.sh

# The MySQL config reader's tests need a running MariaDB (they fail, never skip, without one).
step "scripts/mariadb.sh"
scripts/mariadb.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The jsonl example is a crate of its own, outside the workspace (as a team's sink would be).
jsonl=plugins/examples/sink-jsonl/Cargo.toml
step "cargo fmt + clippy of $jsonl"
cargo fmt --manifest-path "$jsonl" -- --check
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/outside-sink" \
  cargo clippy --offline --manifest-path "$jsonl" --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; they run first so that nextest's summary closes the log.
  step "cargo test --workspace --doc"
  status=0
  cargo test --workspace --doc 2>&1 | tee "$log" || status=$?
  if [ "$status" = 0 ]; then
    step "cargo nextest run --workspace --no-fail-fast"
    cargo nextest run --workspace --no-fail-fast 2>&1 | tee -a "$log" || status=$?
  fi
  summary=$(grep -E '^ *Summary \[' "$log" | tail -n 1 | sed -E 's/^ +//')
else
  step "cargo test --workspace --no-fail-fast"
  status=0
  cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
  # cargo test prints one result line per test binary; add them up into one.
  summary=$(awk '/^test result:/ {
      for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^(passed|failed|ignored);?$/) n[$(i + 1)] += $i
    }
    END { printf "%d passed; %d failed; %d ignored (all test binaries)", n["passed;"], n["failed;"], n["ignored;"] }' "$log")
fi

echo
passed=$(printf '%s' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
failed=$(printf '%s' "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
if [ "$status" = 0 ]; then
  echo "test.sh: OK: ${summary:-no summary line found}"
  echo "${passed:-0} passed, ${failed:-0} failed"
else
  echo "test.sh: FAILED (exit $status): ${summary:-no summary line found}" >&2
  echo "${passed:-0} passed, ${failed:-1} failed"
fi
exit "$status"
