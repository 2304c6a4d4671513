# containerd-shim-custom-v1: a containerd shim v2 (runtime type io.containerd.custom.v1).
#
# `make help` lists the targets. The two commands the README gives:
#   make demo      run a container through the shim under a private containerd 2.4
#   make test-all  unit tests, then the integration tests (root; needs `make deps`)

WHALE = "🇩"
ONI = "👹"

GO ?= go
GOTEST ?= $(GO) test
PKG := github.com/custom-shim/containerd-shim-custom-v1
SHIM := containerd-shim-custom-v1

# Pinned versions of what the integration tests run against (built from the Go module proxy by hack/deps.sh).
CONTAINERD_VERSION ?= v2.4.2
RUNC_VERSION ?= v1.5.2
# The linter `make lint` runs (.golangci.yml), built by hack/deps.sh with this repo's Go.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(DEPS_BIN)/golangci-lint
# criu for the live checkpoint/restore tests (`make criu`, part of `make deps`): the upstream
# tarball Debian 13 (trixie) ships; Debian 12's criu 3.17 fails `criu check` on this kernel.
CRIU_VERSION ?= 4.1.1
CRIU_SHA256 ?= f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe

# The shim's version (version.FromGit): the release tag vX.Y.Z of the commit, what `git describe`
# says after a tag, or v0.0.0-untagged+<revision>; "dirty" is added for a tree with uncommitted
# changes. REVISION is the full commit. Both are evaluated where used (recursive `=`/`?=`).
VERSION ?= $(shell $(GO) run ./hack/version 2>/dev/null || echo v0.0.0-untagged+unknown)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

# Only our version package is stamped. containerd's (github.com/containerd/containerd/v2/version)
# keeps naming the containerd library linked in; `-v` prints that from the module list, and the
# shim's -v and -info answer from our package (manager/main_linux.go, manager/info_linux.go).
LDFLAGS = -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Revision=$(REVISION)
SHIM_CGO_ENABLED ?= 0
GO_BUILD_FLAGS ?= -trimpath

PREFIX ?= /usr/local
DESTDIR ?=

OUTPUT := $(CURDIR)/_output
DEPS_BIN := $(OUTPUT)/deps/bin
IMAGES_DIR := $(CURDIR)/tests/testdata/images
IMAGES := $(IMAGES_DIR)/busybox.tar $(IMAGES_DIR)/pause.tar
PAUSE_BIN := $(OUTPUT)/pause
PROBE_BIN := $(OUTPUT)/cst-probe
# The test images' two C programs (hack/pause, hack/probe): static, like Kubernetes' pause.
CC ?= gcc
STATIC_CFLAGS ?= -Os -static -Wall -Wextra -Werror -s

# Unit-test packages: everything but the integration tests.
UNIT_PACKAGES = $(shell $(GO) list ./... | grep -v '/tests$$')
INTEGRATION_TIMEOUT ?= 35m
# Extra flags for the integration run, e.g. TESTFLAGS='-run TestScenarios/containerd-1.6'.
TESTFLAGS ?=

.DEFAULT_GOAL := build

.PHONY: all help build binaries installer build-pprof install uninstall test root-test integration test-all demo deps \
	install-deps images lint fmt vet tidy-check bench coverage clean

all: build ## build the shim (same as build)

help: ## show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n\nTargets:\n"} \
		/^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## build bin/containerd-shim-custom-v1 (static, version-stamped)
	@echo "$(WHALE) $@"
	CGO_ENABLED=$(SHIM_CGO_ENABLED) $(GO) build $(GO_BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o bin/$(SHIM) ./cmd/$(SHIM)

binaries: build installer ## the shim and the node installer

installer: ## build bin/custom-shim-install, the node installer (static, version-stamped)
	@echo "$(WHALE) $@"
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o bin/custom-shim-install ./cmd/custom-shim-install

build-pprof: ## build bin/pprof/containerd-shim-custom-v1: the shim with -tags shim_pprof (ctr shim pprof under a debug-level containerd)
	@echo "$(WHALE) $@"
	CGO_ENABLED=$(SHIM_CGO_ENABLED) $(GO) build $(GO_BUILD_FLAGS) -tags shim_pprof -ldflags '$(LDFLAGS)' -o bin/pprof/$(SHIM) ./cmd/$(SHIM)

install: ## install the shim into $(DESTDIR)$(PREFIX)/bin (run `make build` first)
	@echo "$(WHALE) $@"
	@test -x bin/$(SHIM) || { echo "$(ONI) bin/$(SHIM) missing: run 'make build' first"; exit 1; }
	install -D -m 0755 bin/$(SHIM) $(DESTDIR)$(PREFIX)/bin/$(SHIM)

uninstall: ## remove the shim from $(DESTDIR)$(PREFIX)/bin
	@echo "$(WHALE) $@"
	rm -f $(DESTDIR)$(PREFIX)/bin/$(SHIM)

test: ## unit tests with -race (no root, excludes tests/)
	@echo "$(WHALE) $@"
	$(GOTEST) -race -count=1 $(UNIT_PACKAGES)

root-test: ## unit tests that need root (packages gate them on env ROOT_TESTS=1)
	@echo "$(WHALE) $@"
	ROOT_TESTS=1 $(GOTEST) -race -count=1 $(UNIT_PACKAGES)

# The pause-less CRI table (TestCRISandboxed) also runs on this older 2.x line (the oldest where
# sandboxer = "shim" works), built from the module proxy into _output/compat by compat-deps (once;
# skipped when built).
SANDBOX_EXTRA_LINES ?= 2.3

# The cgroup v2 rows (tests/cgroup2_test.go) run where /sys/fs/cgroup is cgroup v2; on a cgroup
# v1 host `make integration` leaves them to `make test-cgroup2`.
CGROUP2_TESTS := TestCgroup2|TestCgroup2CRI
HOST_SKIPS = $(NODE_TESTS)|TestCompat$(if $(wildcard /sys/fs/cgroup/cgroup.controllers),,|$(CGROUP2_TESTS))

integration: build images ## integration tests (root): differential runs against the reference shim on containerd 2.4 and 1.6 (and 2.3 for pause-less pods)
	@echo "$(WHALE) $@"
	@test -x $(DEPS_BIN)/containerd -a -x $(DEPS_BIN)/runc || { echo "$(ONI) $(DEPS_BIN) is incomplete: run 'make deps'"; exit 1; }
	$(MAKE) compat-deps COMPAT_VERSIONS="$(SANDBOX_EXTRA_LINES)"
	$(GOTEST) -tags integration -v -count=1 -timeout $(INTEGRATION_TIMEOUT) -skip '^($(HOST_SKIPS))$$' ./tests/... $(TESTFLAGS)

test-all: root-test ## unit tests (with the root-only ones), then integration tests judged by hack/integration-ci.sh (the README's test command; what CI runs)
	hack/integration-ci.sh

demo: deps build images ## run a container through the shim under a private containerd 2.4, then clean up
	@echo "$(WHALE) $@"
	DEPS_BIN=$(DEPS_BIN) IMAGES_DIR=$(IMAGES_DIR) hack/demo.sh

deps: ## install apt packages (root) and build pinned containerd, ctr, reference shim, runc, golangci-lint and criu into _output/deps/bin
	@echo "$(WHALE) $@"
	CONTAINERD_VERSION=$(CONTAINERD_VERSION) RUNC_VERSION=$(RUNC_VERSION) GOLANGCI_LINT_VERSION=$(GOLANGCI_LINT_VERSION) \
		DEPS_BIN=$(DEPS_BIN) GO=$(GO) hack/deps.sh
	CRIU_VERSION=$(CRIU_VERSION) CRIU_SHA256=$(CRIU_SHA256) DEPS_BIN=$(DEPS_BIN) hack/criu.sh

install-deps: deps ## also copy the pinned containerd, ctr, reference shim and runc into $(DESTDIR)$(PREFIX)/bin
	@echo "$(WHALE) $@"
	for b in containerd ctr containerd-shim-runc-v2 runc; do \
		install -D -m 0755 $(DEPS_BIN)/$$b $(DESTDIR)$(PREFIX)/bin/$$b || exit 1; \
	done

images: $(IMAGES) ## build the test images (OCI tarballs) into tests/testdata/images

$(PAUSE_BIN): hack/pause/pause.c
	@mkdir -p $(@D)
	$(CC) $(STATIC_CFLAGS) -o $@ $<

$(PROBE_BIN): hack/probe/probe.c
	@mkdir -p $(@D)
	$(CC) $(STATIC_CFLAGS) -o $@ $<

$(IMAGES) &: $(PAUSE_BIN) $(PROBE_BIN) $(wildcard hack/mkimage/*.go)
	@echo "$(WHALE) images"
	$(GO) run ./hack/mkimage -out $(IMAGES_DIR) -pause $(PAUSE_BIN) -probe $(PROBE_BIN)

# golangci-lint (.golangci.yml) runs twice: over the shim as released, and with the build tags of
# the integration tests, the benchmarks and the diagnostic builds, so that tests/, bench/ and the
# pprof and memstats code are linted too (one run with every tag would skip the !shim_pprof file).
LINT_TAGS ?= integration,bench,shim_pprof,memstats

lint: ## gofmt, go vet (also of the integration-tagged code) and golangci-lint (`make deps` builds it; required when CI=true)
	@echo "$(WHALE) $@"
	@out=$$(gofmt -s -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './_output/*')); \
		if [ -n "$$out" ]; then echo "$(ONI) gofmt -s would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./tests/...
	@if command -v "$(GOLANGCI_LINT)" >/dev/null 2>&1; then \
		have=$$("$(GOLANGCI_LINT)" version --short 2>/dev/null); \
		if [ "v$${have#v}" != "$(GOLANGCI_LINT_VERSION)" ]; then \
			echo "$(ONI) $(GOLANGCI_LINT) is $$have, not $(GOLANGCI_LINT_VERSION): run 'make deps'"; exit 1; fi; \
		echo "GOGC=75 $(GOLANGCI_LINT) run ./..."; \
		GOGC=75 "$(GOLANGCI_LINT)" run ./... || exit 1; \
		echo "GOGC=75 $(GOLANGCI_LINT) run --build-tags $(LINT_TAGS) ./..."; \
		GOGC=75 "$(GOLANGCI_LINT)" run --build-tags $(LINT_TAGS) ./... || exit 1; \
	elif [ "$(CI)" = true ]; then \
		echo "$(ONI) $(GOLANGCI_LINT) missing (CI=true): run 'make deps'"; exit 1; \
	else \
		echo "golangci-lint not installed ($(GOLANGCI_LINT)): skipped; 'make deps' builds it"; \
	fi

# The pod holder (pod/holder/holder.c) is built by `go generate ./pod` into the committed
# pod/holder_{amd64,arm64}.elf; verify-holder builds it again and fails if they differ.
.PHONY: generate verify-holder
generate: ## regenerate generated files (the pod holder's ELF images; needs gcc-aarch64-linux-gnu)
	@echo "$(WHALE) $@"
	$(GO) generate ./pod

verify-holder: generate ## check that the committed pod holder images are what holder.c builds to
	@git diff --exit-code -- pod/holder_amd64.elf pod/holder_arm64.elf || \
		{ echo "$(ONI) pod/holder_*.elf differ from what pod/holder/holder.c builds to: run 'make generate' and commit"; exit 1; }

fmt: ## gofmt -s -w all Go files
	gofmt -s -w $$(git ls-files --cached --others --exclude-standard '*.go')

vet: ## go vet ./...
	$(GO) vet ./...

tidy-check: ## fail if go mod tidy changes go.mod or go.sum
	@echo "$(WHALE) $@"
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || { echo "$(ONI) go.mod/go.sum not tidy"; exit 1; }

# Fuzz targets: package:FuzzName; each runs FUZZTIME from its seed corpus in
# <package>/testdata/fuzz/<FuzzName>.
FUZZ_TARGETS ?= process:FuzzDecodeOptions task:FuzzValidID manager:FuzzParseStartInput io:FuzzParseOutput
FUZZTIME ?= 30s
SOAK_TIMEOUT ?= 120m

.PHONY: fuzz soak
fuzz: ## run every fuzz target for FUZZTIME (default 30s each)
	@echo "$(WHALE) $@"
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$name in ./$$pkg"; \
		$(GOTEST) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

soak: build images ## long load test (root): 1,000 lifecycles and 10,000 execs through this shim (CST_SOAK=1), see docs/reliability.md
	@echo "$(WHALE) $@"
	CST_SOAK=1 $(GOTEST) -tags integration -v -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestLoad$$' ./tests/ $(TESTFLAGS)

# `make bench`: this shim against containerd-shim-runc-v2 under a private containerd 2.4,
# interleaved, as a table (docs/benchmarks.md). BENCH_QUICK=1 for a smoke run; BENCH_* sizes there.
BENCH_TIMEOUT ?= 60m
bench: build images ## benchmark table: this shim vs the reference shim (root, `make deps`; BENCH_QUICK=1 for a smoke run)
	@echo "$(WHALE) $@"
	@test -x $(DEPS_BIN)/containerd -a -x $(DEPS_BIN)/runc || { echo "$(ONI) $(DEPS_BIN) is incomplete: run 'make deps'"; exit 1; }
	CI=true $(GOTEST) -tags bench -v -count=1 -timeout $(BENCH_TIMEOUT) -run '^TestBench$$' ./bench/ $(TESTFLAGS)

coverage: ## unit-test coverage into _output/coverage.out
	@mkdir -p $(OUTPUT)
	$(GOTEST) -race -count=1 -coverprofile=$(OUTPUT)/coverage.out $(UNIT_PACKAGES)
	$(GO) tool cover -func=$(OUTPUT)/coverage.out | tail -1

clean: ## remove bin/, test images and the pause binary (keeps the pinned deps in _output/deps)
	@echo "$(WHALE) $@"
	rm -rf bin $(IMAGES) $(PAUSE_BIN) $(PROBE_BIN) $(OUTPUT)/coverage.out

# Compatibility matrix: the containerd lines `make compat` runs the smoke suite against,
# on our runtime and on the reference shim of each release. 1.6 is Debian's package and 2.4 the
# pinned build of `make deps`; hack/compat-deps.sh builds the others, each pinned by its module in
# hack/compat/containerd-<line>, into _output/compat/<line>/bin. CI runs a subset (.ci/run).
COMPAT_VERSIONS ?= 1.6 1.7 2.0 2.1 2.2 2.3 2.4
COMPAT_OUT := $(OUTPUT)/compat
COMPAT_TIMEOUT ?= 40m

.PHONY: compat compat-deps
compat-deps: deps ## build the containerd lines of COMPAT_VERSIONS (with ctr and reference shim) into _output/compat
	@echo "$(WHALE) $@"
	COMPAT_VERSIONS="$(COMPAT_VERSIONS)" COMPAT_OUT=$(COMPAT_OUT) DEPS_BIN=$(DEPS_BIN) GO=$(GO) hack/compat-deps.sh

compat: build images compat-deps ## smoke suite + upgrade to 2.4 against each containerd line of COMPAT_VERSIONS (root); prints the table
	@echo "$(WHALE) $@"
	@rm -f $(COMPAT_OUT)/results.md
	CST_COMPAT_VERSIONS="$(COMPAT_VERSIONS)" CST_COMPAT_TABLE=$(COMPAT_OUT)/results.md \
		$(GOTEST) -tags integration -v -count=1 -timeout $(COMPAT_TIMEOUT) -run '^TestCompat$$' ./tests/ $(TESTFLAGS); \
		rc=$$?; echo; echo "compatibility matrix ($(COMPAT_OUT)/results.md):"; \
		cat $(COMPAT_OUT)/results.md 2>/dev/null || echo "(no table: the test did not get that far)"; exit $$rc

# Releases and nodes: `make release` writes reproducible tarballs for RELEASE_PLATFORMS
# into _output/release (hack/release.sh), `make release-test` proves two builds of HEAD identical
# (hack/release-test.sh). `make node-test` runs the node installer against private daemons of
# INSTALLER_LINES (building the compat lines it needs), the shim upgrade with running containers
# and the pprof build; `make integration` leaves these tests (NODE_TESTS) to it.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
RELEASE_OUT := $(OUTPUT)/release
INSTALLER_LINES ?= 1.6 2.2 2.4
NODE_TESTS := TestInstaller|TestShimUpgrade|TestPprof
NODE_TIMEOUT ?= 20m

.PHONY: release release-test node-test
release: ## reproducible static tarballs (shim, installer, LICENSE, README, deploy/, BUILDINFO) and SHA256SUMS in _output/release
	@echo "$(WHALE) $@"
	VERSION=$(VERSION) REVISION=$(REVISION) OUT=$(RELEASE_OUT) PLATFORMS="$(RELEASE_PLATFORMS)" GO=$(GO) hack/release.sh

release-test: ## build the release of HEAD twice (from two exports) and check the tarballs are byte-identical and work
	@echo "$(WHALE) $@"
	PLATFORMS="$(RELEASE_PLATFORMS)" GO=$(GO) hack/release-test.sh

node-test: build installer build-pprof images ## node installer on INSTALLER_LINES, shim upgrade and pprof tests (root; builds the compat lines it needs)
	@echo "$(WHALE) $@"
	@lines="$(filter-out 1.6 2.4,$(INSTALLER_LINES))"; if [ -n "$$lines" ]; then \
		$(MAKE) compat-deps COMPAT_VERSIONS="$$lines" || exit 1; fi
	CST_INSTALLER_LINES="$(INSTALLER_LINES)" $(GOTEST) -tags integration -v -count=1 -timeout $(NODE_TIMEOUT) \
		-run '^($(NODE_TESTS))$$' ./tests/ $(TESTFLAGS)

.PHONY: criu checkpoint-test
criu: ## build criu $(CRIU_VERSION) from Debian's source tarball into _output/deps/bin/criu (Debian 12's criu fails `criu check` here)
	@echo "$(WHALE) $@"
	CRIU_VERSION=$(CRIU_VERSION) CRIU_SHA256=$(CRIU_SHA256) DEPS_BIN=$(DEPS_BIN) hack/criu.sh

checkpoint-test: build images criu ## live checkpoint/restore against the reference with the criu of `make criu` (root)
	@echo "$(WHALE) $@"
	CI=true $(GOTEST) -tags integration -v -count=1 -timeout 20m -run '^(TestCheckpoint|TestCheckpointLive|TestCRICheckpoint)$$' ./tests/ $(TESTFLAGS)

# cgroup v2 lane: integration rows in a pure cgroup v2 guest, Debian's user-mode-linux kernel
# (hack/cgroup2: kernel.sh gets it through apt into _output/cgroup2/uml without installing it,
# run.sh boots it, guest-init.sh is its PID 1, test.sh runs the test binary there once per -run).
# The host's cgroups are never touched. `test-cgroup2` is what CI runs: CGROUP2_RUNS with the
# guest's own init, then CGROUP2_SYSTEMD_RUNS with systemd as init (the systemd cgroup driver).
# `test-cgroup2-all` runs everything that can run in the guest (builds containerd 2.3 for the
# pause-less table); `cgroup2-shell` runs CMD there. Patterns are the test binary's -run/-skip
# (per level, split at "/"); write $$ for a $ in them.
CGROUP2_OUT := $(OUTPUT)/cgroup2
CGROUP2_TEST = CG2_OUT=$(CGROUP2_OUT) GO=$(GO) hack/cgroup2/test.sh
# CI's selection (about 13 minutes with both boots on this 2-core machine, more when it is busy):
# the cgroup v2 rows (tests/cgroup2_test.go), -info, the cgroup-related rows of the smoke
# scenarios and the Task API on containerd 2.4 and 1.6, of OOM, the pause-less table and the CRI
# table on 2.4, the pause-less table's PID 1 rows (the holder's confinement seen from a member
# container) and the Sandbox API's endings on 2.4. On cgroup v2 the reference shim of 1.6 publishes an OOM after the exit or none at
# times, which fails its OOM rows: only v2-oom-group runs there, and knows it.
CGROUP2_RUNS ?= \
	-run '^(TestCgroup2|TestCgroup2CRI|TestInfoOptions)$$' -skip '^TestCgroup2CRI$$/^containerd/^v2-pod-cgroup-systemd$$' \
	-run '^(TestScenarios|TestTaskAPI)$$/^containerd-(2\.4|1\.6)$$/^(echo|sigkill|grouping|pause-resume|update|stats|pids)$$' \
	-run '^TestOOM$$/^containerd-2\.4$$/^(oom-child|oom-stats-after-exit)$$' \
	-run '^TestCRISandboxed$$/^containerd-2\.4-cri$$/^(pod-lifecycle|oom-killed|pod-stats|pid1-default-caps|pid1-sys-ptrace|pid1-sys-admin)$$' \
	-run '^TestCRI$$/^containerd-2\.4-cri$$/^(pod-lifecycle|pod-network)$$' \
	-run '^TestSandboxAPI$$/^containerd-2\.4$$/^ending$$'
CGROUP2_SYSTEMD_RUNS ?= \
	-run '^TestCgroup2CRI$$/^containerd-2\.4-cri$$/^v2-pod-cgroup-systemd$$' \
	-run '^TestCRI$$/^containerd-2\.4-cri$$/^options-systemd-cgroup$$'
# Each run's go test -timeout; the guest is killed 3 minutes after it.
CGROUP2_TIMEOUT ?= 25m
# Everything but what cannot run there: the node, compat and load tests (the load test's
# reference fails creates with "ttrpc: closed" on one slow vCPU), live checkpoints (no
# CONFIG_CHECKPOINT_RESTORE in the UML kernel: criu check fails), kill-reused-pid (no
# /proc/sys/kernel/ns_last_pid either), exit-held-other-on-time (its 100 ms reader timing),
# rerun-same-id and socket-gone-after-delete (20 and 40 tasks in a row, as the guest sets them,
# outlast their deadline on the one slow vCPU, with either shim), the mount transforms (the UML kernel mounts no erofs),
# user-namespaced pods (no idmapped mounts on hostfs: both handlers fail), the systemd row (the
# guest's own init), and the rows that read cgroup v1 files (resources-stats, the ShimCgroup
# options rows: v2-pod-cgroup and v2-shim-cgroup are their cgroup v2 counterparts).
CGROUP2_ALL_RUNS ?= \
	-run '.' -skip '^($(NODE_TESTS)|TestCompat|TestLoad|TestCheckpointLive|TestCRICheckpoint|TestMountTransforms|TestTaskAPI|TestCRISandboxed|TestCRI|TestRuntimeOptions|TestCgroup2CRI)$$' \
	-run '^TestTaskAPI$$' -skip '^TestTaskAPI$$/^containerd/^(kill-reused-pid|exit-held-other-on-time|rerun-same-id|socket-gone-after-delete)$$' \
	-run '^TestCRISandboxed$$' -skip '^TestCRISandboxed$$/^containerd/^(checkpoint|mount-transforms|userns)$$' \
	-run '^TestCRI$$' -skip '^TestCRI$$/^containerd/^resources-stats$$' \
	-run '^TestRuntimeOptions$$' -skip '^TestRuntimeOptions$$/^containerd/^(options-runc-runtime|options-toml-body)$$' \
	-run '^TestCgroup2CRI$$' -skip '^TestCgroup2CRI$$/^containerd/^v2-pod-cgroup-systemd$$'
CGROUP2_ALL_TIMEOUT ?= 120m
CMD ?= sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/cgroup.subtree_control'

.PHONY: cgroup2-kernel test-cgroup2 test-cgroup2-systemd test-cgroup2-all cgroup2-shell
cgroup2-kernel: ## get Debian's user-mode-linux kernel into _output/cgroup2/uml (apt-get download, no install) and build its ptrace shim
	@echo "$(WHALE) $@"
	UML_DIR=$(CGROUP2_OUT)/uml hack/cgroup2/kernel.sh

test-cgroup2: build images cgroup2-kernel ## CI's selection of integration rows in a pure cgroup v2 guest (user-mode-linux; root), then the systemd-as-init part
	@echo "$(WHALE) $@"
	CG2_NAME=lane $(CGROUP2_TEST) -timeout $(CGROUP2_TIMEOUT) $(CGROUP2_RUNS)
	CG2_NAME=systemd CG2_SYSTEMD=1 $(CGROUP2_TEST) -timeout $(CGROUP2_TIMEOUT) $(CGROUP2_SYSTEMD_RUNS)

test-cgroup2-systemd: build images cgroup2-kernel ## only the systemd part of test-cgroup2: the guest boots systemd as init (SystemdCgroup = true rows)
	@echo "$(WHALE) $@"
	CG2_NAME=systemd CG2_SYSTEMD=1 $(CGROUP2_TEST) -timeout $(CGROUP2_TIMEOUT) $(CGROUP2_SYSTEMD_RUNS)

test-cgroup2-all: build images cgroup2-kernel ## every integration test that can run in the cgroup v2 guest (about 75 minutes: not in CI)
	@echo "$(WHALE) $@"
	$(MAKE) compat-deps COMPAT_VERSIONS="$(SANDBOX_EXTRA_LINES)"
	CG2_NAME=all $(CGROUP2_TEST) -timeout $(CGROUP2_ALL_TIMEOUT) $(CGROUP2_ALL_RUNS)

cgroup2-shell: cgroup2-kernel ## run CMD (default: show the guest's cgroups) as root in the cgroup v2 guest, from the repository
	@echo "$(WHALE) $@"
	CG2_OUT=$(CGROUP2_OUT) hack/cgroup2/run.sh $(CMD)
