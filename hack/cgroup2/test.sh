#!/usr/bin/env bash
# The cgroup v2 lane (`make test-cgroup2`, `make test-cgroup2-all`): builds the integration test
# binary on the host (go test -c -tags integration), then boots the pure cgroup v2 guest of
# hack/cgroup2/run.sh once and runs the binary there from tests/, once per -run selection, and
# prints what ran: each test (and each daemon or table below it) with its result and time, also
# kept in $CG2_OUT/summary.txt. The guest's whole console (go test -v output and kernel
# messages) is $CG2_OUT/console.log, and console.txt without the console's carriage returns.
# Exit status: 0 when every run passed, else the last failing run's (run.sh: 124 when the
# guest ran out of time, 125 when it did not boot).
#
#   hack/cgroup2/test.sh [-timeout DURATION] [-skip REGEXP] -run REGEXP [-skip REGEXP] [-run ...]
#
# -run and -skip are the test binary's (-test.run, -test.skip: per-level patterns split at "/").
# Each -run is one run of the binary; a -skip after it applies to that run, a -skip before the
# first -run to every run without its own. -timeout (default 30m) bounds each run (go test's
# -timeout) and the whole guest, which is killed 3 minutes after it (CG2_TIMEOUT, in seconds,
# overrides that bound). CG2_NAME (default lane)
# names copies of the console and summary kept beside console.log: <name>.console.txt and
# <name>.summary.txt.
#
# Environment: CG2_OUT (default _output/cgroup2), GO (default go), what run.sh reads, and the
# sizes of the load-like rows, smaller than on the host (one slow vCPU): CST_CRI_PODS (5),
# CST_RERUNS (20), CST_TTY_EXECS (10), CST_DELETE_RACES (5). CI=true is set: in the guest a
# missing prerequisite (cgroup v2 included) fails a test instead of skipping it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
export CG2_OUT=${CG2_OUT:-$repo/_output/cgroup2}
GO=${GO:-go}
bin=$CG2_OUT/integration.test
export CI=true CST_CRI_PODS=${CST_CRI_PODS:-5} CST_RERUNS=${CST_RERUNS:-20}
export CST_TTY_EXECS=${CST_TTY_EXECS:-10} CST_DELETE_RACES=${CST_DELETE_RACES:-5}

log() { printf '[cgroup2] %s\n' "$*"; }

timeout=30m skip= runs=() skips=()
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { log "$1 needs a value"; exit 2; }
	case $1 in
	-timeout) timeout=$2 ;;
	-skip)
		if [ ${#runs[@]} -eq 0 ]; then skip=$2; else skips[${#runs[@]} - 1]=$2; fi ;;
	-run) runs+=("$2") ;;
	*) log "unknown flag $1 (usage: $0 [-timeout D] [-skip REGEXP] -run REGEXP [-skip REGEXP]...)"; exit 2 ;;
	esac
	shift 2
done
[ ${#runs[@]} -gt 0 ] || { log "no -run selection"; exit 2; }
seconds=$(awk -v d="$timeout" 'BEGIN {
	n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
	print int(n * (u == "h" ? 3600 : u == "m" ? 60 : 1))
}')
export CG2_TIMEOUT=${CG2_TIMEOUT:-$((seconds + 180))}

mkdir -p "$CG2_OUT"
log "building $bin"
"$GO" test -c -tags integration -o "$bin" "$repo/tests"
# The shim under test: a copy of bin/ taken now (CST_SHIM if set), so that a rebuild of bin/
# during the run does not change the binary halfway.
if [ -z "${CST_SHIM:-}" ]; then
	mkdir -p "$CG2_OUT/bin"
	install -m 0755 "$repo/bin/containerd-shim-custom-v1" "$CG2_OUT/bin/containerd-shim-custom-v1"
	export CST_SHIM=$CG2_OUT/bin/containerd-shim-custom-v1
fi
log "shim under test: $CST_SHIM ($("$CST_SHIM" -v 2>/dev/null | tr -s '\n\t' '  ' || true))"

# What the guest runs: the binary once per selection, each with its time.
lane=$CG2_OUT/lane.sh
{
	echo '#!/bin/bash'
	echo '# Written by hack/cgroup2/test.sh: the runs of one `make test-cgroup2`.'
	echo 'rc=0'
	for i in "${!runs[@]}"; do
		r=${runs[$i]} s=${skips[$i]-$skip}
		printf 'echo %q; start=$(date +%%s)\n' "[cgroup2] run -run '$r' -skip '$s'"
		printf '%q -test.v -test.count=1 -test.timeout %q -test.run %q -test.skip %q || rc=$?\n' "$bin" "$timeout" "$r" "$s"
		printf 'echo %q"$(( $(date +%%s) - start ))s"\n' "[cgroup2] run -run '$r': "
	done
	echo 'exit $rc'
} >"$lane"

rc=0
(cd "$repo/tests" && "$repo/hack/cgroup2/run.sh" bash "$lane") || rc=$?

# Results of the first two levels (Test, Test/daemon) and the time of each run (the console ends
# its lines with CR LF).
tr -d '\r' <"$CG2_OUT/console.log" >"$CG2_OUT/console.txt"
grep -E '^ {0,4}--- (PASS|FAIL|SKIP): |^\[cgroup2\] run .*: [0-9]+s$' "$CG2_OUT/console.txt" | sed 's/^ *--- /  /' >"$CG2_OUT/summary.txt" || true
name=${CG2_NAME:-lane}
cp "$CG2_OUT/console.txt" "$CG2_OUT/$name.console.txt"
cp "$CG2_OUT/summary.txt" "$CG2_OUT/$name.summary.txt"
echo
log "summary (exit $rc; full log $CG2_OUT/console.log):"
cat "$CG2_OUT/summary.txt"
failed=$(grep -E '^\s*--- FAIL: ' "$CG2_OUT/console.txt" | awk '{print $3}' | sort -u || true)
if [ -n "$failed" ]; then
	log "failed:"
	printf '  %s\n' $failed
fi
exit "$rc"
