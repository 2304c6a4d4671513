# Sourced by the hack/ scripts that call apt (bash). A fresh cloud machine often runs unattended
# upgrades at boot: every apt call waits for the dpkg and apt locks (up to APT_LOCK_TIMEOUT
# seconds, default 600) instead of failing, and says so first.

APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}

# apt_get ARGS...: apt-get, non-interactive, waiting for the locks.
apt_get() {
	printf '[apt] apt-get %s (waits up to %ss for the dpkg lock if another apt or dpkg holds it)\n' "$*" "$APT_LOCK_TIMEOUT" >&2
	env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@"
}

# debian_mirror: the Debian archive apt is configured with (its URI, ending in /), from apt's own
# sources: no host is written in this repository.
debian_mirror() {
	local uri
	uri=$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian' 'Identifier: Packages' 2>/dev/null | head -n1)
	if [ -z "$uri" ]; then # lists not fetched yet: the first source whose path is /debian/
		uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '/debian/$' || true)
	fi
	[ -n "$uri" ] || return 1
	printf '%s\n' "$uri"
}
