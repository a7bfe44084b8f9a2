#!/usr/bin/env bash
# strace, for tests/integration/test_crash.py (it SIGKILLs `unban me` at each of its renames with
# strace's fault injection). No service.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v strace >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends strace >/dev/null
fi
