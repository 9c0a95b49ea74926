#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use (run as root). Idempotent.
set -euo pipefail
# mptcpize is its own package (not part of mptcpd): `mptcpize run CMD` makes a plain TCP program use MPTCP.
pkgs=(iproute2 iputils-ping nftables tshark tcpdump iperf3 mptcpd mptcpize python3 g++ make nginx apache2-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${pkgs[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (sudo npm run deps)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
