# The pipeline's entry points. Servers run natively (no Docker engine needed):
# see deployments/local/ and the README.
SHELL := /bin/bash
STACK := npx --no-install tsx deployments/local/stack.ts
MIGRATE := npx --no-install tsx sinks/postgres/migrate-cli.ts

.PHONY: help install build typecheck test check itest \
        up down status \
        itest-up itest-migrate itest-rollback itest-down \
        dev-up dev-migrate dev-rollback dev-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json ## npm ci and install the stack's servers (cached in ~/.cache/etl-stack)
	$(STACK) install

build: node_modules/.package-lock.json ## compile TypeScript to dist/
	npm run build

typecheck: node_modules/.package-lock.json ## type-check everything, tests included
	npm run typecheck

test: node_modules/.package-lock.json ## unit tests (no servers)
	npm test

check: node_modules/.package-lock.json ## everything CI runs: typecheck, unit tests, stack up, integration tests, stack down
	deployments/local/check.sh

itest: node_modules/.package-lock.json ## integration tests against the running stack
	npm run itest

# --- the stack for integration tests: its data is deleted by itest-down ---
itest-up: node_modules/.package-lock.json ## install what is missing, start the stack, wait until healthy, print endpoints
	$(STACK) up --profile itest

itest-migrate: node_modules/.package-lock.json ## apply pending migrations
	$(MIGRATE) up

itest-rollback: node_modules/.package-lock.json ## undo the last migration
	$(MIGRATE) down

itest-down: node_modules/.package-lock.json ## stop every server and delete the stack's data
	$(STACK) down --profile itest --purge

# --- the same stack for development: data survives dev-down/dev-up ---
dev-up: node_modules/.package-lock.json ## start the development stack (data kept across restarts)
	$(STACK) up --profile dev

dev-migrate: node_modules/.package-lock.json ## apply pending migrations to the development database
	$(MIGRATE) up

dev-rollback: node_modules/.package-lock.json ## undo the last development migration
	$(MIGRATE) down

dev-down: node_modules/.package-lock.json ## stop the development stack, keeping its data
	$(STACK) down --profile dev

# --- everything: stack and services ---
up: dev-up dev-migrate ## install and start the stack and the services in the background, print endpoints
	npx --no-install tsx deployments/local/services.ts start
	@$(STACK) endpoints

down: ## stop the services and the stack
	-npx --no-install tsx deployments/local/services.ts stop
	$(STACK) down --profile dev

status: ## each server up or down
	@$(STACK) status --profile dev || true
