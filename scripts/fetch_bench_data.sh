#!/usr/bin/env bash
# Fetch the ~70 Mb human FASTA used by `genolm bench io`: hs37chrXtrunc.fa.gz from Debian's
# smalt-examples package (GPL-3, the SMALT authors), into target/bench-data/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench-data && cd target/bench-data
[ -f hs37chrXtrunc.fa.gz ] && exit 0
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download smalt-examples >/dev/null 2>&1 || { apt-get update -qq && apt-get download smalt-examples; })
dpkg-deb -x "$tmp"/smalt-examples_*.deb "$tmp/x"
cp "$tmp/x/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz" .
rm -rf "$tmp"
ls -la hs37chrXtrunc.fa.gz
