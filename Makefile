# Everyday targets. The README's two commands need none of them: `go run ./cmd/meeting`
# runs the product and `hack/test.sh` runs every test.
GO ?= go
BIN ?= bin

.PHONY: all build run test bench screenshots generate verify fmt vet image

all: build

build: ## the one binary
	CGO_ENABLED=0 $(GO) build -o $(BIN)/meeting ./cmd/meeting

run: ## standalone, as a newcomer runs it
	$(GO) run ./cmd/meeting

test: ## every test, installing what the tests need
	hack/test.sh

screenshots: ## the browser call test's screenshots into docs/images (call.png is the README's)
	$(GO) test -count=1 -run 'TestCall$$' ./test/browser -update

bench: ## benchmarks that print the performance figures
	hack/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

generate: ## regenerate code and manifests
	@# Meeting API: deepcopy, CRD into config/crd/bases, operator RBAC (from markers) into config/rbac, the api role's Role into config/rbac/api
	CG=$$(hack/install-k8s-tools.sh controller-gen)/controller-gen && \
	  $$CG object paths=./api/... && \
	  $$CG crd paths=./api/... output:crd:artifacts:config=config/crd/bases && \
	  $$CG rbac:roleName=meeting-operator paths=./controllers/... output:rbac:artifacts:config=config/rbac && \
	  $$CG rbac:roleName=meeting-api paths=./internal/sync/... output:rbac:artifacts:config=config/rbac/api

verify: generate ## fail when generated files drift from the sources (changed or new)
	@drift=$$(git status --porcelain -- api config); \
	if [ -n "$$drift" ]; then echo "generated files drifted: run make generate and commit" >&2; echo "$$drift" >&2; git diff -- api config >&2; exit 1; fi

# Container image (hack/image, its own module): no Docker daemon needed.
# VERSION tags the image and is stamped into the binary (meeting --version).
VERSION ?= 0.0.0-dev
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

image: ## OCI layout in _output/image/oci (linux/amd64+arm64), docker-archive _output/image/meeting.tar
	cd hack/image && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) GOWORK=off GOFLAGS=-mod=readonly \
	  $(GO) run . --root ../.. --version $(VERSION) --revision $(REVISION)
