#!/usr/bin/env bash
# The ban daemons the sshguard and CrowdSec tests run in throwaway namespaces: sshguard 2.4.2,
# crowdsec 1.4.6 and its firewall bouncer. Nothing is started on the host: a policy-rc.d that
# refuses every start is in place for the apt-get only (an existing one is left as it is).
# crowdsec's postinst registers with the central API and fails offline; Debian's documented
# opt-out is a non-empty online_api_credentials.yaml, written before the package is configured
# (the tests run their own config.yaml without online_client in a private overlay of /etc/crowdsec).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# What this release's archive has: Debian 11 has no sshguard and no crowdsec-firewall-bouncer
# (its crowdsec, 1.0.9, is of no use to the tests without one); the tests skip what is absent.
in_archive() { [ -n "$(apt-cache show "$1" 2>/dev/null)" ]; }
packages=()
if in_archive sshguard; then packages+=(sshguard); fi
if in_archive crowdsec && in_archive crowdsec-firewall-bouncer; then
    packages+=(crowdsec crowdsec-firewall-bouncer)
fi
[ "${#packages[@]}" -gt 0 ] || exit 0
installed=$(dpkg-query -W -f='${db:Status-Status}\n' "${packages[@]}" 2>/dev/null \
    | grep -c '^installed$' || true)
[ "$installed" = "${#packages[@]}" ] && exit 0

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

mkdir -p /etc/crowdsec
capi=/etc/crowdsec/online_api_credentials.yaml
if [ ! -s "$capi" ]; then
    echo '# no central API: offline (unban tests)' >"$capi"
fi

apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
