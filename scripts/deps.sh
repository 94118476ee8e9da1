#!/usr/bin/env bash
# Install the Debian 12 packages simsync builds and tests with. Safe to run
# again; uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config liblmdb-dev libsodium-dev libssl-dev
      libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libzstd-dev
      libbluetooth-dev libusb-1.0-0-dev python3 jq clang libclang-rt-14-dev valgrind
      lmdb-utils
      # tests/vm: QEMU, the initramfs tools, and the libraries the guest's
      # BlueZ and D-Bus programs are copied with
      qemu-system-x86 cpio kmod libglib2.0-0 libdbus-1-3 libasound2 libdw1
      libreadline8 libexpat1 libapparmor1 libaudit1)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
