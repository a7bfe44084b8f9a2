#!/usr/bin/env bash
# What scripts/build-deb and its test need on this Debian release: dpkg-deb (in dpkg), git (the
# package holds the files git tracks), a C compiler and Python's headers (python-iptables is
# built from source into the package), and debootstrap with Debian's keys for the throwaway root
# of the same release the .deb is installed into (Debian 12 here, 13 and 11 in
# scripts/debian-root's roots, which run this too).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    dpkg git gcc libc6-dev python3-dev python3-venv debootstrap debian-archive-keyring >/dev/null
