#!/usr/bin/env bash
# Install what unban and its tests need on Debian 12 (run as root): the firewall tools, the
# services the integration tests start (fail2ban, sshd), and .venv with unban and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    iptables nftables ipset iproute2 kmod procps \
    fail2ban openssh-server openssh-client sqlite3 \
    python3 python3-venv python3-pip >/dev/null

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
ln -sf "$PWD/.venv/bin/unban" /usr/local/sbin/unban
echo "installed: $(command -v unban)"
