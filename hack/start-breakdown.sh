#!/usr/bin/env bash
# Where the time of a container start goes, for this shim and the reference: `ctr run --rm
# --null-io` of /bin/true, N times per runtime, interleaved, under a private containerd 2.4
# whose PATH puts a timing wrapper in front of runc. Per run it prints the wall time, the time
# spent inside runc (create, start, delete, ... as the wrapper saw them) and the rest (ctr,
# containerd, the shim's `start` and server); at the end the medians. docs/benchmarks.md quotes
# it for "container start". Run as root after `make deps build images`.
#
#   hack/start-breakdown.sh [N]   (default 20)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DEPS_BIN=${DEPS_BIN:-$repo/_output/deps/bin}
IMAGES_DIR=${IMAGES_DIR:-$repo/tests/testdata/images}
SHIM=${SHIM:-$repo/bin/containerd-shim-custom-v1}
N=${1:-20}
IMAGE=localhost/busybox:test

dir=$(mktemp -d /tmp/cst-sb-XXXXXX)
ns=sb
daemon_pid=
cleanup() {
	[ -z "$daemon_pid" ] || { kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; }; [ -z "${KEEP_LOG:-}" ] || cp "$dir/runc.log" "$KEEP_LOG"
	rmdir "/run/containerd/runc/$ns" /sys/fs/cgroup/*/"$ns" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/bin"
ln -s "$SHIM" "$dir/bin/containerd-shim-custom-v1"
ln -s "$DEPS_BIN/containerd-shim-runc-v2" "$dir/bin/containerd-shim-runc-v2"
# The wrapper logs "<container id> <subcommand> <microseconds> <arguments>" for every runc call.
cat >"$dir/bin/runc" <<EOF
#!/bin/bash
s=\$(date +%s%N)
"$DEPS_BIN/runc" "\$@"
rc=\$?
e=\$(date +%s%N)
sub=; for a in "\$@"; do case \$a in create|start|delete|kill|state|exec|run) sub=\$a; break;; esac; done
echo "\${@: -1} \${sub:-other} \$(( (e - s) / 1000 )) \$*" >> "$dir/runc.log"
exit \$rc
EOF
chmod +x "$dir/bin/runc"
cat >"$dir/config.toml" <<EOF
version = 3
root = "$dir/root"
state = "$dir/state"
imports = []
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$dir/containerd.sock"
EOF
PATH="$dir/bin:$PATH" "$DEPS_BIN/containerd" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
daemon_pid=$!
ctr() { "$DEPS_BIN/ctr" --address "$dir/containerd.sock" --namespace "$ns" "$@" 2>/dev/null; }
for _ in $(seq 100); do ctr version >/dev/null && break; sleep 0.1; done
ctr images import "$IMAGES_DIR/busybox.tar" >/dev/null

now_us() { echo $(( $(date +%s%N) / 1000 )); }
declare -A walls runcs
for i in $(seq 0 "$N"); do
	order=(io.containerd.runc.v2 io.containerd.custom.v1)
	[ $((i % 2)) -eq 0 ] || order=(io.containerd.custom.v1 io.containerd.runc.v2)
	for rt in "${order[@]}"; do
		id="sb-${rt//./-}-$i"
		s=$(now_us)
		ctr run --rm --null-io --runtime "$rt" "$IMAGE" "$id" /bin/true
		wall=$(( $(now_us) - s ))
		inrunc=$(awk -v id="$id" '$1 == id { t += $3 } END { print t + 0 }' "$dir/runc.log")
		[ "$i" -gt 0 ] || continue # warm-up
		printf '%-24s wall %6d us  in runc %6d us  rest %6d us\n' "$rt" "$wall" "$inrunc" $((wall - inrunc))
		walls[$rt]+="$wall "
		runcs[$rt]+="$inrunc "
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "runc subcommands seen: $(awk '{ print $2 }' "$dir/runc.log" | sort | uniq -c | tr '\n' ' ')"
for rt in io.containerd.runc.v2 io.containerd.custom.v1; do
	w=$(echo "${walls[$rt]}" | median)
	r=$(echo "${runcs[$rt]}" | median)
	printf 'median %-24s wall %6d us  in runc %6d us  rest %6d us  (n=%d)\n' "$rt" "$w" "$r" $((w - r)) "$N"
done
