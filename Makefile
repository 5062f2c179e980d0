# The FedCloud appliance: every task starts here. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

export IMAGE_TAG ?= $(shell cat VERSION)
# Every directory with a Dockerfile is an image, named after the directory.
IMAGES := democloud $(patsubst services/%/Dockerfile,%,$(wildcard services/*/Dockerfile)) \
          $(if $(wildcard appliance/Dockerfile),appliance)
# The typed contract: appliance.yaml's model, the render step, the shared
# credentials and settings, and what each service loads (make lint type-checks it).
CONTRACT := common/src/fedcloud_common appliance/src/fedcloud_appliance/config \
            appliance/src/fedcloud_appliance/render \
            services/cloudkeeper/src/fedcloud_cloudkeeper/config.py \
            services/cloudkeeper/src/fedcloud_cloudkeeper/spool.py \
            services/bdii/src/fedcloud_bdii/config.py services/bdii/src/fedcloud_bdii/domain.py \
            services/bdii/src/fedcloud_bdii/cli.py \
            services/accounting/src/fedcloud_accounting services/glancesync/src/fedcloud_glancesync
BENCHES := $(patsubst bench/%/run,bench-%,$(wildcard bench/*/run))
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help prepare install lint images base-image test demo demo-down clean bench ova ova-test \
        example \
        $(BENCHES)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --target .tools/lib uv
	mkdir -p .tools/bin && ln -sf ../lib/bin/uv .tools/bin/uv

prepare: ## make this machine ready: host packages, Docker engine, base image (root or sudo)
	tools/prepare-host

install: $(UV) ## install every package and tool from uv.lock into .venv
	$(UV) sync --all-packages --locked --quiet

lint: install ## ruff over the whole tree, mypy over the typed contract
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy $(CONTRACT)

base-image: prepare ## make debian:bookworm-slim available (pull, or debootstrap offline)

images: install base-image ## build every container image
	@tools/build-image python-base  # what the service images build FROM
	@for image in $(IMAGES); do UV=$(UV) tools/build-image $$image; done

test: prepare lint images ## run every test, unit and end-to-end
	@$(UV) run --no-sync pytest || { rc=$$?; \
	    [[ $$rc -ne 5 ]] || echo "make test: pytest collected no tests" >&2; exit $$rc; }

demo: prepare images ## start the demo and print how to reach it
	tools/demo up

demo-down: ## stop the demo and remove its volumes
	tools/demo down

example: install ## regenerate appliance/etc/appliance.example.yaml from the config models
	$(UV) run --no-sync python -m fedcloud_appliance.config.example > appliance/etc/appliance.example.yaml

bench: $(BENCHES) ## run every benchmark (bench-NAME runs one: bench/NAME/run)

$(BENCHES): bench-%: images
	bench/$*/run

ova: images ## build the VM appliance: build/ova/fedcloud-appliance-VERSION.ova (root)
	ova/build

ova-test: ova ## boot the OVA under QEMU with a seed disk and check bdii and cloudkeeper-os
	ova/boot-test

clean: ## remove build output (keeps the wheel cache)
	rm -rf build .tools
