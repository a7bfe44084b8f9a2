#!/usr/bin/env bash
# sudo, for the test of `sudo unban me` under a sudoers line (tests/integration/test_session.py
# writes that line into a private overlay of /etc, never into the host's sudoers). No service.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v sudo >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends sudo >/dev/null
fi
