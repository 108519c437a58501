#!/bin/sh
# Installs the Debian packages rosa needs, only those missing (quiet when all are there).
set -e
PKGS="build-essential pkg-config libopenblas-openmp-dev libdnnl-dev libpcre2-dev libcjson-dev libutf8proc-dev libyaml-dev python3-torch python3-numpy clang libclang-rt-14-dev libomp-dev strace"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "rosa: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
