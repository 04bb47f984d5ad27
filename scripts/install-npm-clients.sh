#!/usr/bin/env bash
# Installs the real clients the suite drives through ccobs proxy (tests/test_real_clients.py),
# Claude Code and Codex CLI, at the versions pinned in tests/clients/package-lock.json, when
# a binary is missing or the lock file changed since the last install.
# --ignore-scripts: both native binaries ship inside the registry packages (Claude Code's in
# @anthropic-ai/claude-code-linux-x64, Codex's in the npm alias @openai/codex-linux-x64), so
# no install script needs to run and nothing is fetched from outside the npm registry.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
claude=node_modules/@anthropic-ai/claude-code-linux-x64/claude
codex=$(compgen -G 'node_modules/@openai/codex-linux-x64/vendor/*/bin/codex' | head -n 1 || true)
if [ -x "$claude" ] && [ -n "$codex" ] && [ -x "$codex" ] \
  && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  # Debian's own nodejs and npm are enough: npm only unpacks the pinned packages, and the
  # clients are native binaries that do not run on the system's node.
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: nodejs npm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
fi
echo "installing the real clients pinned in tests/clients/package-lock.json"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
