#!/usr/bin/env bash
# What the Ansible collection (ansible_collections/unban/fleet) and its integration test need:
# Debian's ansible-core (ansible-playbook, ansible-doc, ansible-galaxy, ansible-test) and the
# OpenSSH client it connects with (the test's managed hosts are sshd in throwaway namespaces).
# ansible-core starts no service; nothing else is installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Debian 11's archive has no ansible-core (its ansible 2.10 is another package): install it only
# where the release has it.
wanted=(openssh-client)
if [ -n "$(apt-cache show ansible-core 2>/dev/null)" ]; then wanted+=(ansible-core); fi
need=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
