# ckpt: `make demo` and `make test` install what is missing and run.
SHELL := /bin/bash
PROTOS := ckpt/v1/types.proto ckpt/v1/coordinator.proto ckpt/v1/query.proto ckpt/v1/bus.proto ckpt/v1/storage.proto

.PHONY: all deps system-deps build check breaking test demo bench clean gen
all: build

# Node packages and the system packages the tests and the demo run (etcd, NATS,
# Chromium for the dashboard's browser test) or generate code with (protoc, the
# Python gRPC plugin). Silent when all is there.
deps: node_modules/.installed system-deps

system-deps:
	@missing=""; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v etcdctl >/dev/null || missing="$$missing etcd-client"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v nats-server >/dev/null || test -x /usr/sbin/nats-server || missing="$$missing nats-server"; \
	command -v protoc >/dev/null || missing="$$missing protobuf-compiler"; \
	test -x /usr/bin/grpc_python_plugin || missing="$$missing protobuf-compiler-grpc"; \
	/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing="$$missing python3-grpcio python3-protobuf"; \
	command -v promtool >/dev/null && command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v go >/dev/null || missing="$$missing golang-go"; \
	command -v spin >/dev/null || missing="$$missing spin"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	test -d /usr/share/gocode/src/google.golang.org/grpc || missing="$$missing golang-google-grpc-dev"; \
	test -d /usr/share/gocode/src/google.golang.org/protobuf || missing="$$missing golang-google-protobuf-dev"; \
	test -d /usr/share/gocode/src/github.com/nats-io/nats.go || missing="$$missing golang-github-nats-io-go-nats-dev"; \
	command -v protoc-gen-go-grpc >/dev/null || missing="$$missing protoc-gen-go-grpc"; \
	test -d /usr/share/gocode/src/github.com/golang/protobuf || missing="$$missing golang-github-golang-protobuf-1-3-dev"; \
	command -v protoc-gen-go >/dev/null || missing="$$missing protoc-gen-go-1-3"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "installing:$$missing"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# tsc, then the word count's worker bundled into one file and its V8 code
# cache (package.json's bundle:worker; examples/wordcount/bundled-worker.ts
# runs them), which starts in a third of the time of the compiled tree, and
# a V8 startup snapshot of that bundle (snapshot:worker,
# examples/wordcount/snapshot-builder.ts), from which a worker starts with
# its modules loaded: node --snapshot-blob
# dist/examples/wordcount/worker.snapshot.blob
# dist/examples/wordcount/bundled-worker.js --coordinator ...; beside them
# start-worker.sh, which starts the worker so, or from the bundle (saying
# why) when this node cannot load the snapshot: the deploy manifests run it.
build: node_modules/.installed
	npx tsc -p tsconfig.json
	npm run --silent bundle:worker
	cp examples/wordcount/start-worker.sh dist/examples/wordcount/start-worker.sh

check: node_modules/.installed breaking
	npx tsc --noEmit -p tsconfig.json
	npx eslint .
	npx prettier --check --log-level warn .
	npx buf lint

# The contract in proto/ must not break what main's previous commit had
# (buf.yaml's breaking rules). BUF_AGAINST=<commit> compares with another
# commit. Without that commit in the clone (a shallow clone), it fails and
# says how to fetch it.
BUF_AGAINST ?=
breaking: node_modules/.installed
	@.ci/buf-against "$(BUF_AGAINST)" .tmp/buf-against.tar
	npx buf breaking --against .tmp/buf-against.tar

# The spin model of the checkpoint, recovery and fencing protocol
# (test/model/ckpt.pml, proto/PROTOCOL.md §15): the good model's safety and
# liveness, the reachability probes and every bad variant, each compiled and
# searched in a temporary directory (a few minutes). MODEL_ARGS is passed on:
# --quick, --only safety,NO_EPOCH_GUARD, --fair. make test runs the same
# checks (test/model/model.test.ts), the good model's safety with --quick.
.PHONY: model
model: node_modules/.installed system-deps
	node --import tsx test/model/run-model.ts $(MODEL_ARGS)

# Every test (the spin model's checks in test/model among them); then, alone,
# the benchmark harness's smoke test (it runs the word count from dist/, hence
# build). Each ava run has a deadline
# (.ci/within): a run that hangs fails, saying so, rather than running on.
TEST_DEADLINE ?= 45m
SMOKE_DEADLINE ?= 20m
test: deps build go-check
	.ci/within $(TEST_DEADLINE) npx ava
	CKPT_BENCH_SMOKE=1 .ci/within $(SMOKE_DEADLINE) npx ava test/integration/bench-smoke.test.ts

# LANGS=go,ts runs the word count's split tasks in the Go worker
# (go/src/ckpt/examples/wordcount-split, built into .tmp/go/bin/) and its
# count and sink tasks in TypeScript workers; the default is LANGS=ts.
LANGS ?= ts
demo: deps
	node --import tsx examples/wordcount/demo.ts --langs $(LANGS)

# A local production-like cluster (examples/wordcount/cluster.ts): a throwaway
# PKI, 3 etcd members (TLS, client certificates, a user limited to ckpt's
# prefix), 3 NATS servers with JetStream (TLS, client certificates, a user
# per role with least privilege), 2 coordinators (gRPC with mutual TLS and an
# access policy) and the word count's workers, fed until Ctrl-C. It prints the
# addresses, the dashboards, where the certificates are and the ckpt commands
# of the operator and the reader. FOR_SECONDS=N runs N seconds, checks as the
# reader that checkpoints committed and exits non-zero if none did.
.PHONY: cluster
cluster: deps
	node --import tsx examples/wordcount/cluster.ts $(if $(FOR_SECONDS),--for-seconds $(FOR_SECONDS))

# The benchmarks (bench/run.ts) on a local etcd and NATS; results in bench/results/.
# The word count's coordinator and workers run the compiled dist/ (hence build).
# BENCH_ARGS is passed on, e.g. BENCH_ARGS=--quick or BENCH_ARGS='--only checkpoint-latency'.
bench: deps build
	node --import tsx bench/run.ts $(BENCH_ARGS)

clean:
	rm -rf dist .tmp

# The worker conformance suite (test/conformance/README.md): drives a worker
# implementation through every scenario against real coordinators, etcd and
# NATS, prints scenario -> PASS/FAIL and exits non-zero on any failure. WORKER
# is the worker's command line (default: the TypeScript SDK's adapter), IMPL
# names it in the report; logs go to .tmp/conformance/<IMPL>/<scenario>/.
# ONLY=a,b runs some scenarios.
WORKER ?= node --import tsx test/conformance/ts-worker.ts
IMPL ?= ts
.PHONY: conformance
conformance: deps
	node --import tsx test/conformance/main.ts --worker '$(WORKER)' --impl '$(IMPL)' $(if $(ONLY),--only '$(ONLY)')

gen: node_modules/.installed
	rm -rf src/gen
	npx proto-loader-gen-types --longs=Number --enums=String --defaults --oneofs --includeComments \
	  --grpcLib=@grpc/grpc-js --outDir=src/gen --importFileExtension=.js $(PROTOS) -I proto 2>&1 | grep -v '^WARNING: This tool is in alpha' || true
	find src/gen -name '*.ts' -exec sed -i '1i // Code generated by proto-loader-gen-types from proto/ (make gen). DO NOT EDIT.' {} +
	node --import tsx src/proto/write-descriptor.ts
	rm -rf .tmp/go-gen go/src/ckpt/ckptpb && mkdir -p .tmp/go-gen go/src/ckpt/ckptpb
	cd proto && protoc -I . --go_out=plugins=grpc,paths=import:../.tmp/go-gen $(PROTOS)
	for f in .tmp/go-gen/ckpt/v1/*.pb.go; do \
	  sed 's/^package ckpt_v1$$/package ckptpb/' "$$f" > go/src/ckpt/ckptpb/$$(basename "$$f"); \
	done
	rm -rf .tmp/go-gen

# The Go worker library (go/, GOPATH layout, Debian's Go packages; nothing
# is downloaded): vet and tests, and the binaries of the conformance adapter
# and of the word count's Go worker. The
# end-to-end tests start etcd, nats-server and a coordinator (node, from
# node_modules) of their own, and skip, saying so, when one is missing.
GO_ENV := GO111MODULE=off GOPATH=$(CURDIR)/go:/usr/share/gocode GOFLAGS= GOCACHE=$(CURDIR)/.tmp/go-cache
.PHONY: go-check go-build
go-check: system-deps
	cd go/src/ckpt && $(GO_ENV) go vet ./... && $(GO_ENV) go test ./...

go-build: system-deps
	mkdir -p .tmp/go/bin
	cd go/src/ckpt && $(GO_ENV) go build -o $(CURDIR)/.tmp/go/bin/ckpt-conformance-worker ./cmd/ckpt-conformance-worker
	cd go/src/ckpt && $(GO_ENV) go build -o $(CURDIR)/.tmp/go/bin/wordcount-split ./examples/wordcount-split

# npm ci installs exactly package-lock.json (and fails if package.json does not
# match it), so only a changed lock file calls for a new install. npm ci first
# empties node_modules: through a symbolic link it would empty the directory
# the link points to, so that is left to whoever owns that directory.
node_modules/.installed: package-lock.json
	@if [ -L node_modules ]; then \
	  echo "node_modules is a symbolic link to $$(readlink node_modules): run npm ci there, not through the link" >&2; \
	  exit 1; \
	fi
	npm ci --no-audit --no-fund
	touch $@

# The Kubernetes manifests (deploy/kubernetes) and the image (deploy/image),
# offline: each kustomization renders with kubectl, every object validates
# against the Kubernetes schemas and type-checks against kubernetes-types,
# nats-server accepts the NATS config, the flags given to coordinators and
# workers exist, what pods mount exists, make-certs.sh makes certificates
# that verify, the etcd-auth-setup script works on a real etcd, the
# Dockerfile's build on its context alone writes what the manifests run, and
# the word count runs on a nats-server with the users of nats.conf, and the
# word count example's coordinator, workers and submit Job run here with
# their rendered command lines and make-certs.sh's Secrets until the job
# checkpoints. The same tests run in make test (they take seconds, the
# image's build and the example's run about 20 each); without kubectl most
# are skipped and say so.
.PHONY: deploy-check
deploy-check: node_modules/.installed
	npx ava test/unit/deploy.test.ts test/unit/deploy-image.test.ts test/unit/deploy-certs.test.ts \
	  test/integration/deploy-nats.test.ts test/integration/deploy-smoke.test.ts

# The fuzz suites (test/fuzz) alone, N generated messages per target
# (make test runs 1000). FUZZ_SEED replays a run; SURVEY=1 lists every
# kind of failure instead of shrinking the first.
N ?= 1000
.PHONY: fuzz
fuzz: deps
	CKPT_FUZZ_N=$(N) $(if $(FUZZ_SEED),CKPT_FUZZ_SEED=$(FUZZ_SEED)) $(if $(SURVEY),CKPT_FUZZ_SURVEY=1) npx ava test/fuzz/

# The fault suite (test/chaos): a seeded schedule of FAULTS faults against
# JOBS word count jobs (default 3) on a 3-member etcd cluster, a 3-node NATS cluster (NATS_CLUSTER=0:
# one server) and 3 coordinators; exits non-zero on any violation. It runs on
# make cluster's topology: TLS with client certificates on every link (through
# the fault proxies), least-privilege NATS and etcd users, gRPC mutual TLS;
# SECURE=0 runs it all in plain text, for comparison.
# GROUPS=n spreads the jobs over n job groups (--job-groups), so that the
# coordinators share them and leader faults hit each job's own leader.
# COORDINATORS, JOBS, FAULT_KINDS, NATS_CLUSTER, SECURE,
# SPACING_MS and CHAOS_LOG_DIR are read from the environment (test/chaos/main.ts).
SEED ?= 1
FAULTS ?= 20
# Job groups the three coordinators spread the jobs over (1: one leader runs every job).
GROUPS ?= 3
.PHONY: chaos
chaos: deps
	node --import tsx test/chaos/main.ts --seed $(SEED) --faults $(FAULTS) $(if $(GROUPS),--job-groups $(GROUPS))
