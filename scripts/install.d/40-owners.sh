#!/usr/bin/env bash
# The firewall managers the owners' integration tests run in throwaway namespaces: ufw,
# firewalld (on a private system bus, so dbus too), and the .debs of netfilter-persistent,
# iptables-persistent and ipset-persistent, downloaded only: Debian's ufw Breaks them, so the
# tests unpack them into a private overlay (tests/integration/owner_fixtures.py).
# No service starts on this host: policy-rc.d refuses every start while apt-get runs.
set -euo pipefail

DEBS=/var/cache/unban-tests/debs
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

need=()
for pkg in ufw firewalld dbus dbus-daemon; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$DEBS"
for pkg in netfilter-persistent iptables-persistent ipset-persistent; do
    if ! compgen -G "$DEBS/${pkg}_*.deb" >/dev/null; then
        (cd "$DEBS" && apt-get -o DPkg::Lock::Timeout=300 download -qq "$pkg")
    fi
done
