#!/usr/bin/env bash
# npm ci, with what @confluentinc/kafka-javascript needs to build librdkafka from its bundled
# source: its prebuilt binary is downloaded from a host this kind of machine cannot reach.
# CKJS_LINKING=dynamic links librdkafka against the system's OpenSSL, zlib, zstd, lz4, curl and
# SASL (without it, its configure step downloads those libraries' sources and fails offline).
set -euo pipefail
cd "$(dirname "$0")/../.."
packages=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libcurl4-openssl-dev libsasl2-dev pkg-config python3 make g++)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages to build librdkafka: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "[install] Debian packages to build librdkafka: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
CKJS_LINKING=dynamic npm ci --no-audit --no-fund
