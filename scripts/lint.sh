#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/mypy
.venv/bin/ruff check unban tests scripts
.venv/bin/ruff format --check unban tests scripts
