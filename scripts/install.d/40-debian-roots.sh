#!/usr/bin/env bash
# What scripts/debian-root needs to build Debian 11 and 13 roots on this Debian 12 machine:
# debootstrap and Debian's archive keys (bookworm's keyring holds trixie's and bullseye's keys).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    debootstrap debian-archive-keyring >/dev/null
