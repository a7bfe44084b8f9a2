#!/usr/bin/env bash
# The whole test suite (unit, CLI, and the root integration tests in throwaway network
# namespaces), then mypy and ruff. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
scripts/lint.sh
