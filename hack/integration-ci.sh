#!/usr/bin/env bash
# Runs `make integration` and judges it. Every row of ours must pass the first time. The reference
# shim (io.containerd.runc.v2, in the CRI tables the handler runc), our baseline in the differential rows, has races of its own that
# fail a row now and then (a dropped event, a false stdin EOF, a lost log line, a failed create:
# see referenceBugs in tests/scenarios_test.go); when the only failures are reference rows (and
# the differentials and parents that fail with them), the tests holding them run once more, whole,
# ours included, and that second run decides. Anything else fails at once.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p _output
log=_output/integration.log

make integration TESTFLAGS="${TESTFLAGS:-}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && exit 0

mapfile -t failed < <(grep -oP '^\s*--- FAIL: \K\S+' "$log" | sort -u)
[ "${#failed[@]}" -gt 0 ] || { echo "integration failed without a failing test (build or timeout): rc $rc"; exit "$rc"; }

# A reference row is named after the reference runtime (the Task API tables) or its CRI handler
# (the CRI tables, where it is the pause path).
refnames=(io.containerd.runc.v2 runc)
ref=() # failing reference rows, and tests below them
for f in "${failed[@]}"; do
	for n in "${refnames[@]}"; do
		[[ $f == */$n || $f == */$n/* ]] && ref+=("$f")
	done
done
allowed() { # a reference row, its differential, or a parent of one
	local f=$1 r n
	for r in "${ref[@]}"; do
		[[ $f == "$r" || $r == "$f"/* ]] && return 0
		for n in "${refnames[@]}"; do
			[[ $f/$n == "$r" ]] && return 0
			[[ $f == */differential && ${f%/differential}/$n == "$r" ]] && return 0
		done
	done
	return 1
}
for f in "${failed[@]}"; do
	if [ "${#ref[@]}" -eq 0 ] || ! allowed "$f"; then
		echo "integration: $f failed (not a reference-only failure): failing"
		exit 1
	fi
done

mapfile -t tops < <(printf '%s\n' "${failed[@]}" | cut -d/ -f1 | sort -u)
run=$(IFS='|'; echo "^(${tops[*]})") # no trailing $: make would expand it
echo
echo "integration: only reference rows failed (${ref[*]}); running ${tops[*]} once more, ours included"
make integration TESTFLAGS="-run '$run'" 2>&1 | tee "$log.rerun"
exit "${PIPESTATUS[0]}"
