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
  echo "npm is needed to install the real clients (tests/clients); install Node.js and npm" >&2
  exit 1
fi
echo "installing the real clients pinned in tests/clients/package-lock.json"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
