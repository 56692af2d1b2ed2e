# The pipeline's entry points. Servers run natively (no Docker engine needed):
# see deployments/local/ and the README.
SHELL := /bin/bash
STACK := npx --no-install tsx deployments/local/stack.ts
MIGRATE := npx --no-install tsx sinks/postgres/migrate-cli.ts

# DOCKER_STACK=1: itest-*/dev-* run the infrastructure with Docker Compose
# (deployments/test, deployments/development) instead of natively — only when a Docker engine
# answers; otherwise the native stack, as by default. Same ports either way.
ifeq ($(DOCKER_STACK),1)
USE_DOCKER := $(shell docker info >/dev/null 2>&1 && echo 1)
ifneq ($(USE_DOCKER),1)
$(warning DOCKER_STACK=1 but no Docker engine answers `docker info`: using the native stack)
endif
endif
INFRA := kafka-1 kafka-2 kafka-3 registry minio postgres
COMPOSE_TEST := docker compose --env-file $(or $(wildcard deployments/test/.env),deployments/test/.env.example) -f deployments/test/docker-compose.yml
COMPOSE_DEV := docker compose --env-file $(or $(wildcard deployments/development/.env),deployments/development/.env.example) -f deployments/development/docker-compose.yml

.PHONY: help install build typecheck lint test check itest chaos \
        up down status \
        itest-up itest-migrate itest-rollback itest-down \
        dev-up dev-migrate dev-rollback dev-down \
        compose-up compose-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

# npm ci, building librdkafka (@confluentinc/kafka-javascript) against the system's libraries.
node_modules/.package-lock.json: package-lock.json
	deployments/local/install-node-modules.sh
	@touch $@

install: node_modules/.package-lock.json ## npm ci and install the stack's servers (cached in ~/.cache/etl-stack)
	$(STACK) install

build: node_modules/.package-lock.json ## compile TypeScript to dist/
	npm run build

typecheck: node_modules/.package-lock.json ## type-check everything, tests included
	npm run typecheck

lint: node_modules/.package-lock.json ## eslint, prettier --check and the dependency rule (.dependency-cruiser.cjs, docs/architecture.md)
	npm run lint

test: node_modules/.package-lock.json ## unit tests (no servers)
	npm test

check: node_modules/.package-lock.json ## everything CI runs: typecheck, unit tests, stack up, integration tests, stack down
	deployments/local/check.sh

itest: node_modules/.package-lock.json ## integration tests against the running stack
	npm run itest

# CHAOS_SEED=<n> reproduces a run; CHAOS_ONLY=name,name runs some scenarios (see test/chaos/faults.ts).
chaos: node_modules/.package-lock.json ## fault injection + hostile input on the real stack (started if needed); writes docs/reliability.md
	deployments/local/chaos.sh

# --- the stack for integration tests: its data is deleted by itest-down ---
itest-up: node_modules/.package-lock.json ## install what is missing, start the stack, wait until healthy, print endpoints
ifeq ($(USE_DOCKER),1)
	$(COMPOSE_TEST) up -d --wait $(INFRA)
	$(COMPOSE_TEST) run --rm kafka-init
	$(COMPOSE_TEST) run --rm minio-init
	@$(STACK) endpoints
else
	$(STACK) up --profile itest
endif

itest-migrate: node_modules/.package-lock.json ## apply pending migrations
	$(MIGRATE) up

itest-rollback: node_modules/.package-lock.json ## undo the last migration
	$(MIGRATE) down

itest-down: node_modules/.package-lock.json ## stop every server and delete the stack's data
ifeq ($(USE_DOCKER),1)
	$(COMPOSE_TEST) down -v --remove-orphans
else
	$(STACK) down --profile itest --purge
endif

# --- the same stack for development: data survives dev-down/dev-up ---
dev-up: node_modules/.package-lock.json ## start the development stack (data kept across restarts)
ifeq ($(USE_DOCKER),1)
	$(COMPOSE_DEV) up -d --wait $(INFRA)
	$(COMPOSE_DEV) run --rm kafka-init
	$(COMPOSE_DEV) run --rm minio-init
	@$(STACK) endpoints
else
	$(STACK) up --profile dev
endif

dev-migrate: node_modules/.package-lock.json ## apply pending migrations to the development database
	$(MIGRATE) up

dev-rollback: node_modules/.package-lock.json ## undo the last development migration
	$(MIGRATE) down

dev-down: node_modules/.package-lock.json ## stop the development stack, keeping its data
ifeq ($(USE_DOCKER),1)
	$(COMPOSE_DEV) --profile services --profile observability down
else
	$(STACK) down --profile dev
endif

# --- everything: stack and services ---
up: dev-up dev-migrate ## install and start the stack and the services in the background, print endpoints
	npx --no-install tsx deployments/local/services.ts start
	@$(STACK) endpoints

down: ## stop the services and the stack
	-npx --no-install tsx deployments/local/services.ts stop
	$(STACK) down --profile dev

status: ## each server and service up or down (the processor replicas each with its port)
	@$(STACK) status --profile dev || true
	@npx --no-install tsx deployments/local/services.ts status || true

# --- the whole system in containers (docker-compose.yml; needs a Docker engine) ---
compose-up: ## build the images and start everything with Docker Compose (needs .env: see .env.example)
	@test -f .env || { echo "no .env: cp .env.example .env and replace every placeholder" >&2; exit 1; }
	BUILD_VERSION="$${BUILD_VERSION:-$$(node -p 'require("./package.json").version')}" \
	GIT_COMMIT="$${GIT_COMMIT:-$$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
	GIT_BRANCH="$${GIT_BRANCH:-$$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)}" \
	BUILD_TIME="$${BUILD_TIME:-$$(date -u +%Y-%m-%dT%H:%M:%SZ)}" \
	docker compose -f docker-compose.yml up -d --build

compose-down: ## stop the Compose system and delete its volumes
	docker compose -f docker-compose.yml down -v --remove-orphans
