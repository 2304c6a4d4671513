#!/bin/bash
# PID 1 of the cgroup v2 guest (user-mode-linux, booted by hack/cgroup2/run.sh; never run it on
# the host). It makes a pure cgroup v2 machine out of the host's root, seen read-only through
# hostfs: proc, sys, dev, its own tmpfs on /run and /tmp, a writable /var (the host's under an
# overlay, or a tmpfs on /var/lib without the overlay module), cgroup2 with nsdelegate at
# /sys/fs/cgroup with every controller enabled for the children, loopback up, the overlay,
# bridge, veth, erofs and loop modules of the UML package loaded; then it mounts the host dir
# cg2rw= read-write through hostfs (at its own path), runs the command of <cg2rw>/job (cmd, env,
# cwd, written by run.sh) as root, writes its exit status to <cg2rw>/job/status, syncs and
# powers off.
#
# With cg2init=systemd it hands PID 1 to the host's systemd instead (cgroup2 is then systemd's to
# mount): it writes a target and a service into /run/systemd/system that run this script as
# `guest-init.sh job` (the command, as above) and boots systemd with --unit=cg2-job.target;
# the host's own units are not started.
#
# Keys of the kernel command line it reads: cg2rw=, cg2modules= (the UML package's modules dir),
# cg2init= (systemd, or this script).
set -euo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
self=$(readlink -f "$0")

say() { printf '[guest-init] %s\n' "$*"; }

cmdline=$(cat /proc/cmdline 2>/dev/null || true)
arg() { # the value of key=value on the kernel command line
	local kv
	for kv in $cmdline; do
		[ "${kv%%=*}" = "$1" ] && { printf '%s' "${kv#*=}"; return 0; }
	done
	return 1
}

# However the guest's work ends, the machine goes down (PID 1 exiting would panic the kernel).
finish() {
	sync || true
	umount "${rw:-/nonexistent}" 2>/dev/null || true
	poweroff -f
}

# load MODULE: insmod the module and, first, what modules.dep says it needs (the host has no
# kmod: busybox's insmod takes the file).
load() {
	local name=$1 entry dep
	grep -q "^${name//-/_} " /proc/modules && return 0
	entry=$(grep -m1 "/$name\\.ko:" "$moddir/modules.dep" 2>/dev/null) || { say "module $name: not in $moddir/modules.dep"; return 1; }
	for dep in ${entry#*:}; do
		dep=${dep##*/}
		load "${dep%.ko}" || return 1
	done
	busybox insmod "$moddir/${entry%%:*}" || { say "module $name: insmod failed"; return 1; }
}

setup() {
	mount -t proc proc /proc
	cmdline=$(cat /proc/cmdline)
	mount -t sysfs sysfs /sys
	mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm /dev/mqueue
	mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=0620 devpts /dev/pts
	ln -sf pts/ptmx /dev/ptmx 2>/dev/null || true
	mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
	mount -t mqueue mqueue /dev/mqueue
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
	if [ "$(arg cg2init || true)" != systemd ]; then
		mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
		for c in $(cat /sys/fs/cgroup/cgroup.controllers); do printf '+%s' "$c" >/sys/fs/cgroup/cgroup.subtree_control; done
		mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
	fi
	ip link set lo up
	hostname cgroup2-guest

	moddir=$(arg cg2modules || true)/$(uname -r)
	# overlay: containerd's default snapshotter; bridge and veth: the CNI bridge network of CRI
	# pods; erofs and loop: containerd's erofs mount transforms.
	for m in overlay bridge veth erofs loop; do load "$m" || true; done
	# A writable /var (libcni keeps its cache in /var/lib/cni): the host's, with a tmpfs over it.
	mkdir -p /run/cg2/var/upper /run/cg2/var/work
	mount -t overlay -o lowerdir=/var,upperdir=/run/cg2/var/upper,workdir=/run/cg2/var/work var /var ||
		mount -t tmpfs -o mode=0755 var /var/lib

	rw=$(arg cg2rw) || { say "no cg2rw= on the kernel command line: nothing to run"; exit 1; }
	mount -t hostfs -o "$rw" none "$rw"
	say "guest up: kernel $(uname -r), overlay: $(grep -qw overlay /proc/filesystems && echo yes || echo no), init: $(arg cg2init || echo script)"
}

# run_job runs the job's command and records its exit status.
run_job() {
	rw=$(arg cg2rw)
	local job=$rw/job rc=0
	say "cgroup: $(stat -fc %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control), in $(cat /proc/self/cgroup)"
	(
		cd "$(cat "$job/cwd")"
		exec env -i bash -c '. "$1/env" && exec bash "$1/cmd"' guest "$job"
	) </dev/null || rc=$?
	say "command exited $rc"
	echo "$rc" >"$job/status"
}

# boot_systemd hands PID 1 to systemd with a target that runs only the job.
boot_systemd() {
	local units=/run/systemd/system
	mkdir -p "$units"
	cat >"$units/cg2-job.target" <<UNIT
[Unit]
Description=cgroup v2 lane: the job only
Requires=cg2-job.service
After=cg2-job.service
AllowIsolate=yes
UNIT
	# Delegate: like containerd.service, the job's processes may manage cgroups below it.
	cat >"$units/cg2-job.service" <<UNIT
[Unit]
Description=cgroup v2 lane job
DefaultDependencies=no

[Service]
Type=oneshot
ExecStart=$self job
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
Delegate=yes
KillMode=process
TimeoutStartSec=infinity
UNIT
	trap - EXIT
	say "exec /lib/systemd/systemd"
	exec /lib/systemd/systemd --unit=cg2-job.target
}

# Never on the host: the guest's PID 1, or its job service (whose kernel has cg2rw=).
if [ "${1:-}" = job ]; then
	arg cg2rw >/dev/null || { say "not in the cgroup v2 guest (no cg2rw= on the kernel command line)"; exit 2; }
	trap finish EXIT
	run_job
	exit 0
fi
[ $$ -eq 1 ] || { say "not PID 1: this is the cgroup v2 guest's init (hack/cgroup2/run.sh boots it)"; exit 2; }
trap finish EXIT
setup
if [ "$(arg cg2init || true)" = systemd ]; then
	boot_systemd
fi
run_job
