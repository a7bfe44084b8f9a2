#!/usr/bin/env bash
# Install what unban and its tests need on Debian 12 (run as root): the firewall tools, the
# services the integration tests start (fail2ban, sshd), and .venv with unban and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    iptables nftables ipset iproute2 kmod procps \
    fail2ban openssh-server openssh-client sqlite3 \
    python3 python3-venv python3-pip >/dev/null

# What one part of the suite needs beyond that (ufw, firewalld, Debian roots, ...): one script
# each, run in name order, so each part's install steps live beside nothing else's.
for part in scripts/install.d/*.sh; do
    [ -e "$part" ] || continue
    bash "$part"
done

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
ln -sf "$PWD/.venv/bin/unban" /usr/local/sbin/unban
echo "installed: $(command -v unban)"
