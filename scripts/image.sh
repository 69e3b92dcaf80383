#!/usr/bin/env bash
# Builds the gptransfer container image (packaging/Containerfile) with podman and smoke-tests
# it; the last line printed is the image's name.
#
#   scripts/image.sh
#
# 1. Debian packages it needs (podman, runc, debootstrap, PostgreSQL, a C toolchain), when missing.
# 2. `cargo build --release` of the binary and of the example plugin, stripped into a build
#    context. Meanwhile, the base image `debian:bookworm-slim`: kept when podman has it, pulled
#    when a registry answers, else made offline from Debian's packages with
#    `debootstrap --variant=minbase bookworm` (slimmed as Debian's own slim image is) and cached
#    as a tarball in $IMAGE_CACHE.
# 3. `podman build`; then the image must run as a non-root user, hold no key and be under 150 MB.
# 4. Smoke test: `--version`, `plugins` (with the example external plugin loaded), then against
#    two throw-away PostgreSQL clusters on 127.0.0.1 (scripts/pg-cluster.sh, the demo's sample
#    table, reached with --network host) `config check`, `run`, `compare` of a one-day job, and
#    the target byte-exact against the source (row count + md5 of every row, ordered by the key);
#    then the same job again over the ssh transport to a throw-away sshd, with the key and a
#    known_hosts (made by ssh-keyscan in the image) mounted into the container's ~/.ssh.
# Any failure stops it with a message naming the step.
#
# Run as root (debootstrap and podman's storage need it). Re-running is safe and quick: the
# binary, the base image and podman's layers are reused; the clusters are made again and
# stopped at the end.
#
# Settings this machine's sandbox needs live here, not on the machine: podman reads only
# $work/containers.conf (CONTAINERS_CONF), which picks runc (crun fails here on
# `setrlimit RLIMIT_NPROC` and on hybrid cgroups) and sets no default ulimits.
#
# Environment (all optional):
#   IMAGE=gptransfer                       image name, tagged :<version> and :latest
#   IMAGE_DIR=/tmp/gptransfer-image        build context, containers.conf, clusters, config
#   IMAGE_CACHE=/var/cache/gptransfer-image  the debootstrap'd base as a tarball
#   IMAGE_SOURCE=<origin's URL>            org.opencontainers.image.source label
#   ROWS=24000                             rows of the smoke job (one day, 1h windows)
#   DEBIAN_MIRROR=http://deb.debian.org/debian, DEBIAN_SECURITY_MIRROR=http://deb.debian.org/debian-security
#                                          what the offline base is made from, and its apt sources
#   SKIP_BUILD=1                           use target/release as it is
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

image=${IMAGE:-gptransfer}
work=${IMAGE_DIR:-/tmp/gptransfer-image}
cache=${IMAGE_CACHE:-/var/cache/gptransfer-image}
rows=${ROWS:-24000}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
release=${CARGO_TARGET_DIR:-$root/target}/release
base=debian:bookworm-slim
base_tar=$cache/debian-bookworm-minbase.tar
max_bytes=150000000

step=0
section() {
  step=$((step + 1))
  printf '\n==== %d. %s ====\n' "$step" "$*"
}
note() { printf '  %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and podman's storage need it"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"

section "Debian packages"
# binutils: strip; the rest of build-essential, pkg-config, libssl-dev: the release build;
# postgresql, openssl: the smoke test's clusters (scripts/pg-cluster.sh); openssh-server and
# -client: its sshd for the ssh transport.
ensure_packages podman runc debootstrap binutils build-essential pkg-config libssl-dev postgresql openssl \
  openssh-server openssh-client
note "ok"

mkdir -p "$work" "$cache"
chmod 755 "$work"
exec 9>"$work/.lock"
flock -n 9 || die "another scripts/image.sh is running with $work (lock $work/.lock)"

cat >"$work/containers.conf" <<'CONF'
# Written by scripts/image.sh; podman reads only this file (CONTAINERS_CONF).
[containers]
# crun/runc would set RLIMIT_NPROC and others, which this sandbox refuses.
default_ulimits = []

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$work/containers.conf
podman() { command podman --runtime /usr/sbin/runc "$@"; }

# --- the base image --------------------------------------------------------------------------

# A minbase bookworm made like Debian's slim image: no docs but copyrights, no man pages or
# locales (also for packages installed later: dpkg excludes them), apt's lists and caches gone.
make_base_tar() {
  local rootfs=$cache/rootfs.tmp
  rm -rf "$rootfs" "$base_tar.tmp"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap of bookworm from $mirror failed (log: $cache/debootstrap.log)"; }
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CFG
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/apt/* "$rootfs"/var/log/*.log "$rootfs"/tmp/* "$rootfs"/root/.bash_history
  # An empty machine-id, as in Debian's images: systemd-less containers need none.
  : >"$rootfs/etc/machine-id"
  tar --numeric-owner --xattrs -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
}

provide_base() {
  if podman image exists "$base"; then
    echo "$base: already in podman's storage"
    return
  fi
  # A registry first: it has Debian's own build. Here none may answer (no DNS, no route).
  if timeout 60 podman pull --quiet "docker.io/library/$base" >"$work/pull.log" 2>&1; then
    echo "$base: pulled from docker.io"
    return
  fi
  echo "$base: no registry answered ($(tail -n 1 "$work/pull.log")); making it offline"
  if [ ! -s "$base_tar" ]; then
    local t0 t1
    t0=$(date +%s%N)
    make_base_tar
    t1=$(date +%s%N)
    echo "debootstrap --variant=minbase bookworm from $mirror: $(seconds_between "$t0" "$t1") s"
  else
    echo "reusing $base_tar"
  fi
  podman import --quiet --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm (scripts/image.sh)" \
    "$base_tar" "localhost/$base" >/dev/null
  echo "$base: imported from $base_tar"
}

section "Base image $base (in the background) and the release build"
# The base comes over the network while cargo uses the CPU.
provide_base >"$work/base.log" 2>&1 &
base_pid=$!

if [ "${SKIP_BUILD:-0}" = 1 ]; then
  note "cargo build skipped (SKIP_BUILD=1)"
else
  cargo build --release
  # Its own invocation, so that the binary is built exactly as by a plain `cargo build
  # --release` elsewhere (cargo unifies features over the packages of one invocation).
  cargo build --release -p gptransfer-sink-files
fi
bin=$release/gptransfer
plugin=$release/libgptransfer_sink_files.so
[ -x "$bin" ] || die "no binary at $bin"
[ -f "$plugin" ] || die "no example plugin at $plugin"

if ! wait "$base_pid"; then
  sed 's/^/  /' "$work/base.log" >&2
  die "the base image $base could not be provided"
fi
sed 's/^/  /' "$work/base.log"

section "Build the image"
version=$("$bin" --version | awk '{ print $2 }')
[ -n "$version" ] || die "$bin --version printed no version"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi
source_url=${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo "$root")}
case "$source_url" in /*) source_url=file://$source_url ;; esac
context=$work/context
rm -rf "$context"
mkdir -p "$context/plugins"
# Unstripped, the debug info of the release profile (debug = 1) is ~90 MB.
strip -o "$context/gptransfer" "$bin"
strip -o "$context/plugins/libgptransfer_sink_files.so" "$plugin"
# The labels also as --label: podman 4.3 reuses a cached LABEL layer whatever the build args.
podman build --pull=never --network host -f packaging/Containerfile \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source_url" \
  --label org.opencontainers.image.version="$version" --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.source="$source_url" \
  -t "$image:$version" -t "$image:latest" "$context"
ref=localhost/$image:$version

section "Image checks: user, secrets, size, labels"
user=$(podman image inspect --format '{{.Config.User}}' "$ref")
uid=$(podman run --rm --entrypoint id "$ref" -u)
if [ -z "$user" ] || [ "$uid" = 0 ]; then die "the image runs as uid $uid (USER '$user'); it must not be root"; fi
note "runs as $user (uid $uid)"
# No private key, host key or credential file may be baked in (they are mounted at run time).
found=$(podman run --rm --user 0 --entrypoint sh "$ref" -c \
  "find / -xdev -type f \\( -name 'id_*' -o -name '*.key' -o -name 'ssh_host_*' -o -name '.pgpass' \
     -o -name 'known_hosts' -o -name 'authorized_keys' -o -path '/etc/ssl/private/*' \\) -print")
[ -z "$found" ] || die "the image holds files that look like secrets: $found"
if podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$ref" | grep -iE 'pass|secret|token|key'; then
  die "the image's environment holds something that looks like a secret"
fi
note "no keys, credential files or secret environment variables"
size=$(podman image inspect --format '{{.Size}}' "$ref")
[ "$size" -lt "$max_bytes" ] || die "the image is $size bytes, over the $max_bytes limit"
note "size: $size bytes ($((size / 1000000)) MB)"
for label in version=$version source=$source_url revision=$revision; do
  name=org.opencontainers.image.${label%%=*}
  value=$(podman image inspect --format "{{index .Labels \"$name\"}}" "$ref")
  [ "$value" = "${label#*=}" ] || die "label $name is '$value', not '${label#*=}'"
  note "$name=$value"
done

section "Smoke: --version, plugins"
out=$(podman run --rm "$ref" --version)
[ "$out" = "gptransfer $version" ] || die "--version printed '$out', not 'gptransfer $version'"
note "$out"
out=$(podman run --rm "$ref" plugins)
grep -qE 'sink +copy .*built-in' <<<"$out" || die "plugins does not list the built-in copy sink: $out"
etc=$work/etc
mkdir -p "$etc"
chmod 755 "$etc"
printf '[plugins]\npaths = ["/usr/lib/gptransfer/plugins/libgptransfer_sink_files.so"]\n' >"$etc/plugins.toml"
chmod 644 "$etc/plugins.toml"
out=$(podman run --rm -v "$etc:/etc/gptransfer:ro" "$ref" --config /etc/gptransfer/plugins.toml plugins)
grep -qE 'sink +files .*libgptransfer_sink_files' <<<"$out" \
  || die "plugins does not list the example plugin 'files' loaded from the image: $out"
note "built-in plugins listed; the example plugin 'files' loads from /usr/lib/gptransfer/plugins"

section "Smoke: two local PostgreSQL clusters, $rows sample rows"
psql=$(find_psql)
db=qms
day=2024-01-01
next_day=2024-01-02
src_dir=$work/pg/src
dst_dir=$work/pg/dst
export GPT_SRC_PASSWORD=${GPT_SRC_PASSWORD:-src-image-secret}
export GPT_DST_PASSWORD=${GPT_DST_PASSWORD:-dst-image-secret}
mkdir -p "$work/pg"
chmod 755 "$work/pg"
sshd_pid=
stop_servers() {
  scripts/pg-cluster.sh stop "$src_dir" || true
  scripts/pg-cluster.sh stop "$dst_dir" || true
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; fi
}
stop_servers
trap stop_servers EXIT
src_port=$(free_port 55632)
dst_port=$(free_port 55633 "$src_port")
start_cluster "$src_dir" "$src_port" "$GPT_SRC_PASSWORD"
start_cluster "$dst_dir" "$dst_port" "$GPT_DST_PASSWORD"
sample_load "$src_dir" "$src_port" "$dst_dir" "$dst_port" "$db" "$rows" "$day"
note "source 127.0.0.1:$src_port, target 127.0.0.1:$dst_port"
{
  echo "# The smoke job of scripts/image.sh; passwords come from the environment."
  sample_config "$src_port" "$dst_port" "$db" "$day" "$next_day"
} >"$etc/gptransfer.toml"
chmod 644 "$etc/gptransfer.toml"

# The config where the image looks by default ($GPTRANSFER_CONFIG); passwords passed by name
# (-e NAME), so they are in no command line.
gpt=(podman run --rm --network host -v "$etc:/etc/gptransfer:ro" -e GPT_SRC_PASSWORD -e GPT_DST_PASSWORD "$ref")

section "Smoke: config check, run, compare (in the container)"
"${gpt[@]}" config check || die "config check failed in the container"
"${gpt[@]}" run --job demo || die "run failed in the container"
"${gpt[@]}" compare --job demo || die "compare found differences or failed (exit $?)"
"${gpt[@]}" history --limit 3

# same_digests WHAT: the target byte-exact against the source.
same_digests() {
  local src_digest dst_digest
  src_digest=$(sample_digest "$src_dir" "$src_port" "$db")
  dst_digest=$(sample_digest "$dst_dir" "$dst_port" "$db")
  note "source: $src_digest"
  note "target: $dst_digest"
  [ "${src_digest%% *}" = "$rows" ] || die "the source holds ${src_digest%% *} rows, not $rows"
  [ "$src_digest" = "$dst_digest" ] || die "source and target differ after $1"
  note "OK: identical ($rows rows)"
}

section "Smoke: the target byte-exact against the source"
same_digests "the run in the container"

section "Smoke: the ssh transport, with a key and known_hosts mounted"
# A throw-away sshd on 127.0.0.1 (as tests/support/sshd.rs starts it) logging in the user
# running this script; the container reaches it with the key mounted into ~/.ssh, and
# known_hosts is filled by ssh-keyscan in the image.
ssh_dir=$work/ssh
rm -rf "$ssh_dir"
mkdir -p "$ssh_dir/home" "$ssh_dir/remote"
chmod 755 "$ssh_dir" "$ssh_dir/home"
ssh-keygen -q -t ed25519 -N '' -C gptransfer-image-host -f "$ssh_dir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C gptransfer-image-client -f "$ssh_dir/home/id_ed25519"
cp "$ssh_dir/home/id_ed25519.pub" "$ssh_dir/authorized_keys"
# The container's user reads the key; nobody else may.
chown 10001:10001 "$ssh_dir/home/id_ed25519"
chmod 600 "$ssh_dir/home/id_ed25519"
mkdir -p /run/sshd
ssh_user=$(id -un)
# start_sshd PORT: true once it listens; false when the port was taken meanwhile (a port free
# a moment ago may be the local end of someone's connection by now).
start_sshd() {
  cat >"$ssh_dir/sshd_config" <<SSHD
Port $1
ListenAddress 127.0.0.1
HostKey $ssh_dir/host_ed25519
AuthorizedKeysFile $ssh_dir/authorized_keys
PidFile $ssh_dir/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
X11Forwarding no
Subsystem sftp internal-sftp
SSHD
  /usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" 2>"$ssh_dir/sshd.log" 9>&- &
  sshd_pid=$!
  for _ in $(seq 100); do
    if port_in_use "$1"; then return 0; fi
    if ! kill -0 "$sshd_pid" 2>/dev/null; then
      grep -q 'Address already in use' "$ssh_dir/sshd.log" && return 1
      cat "$ssh_dir/sshd.log" >&2
      die "sshd did not start"
    fi
    sleep 0.1
  done
  die "sshd does not listen on 127.0.0.1:$1 after 10 s (log: $ssh_dir/sshd.log)"
}
ssh_port=
for attempt in 1 2 3 4 5; do
  port=$(free_port $((55700 + 20 * attempt)))
  if start_sshd "$port"; then ssh_port=$port; break; fi
done
[ -n "$ssh_port" ] || die "sshd found no free port in 5 attempts (log: $ssh_dir/sshd.log)"
podman run --rm --network host --entrypoint ssh-keyscan "$ref" -p "$ssh_port" -t ed25519 127.0.0.1 \
  >"$ssh_dir/home/known_hosts" 2>"$ssh_dir/keyscan.log" || { cat "$ssh_dir/keyscan.log" >&2; die "ssh-keyscan in the image failed"; }
grep -q ssh-ed25519 "$ssh_dir/home/known_hosts" || die "ssh-keyscan in the image found no host key"
chmod 644 "$ssh_dir/home/known_hosts"
note "sshd on 127.0.0.1:$ssh_port; known_hosts from ssh-keyscan in the image"
# The same job with every window carried by the ssh transport, into the emptied target; its own
# state schema, so every window is due again.
su_psql "$dst_dir" "$dst_port" -d "$db" -c "TRUNCATE $sample_table"
{
  echo "# The smoke job of scripts/image.sh over the ssh transport."
  sample_config "$src_port" "$dst_port" "$db" "$day" "$next_day" | sed 's/^schema = "gptransfer"$/schema = "gptransfer_ssh"/'
  printf 'transport = { plugin = "ssh", host = "127.0.0.1", port = %s, user = "%s", key_file = "/home/gptransfer/.ssh/id_ed25519", root = "%s" }\n' \
    "$ssh_port" "$ssh_user" "$ssh_dir/remote"
} >"$etc/gptransfer-ssh.toml"
chmod 644 "$etc/gptransfer-ssh.toml"
gpt_ssh=(podman run --rm --network host -v "$etc:/etc/gptransfer:ro" -v "$ssh_dir/home:/home/gptransfer/.ssh:ro"
  -e GPT_SRC_PASSWORD -e GPT_DST_PASSWORD "$ref" --config /etc/gptransfer/gptransfer-ssh.toml)
"${gpt_ssh[@]}" config check || die "config check of the ssh job failed in the container"
out=$("${gpt_ssh[@]}" run --job demo) || die "the run over ssh failed in the container: $out"
tail -n 1 <<<"$out" | sed 's/^/  /'
grep -q '^24 window(s) loaded, 0 failed' <<<"$out" || die "the run over ssh did not load the 24 windows: $out"
same_digests "the run over ssh in the container"

section "Done"
note "smoke test passed; image size $((size / 1000000)) MB; run it with:"
note "  podman run --rm --network host -v /path/to/etc:/etc/gptransfer:ro -e PASSWORD_VARS $ref run"
echo "$ref"
