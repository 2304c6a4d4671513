#!/usr/bin/env bash
# Runs one container through containerd-shim-custom-v1 under a private containerd 2.4, then stops
# everything and checks nothing was left behind. `make demo` builds what it needs first
# (make deps build images); run as root.
#
# Nothing here touches the system's containerd: the daemon gets its own config, root, state and
# socket in a temp dir, and a PATH that starts with a bin dir holding our shim and the pinned runc.
# (tests/harness does the same, for more daemons and with leak checks.)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DEPS_BIN=${DEPS_BIN:-$repo/_output/deps/bin}
IMAGES_DIR=${IMAGES_DIR:-$repo/tests/testdata/images}
SHIM=${SHIM:-$repo/bin/containerd-shim-custom-v1}
RUNTIME=io.containerd.custom.v1
IMAGE=localhost/busybox:test
MESSAGE=${MESSAGE:-hello from a container run by containerd-shim-custom-v1}

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || die "run as root (containers need it)"
for f in "$DEPS_BIN/containerd" "$DEPS_BIN/ctr" "$DEPS_BIN/runc" "$SHIM"; do
	[ -x "$f" ] || die "$f is missing: run 'make deps build'"
done
[ -f "$IMAGES_DIR/busybox.tar" ] || die "$IMAGES_DIR/busybox.tar is missing: run 'make images'"

dir=$(mktemp -d /tmp/cst-demo-XXXXXX)
ns=demo-${dir##*-}
id=hello
daemon_pid=

ctr() {
	# ctr 2.x warns on every call that cgroup v1 is deprecated: true, but noise here.
	"$DEPS_BIN/ctr" --address "$dir/containerd.sock" --namespace "$ns" "$@" \
		2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2)
}

cleanup() {
	local rc=$? leftovers
	set +e
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1
		ctr tasks rm -f "$id" >/dev/null 2>&1
		ctr containers rm "$id" >/dev/null 2>&1
		step "stopping containerd (pid $daemon_pid)"
		kill -TERM "$daemon_pid"
		wait "$daemon_pid"
	fi
	leftovers=
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/} && pid=${pid%/cmdline}
		[ "$pid" != $$ ] || continue
		cmdline=$({ tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
		case $cmdline in *"$dir/"*) leftovers+=$'\n'"  pid $pid: $cmdline" ;; esac
	done
	[ -z "$leftovers" ] || { echo "demo: processes left behind:$leftovers" >&2; rc=1; }
	if grep -q -F " $dir/" /proc/self/mountinfo; then
		echo "demo: mounts left behind under $dir" >&2
		rc=1
	fi
	rmdir "/run/containerd/runc/$ns" /sys/fs/cgroup/*/"$ns" 2>/dev/null
	if [ $rc -eq 0 ]; then
		rm -rf "$dir"
		echo "clean: no process or mount left behind; removed $dir"
	else
		echo "demo failed; containerd log kept in $dir/containerd.log:" >&2
		tail -n 30 "$dir/containerd.log" >&2
	fi
	exit $rc
}
trap cleanup EXIT

mkdir -p "$dir/bin"
ln -s "$SHIM" "$dir/bin/containerd-shim-custom-v1"
ln -s "$DEPS_BIN/runc" "$dir/bin/runc"
cat >"$dir/config.toml" <<EOF
version = 3
root = "$dir/root"
state = "$dir/state"
imports = []
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri"]

[grpc]
  address = "$dir/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF

step "shim: $("$SHIM" -v 2>&1 | tr '\n' ' ')"
step "starting $("$DEPS_BIN/containerd" --version) in $dir"
PATH="$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	"$DEPS_BIN/containerd" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
	ctr version >/dev/null 2>&1 && break
	kill -0 "$daemon_pid" 2>/dev/null || die "containerd exited"
	sleep 0.1
done
ctr version >/dev/null || die "containerd did not come up"

step "ctr images import $IMAGES_DIR/busybox.tar"
ctr images import --all-platforms "$IMAGES_DIR/busybox.tar"

step "ctr run --rm --runtime $RUNTIME $IMAGE $id /bin/echo \"$MESSAGE\""
ctr run --rm --runtime "$RUNTIME" --fifo-dir "$dir/fifo" "$IMAGE" "$id" /bin/echo "$MESSAGE" </dev/null
