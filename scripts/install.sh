#!/usr/bin/env bash
# Install what unban and its tests need on Debian 11, 12 or 13 (run as root): the firewall tools,
# the services the integration tests start (fail2ban, sshd), what python-iptables needs to build
# (it has no wheels), and .venv with unban and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    iptables nftables ipset iproute2 kmod procps \
    fail2ban openssh-server openssh-client sqlite3 \
    python3 python3-venv python3-pip python3-dev gcc libc6-dev >/dev/null

# What one part of the suite needs beyond that (ufw, firewalld, Debian roots, ...): one script
# each, run in name order, so each part's install steps live beside nothing else's.
for part in scripts/install.d/*.sh; do
    [ -e "$part" ] || continue
    bash "$part"
done

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
# Debian 11's venv pip (20.3) cannot install this project editable from pyproject.toml alone.
if ! .venv/bin/python -c 'import pip, sys; sys.exit(int(pip.__version__.split(".")[0]) < 22)'; then
    .venv/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=23'
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
ln -sf "$PWD/.venv/bin/unban" /usr/local/sbin/unban
echo "installed: $(command -v unban)"
