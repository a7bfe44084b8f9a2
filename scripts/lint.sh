#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/mypy
# Python 3.9 as the target too (requires-python >= 3.9). mypy 1.19 and later cannot check for
# 3.9; a venv on Python 3.9 gets an older mypy that can (Debian 11's: CI runs this script in
# scripts/debian-root bullseye).
if .venv/bin/mypy --python-version 3.9 --version >/dev/null 2>&1; then
    .venv/bin/mypy --python-version 3.9
else
    echo "lint: $(.venv/bin/mypy --version) cannot check for Python 3.9 (the Debian 11 run does)"
fi
.venv/bin/ruff check unban tests scripts ansible_collections
.venv/bin/ruff format --check unban tests scripts  # not the collection: its modules keep Ansible's own layout
