#!/usr/bin/env bash
# Runs one command as root inside a pure cgroup v2 guest: Debian's user-mode-linux kernel
# (hack/cgroup2/kernel.sh gets it), booted with the host's / as a read-only hostfs root and
# cgroup_no_v1=all; hack/cgroup2/guest-init.sh is its PID 1. The host's cgroups are not touched:
# the guest's cgroups live in the guest kernel. The guest sees the whole host tree read-only at
# the same paths (the repository included), $CG2_OUT read-write, its own tmpfs on /tmp and /run,
# and a writable /var (see guest-init.sh). Only loopback networking, one vCPU.
#
#   hack/cgroup2/run.sh COMMAND [ARG...]
#
# The command runs in the current directory (which must not be under /tmp or /run: the guest
# hides those) with PATH (Go's /usr/local/go/bin included), HOME=/tmp/home, TMPDIR=/tmp (short
# socket paths), CI and every CST_* variable of the caller, and the variables CG2_ENV names.
# Its output goes to this script's stdout and, with the guest's kernel messages, to
# $CG2_OUT/console.log. Exit status: the command's; 124 when the guest ran longer than
# $CG2_TIMEOUT seconds (it is killed, with every process of its session); 125 when the guest
# ended without reporting a status (it did not boot, or its kernel died).
#
# Environment:
#   CG2_OUT      read-write dir shared with the guest (default _output/cgroup2)
#   UML_DIR      the unpacked user-mode-linux package (default $CG2_OUT/uml)
#   CG2_TIMEOUT  seconds before the guest is killed (default 1800)
#   CG2_MEM      guest memory (default 3G)
#   CG2_INIT     the guest's init (default hack/cgroup2/guest-init.sh)
#   CG2_SYSTEMD=1  the init hands PID 1 to the host's systemd, which runs the command as a service
#   CG2_ENV      names of more variables to pass into the guest, space-separated
#   CG2_QUIET=1  do not copy the console to stdout (it is still in console.log)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
CG2_OUT=${CG2_OUT:-$repo/_output/cgroup2}
UML_DIR=${UML_DIR:-$CG2_OUT/uml}
CG2_TIMEOUT=${CG2_TIMEOUT:-1800}
CG2_MEM=${CG2_MEM:-3G}
CG2_INIT=${CG2_INIT:-$repo/hack/cgroup2/guest-init.sh}

log() { printf '[cgroup2] %s\n' "$*"; }
die() { printf '[cgroup2] error: %s\n' "$*" >&2; exit 125; }

[ $# -gt 0 ] || die "usage: $0 COMMAND [ARG...]"
kernel=$UML_DIR/usr/bin/linux.uml
preload=$UML_DIR/uml-xstate.so
[ -x "$kernel" ] && [ -f "$preload" ] || die "$kernel or $preload missing: run hack/cgroup2/kernel.sh (make cgroup2-kernel)"
[ -x "$CG2_INIT" ] || die "guest init $CG2_INIT is not executable"
mkdir -p "$CG2_OUT"
CG2_OUT=$(cd "$CG2_OUT" && pwd)
# One guest per $CG2_OUT at a time: they would share its job dir and console log.
exec 9>"$CG2_OUT/.lock"
if ! flock -n 9; then
	log "another guest runs with $CG2_OUT: waiting for it"
	flock 9
fi
cwd=$(pwd)
for p in "$CG2_OUT" "$cwd" "$CG2_INIT" "$UML_DIR"; do
	case $p in
	*[[:space:]]*) die "$p: the kernel command line cannot hold a path with white space" ;;
	/tmp | /tmp/* | /run | /run/*) die "$p is under /tmp or /run, which the guest hides behind its own tmpfs" ;;
	esac
done

# The job: what guest-init.sh runs.
job=$CG2_OUT/job
rm -rf "$job"
mkdir -p "$job"
printf '%s\n' "$cwd" >"$job/cwd"
printf '%q ' "$@" >"$job/cmd"
echo >>"$job/cmd"
{
	echo "export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	echo "export HOME=/tmp/home TMPDIR=/tmp LANG=C.UTF-8"
	echo 'mkdir -p "$HOME"'
	for name in CI ${CG2_ENV:-} $(compgen -e | grep '^CST_' || true); do
		[ -n "${!name+set}" ] && printf 'export %s=%q\n' "$name" "${!name}"
	done
} >"$job/env"

pid= follower= state=
# kill_guest kills the kernel's session and waits (up to 10 s) until none of it is left.
kill_guest() {
	local i
	[ -n "$pid" ] || return 0
	kill -KILL -- "-$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 -- "-$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	log "processes of the guest's session $pid still there after SIGKILL"
}
cleanup() {
	kill_guest
	[ -z "$follower" ] || wait "$follower" 2>/dev/null || true
	[ -z "$state" ] || rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# UML keeps its pid file and control socket in uml_dir, and its memory in a file under TMPDIR.
state=$(mktemp -d /tmp/cg2-uml.XXXXXX)
console=$CG2_OUT/console.log
: >"$console"
uml_tmp=/dev/shm
[ -d "$uml_tmp" ] && [ -w "$uml_tmp" ] || uml_tmp=$state
args=(
	"mem=$CG2_MEM" root=/dev/root rootfstype=hostfs rootflags=/ ro "init=$CG2_INIT"
	con0=fd:0,fd:1 con=null ssl=null cgroup_no_v1=all loglevel=4
	"uml_dir=$state" umid=cg2
	"cg2rw=$CG2_OUT" "cg2modules=$UML_DIR/usr/lib/uml/modules"
)
[ "${CG2_SYSTEMD:-}" != 1 ] || args+=(cg2init=systemd)
log "booting $(cat "$UML_DIR/VERSION" 2>/dev/null || echo linux.uml) (timeout ${CG2_TIMEOUT}s, console: $console): $*"
start=$(date +%s)
# Its own session (setsid does not fork here: a background job of a script is no group leader),
# so that a timeout can kill the kernel and every host process it made for its guest processes.
TMPDIR=$uml_tmp LD_PRELOAD=$preload setsid "$kernel" "${args[@]}" </dev/null >"$console" 2>&1 9>&- &
pid=$!
if [ "${CG2_QUIET:-}" != 1 ]; then
	tail -n +1 -s 0.2 -f --pid="$pid" "$console" &
	follower=$!
fi

timed_out=
while kill -0 "$pid" 2>/dev/null; do
	if [ $(($(date +%s) - start)) -ge "$CG2_TIMEOUT" ]; then
		timed_out=1
		log "guest still running after ${CG2_TIMEOUT}s: killing it"
		kill_guest
		break
	fi
	sleep 1
done
uml_rc=0
wait "$pid" || uml_rc=$?
[ -z "$follower" ] || wait "$follower" 2>/dev/null || true
follower=
elapsed=$(($(date +%s) - start))

if [ -n "$timed_out" ]; then
	log "timed out after ${elapsed}s (console: $console)"
	exit 124
fi
if [ ! -s "$job/status" ]; then
	log "the guest ended after ${elapsed}s (linux.uml exit $uml_rc) without reporting a status: it did not boot or its kernel died; last console lines:"
	tail -n 30 "$console" | sed 's/^/    /'
	exit 125
fi
rc=$(cat "$job/status")
log "command exited $rc; guest ran ${elapsed}s"
exit "$rc"
