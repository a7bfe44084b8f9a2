#!/usr/bin/env bash
# What scripts/build-deb and its test need on this Debian 12 machine: dpkg-deb (in dpkg), a C
# compiler and Python's headers (python-iptables is built from source into the package), and
# debootstrap with Debian's keys for the throwaway Debian 12 root the .deb is installed into.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    dpkg gcc libc6-dev python3-dev python3-venv debootstrap debian-archive-keyring >/dev/null
