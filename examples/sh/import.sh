#!/usr/bin/env bash
# Uploads one JSON or NDJSON file to the ingress with curl.
#   examples/sh/import.sh <tenant> <file> [ingress-url]
# Set TOKEN to send "Authorization: Bearer $TOKEN" when the ingress has auth enabled.
set -euo pipefail
tenant=${1:?usage: import.sh <tenant> <file> [ingress-url]}
file=${2:?usage: import.sh <tenant> <file> [ingress-url]}
url=${3:-${INGRESS_URL:-http://127.0.0.1:3000}}
case "$file" in
  *.ndjson|*.jsonl) type=application/x-ndjson ;;
  *) type=application/json ;;
esac
auth=()
[ -n "${TOKEN:-}" ] && auth=(-H "Authorization: Bearer $TOKEN")
curl --silent --show-error --fail-with-body \
  -H "Content-Type: $type" \
  -H "X-Filename: $(basename "$file")" \
  "${auth[@]}" \
  --data-binary "@$file" \
  "$url/import/$tenant"
echo
