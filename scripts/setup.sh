#!/usr/bin/env bash
# Prepares a Debian 12 machine to build and test gptransfer. Idempotent, and quick (a few
# seconds) when everything is already there: apt runs only when a package is missing.
#
#   scripts/setup.sh
#
# Run as root, or as a user with sudo. The Rust toolchain itself is not installed here (it cannot
# be downloaded on every machine this runs on): cargo must already be on PATH.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  as_root=()
fi

# --- Debian packages -------------------------------------------------------------------------
# postgresql: server + client for the test clusters (scripts/pg-cluster.sh); mariadb-server: the
# MySQL config reader (etl_conf_d); openssh-*: the ssh transport and the gpload sink; time: the
# benchmarks; build-essential, pkg-config, libssl-dev: native build dependencies; openssl: the
# test clusters' throw-away CA and server certificates (sslmode tests); python3-fusepy, fuse3:
# a FUSE directory that hangs like a dead NFS mount (tests/support/stallfs.py); chromium: the
# HTML report rendered headless and its charts measured (tests/report.rs); iptables: one
# segment of a real cluster made unable to reach a port (tests/segment_checks.rs).
packages=(
  postgresql
  openssl
  build-essential
  pkg-config
  libssl-dev
  mariadb-server
  openssh-server
  openssh-client
  time
  python3-fusepy
  fuse3
  chromium
  iptables
)

installed() {
  # `dpkg -s` alone also succeeds for removed packages whose config files remain.
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"

missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] && [ ${#as_root[@]} -eq 0 ]; then
    die "missing packages (${missing[*]}) and neither root nor sudo to install them"
  fi
  say "installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The test clusters run as this user: PostgreSQL refuses to run as root.
id postgres >/dev/null 2>&1 || die "OS user 'postgres' missing (it comes with the postgresql package)"
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  die "initdb not found in PATH or /usr/lib/postgresql/*/bin"
fi

# --- Real Greenplum 4.3, 6 and 7 and PostgreSQL 8.2 for the tests ---------------------------
# GP4_HOME / GP6_HOME / GP7_HOME / PG82_HOME from the environment (a user's own install) come first; otherwise the
# prebuilt archives of the shared Greenplum directory are unpacked (seconds, once).
homes=$("$(dirname "$0")/gp-server.sh" homes) || die "no Greenplum 4.3 / 6 / 7 / PostgreSQL 8.2 for the tests (see scripts/gp-server.sh)"
say "greenplum: $(echo "$homes" | tr '\n' ' ')"

# --- Rust ------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 \
  || die "cargo not found: install a Rust toolchain (https://rustup.rs) first; this script cannot download it"

for component in fmt clippy; do
  if ! cargo "$component" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 \
      || die "cargo $component missing and no rustup to add it"
    say "adding rust component for cargo $component"
    rustup component add "$([ "$component" = fmt ] && echo rustfmt || echo clippy)"
  fi
done

# cargo-nextest is optional: scripts/test.sh falls back to `cargo test` without it.
if cargo nextest --version >/dev/null 2>&1; then
  nextest=yes
elif command -v curl >/dev/null 2>&1 \
  && curl -fsS --max-time 5 -o /dev/null https://index.crates.io/config.json 2>/dev/null; then
  say "installing cargo-nextest (cargo install --locked cargo-nextest)"
  if cargo install --locked cargo-nextest; then
    nextest=yes
  else
    say "warning: cargo-nextest did not install; tests will run with cargo test"
    nextest=no
  fi
else
  say "crates.io unreachable: no cargo-nextest; tests will run with cargo test"
  nextest=no
fi

say "ok ($(cargo --version | cut -d' ' -f1-2), nextest: $nextest)"
