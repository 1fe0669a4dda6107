#!/usr/bin/env bash
# A small CA and the certificates for etcd over TLS with client certificates
# (docs/security.md): DIR/ca.pem signs DIR/etcd.pem (the server: 127.0.0.1,
# localhost and any NAMEs given, each an IP address or a DNS name) and
# DIR/master.pem (the masters' client certificate).  Keys are mode 0600.
# What exists already is kept; run it again with new NAMEs after removing
# etcd.pem to reissue the server's.
#   usage: scripts/etcd-tls.sh DIR [NAME...]
set -euo pipefail
dir=${1:?usage: scripts/etcd-tls.sh DIR [NAME...]}
shift
command -v openssl >/dev/null || { echo "etcd-tls.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077
days=3650
if [ ! -e ca.pem ]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout ca-key.pem -out ca.pem -days "$days" -subj "/CN=trainyard etcd CA" 2>/dev/null
fi
# issue NAME SUBJECT_CN EXTENDED_USAGE SAN
issue() {
  local name=$1 cn=$2 usage=$3 san=$4
  [ -e "$name.pem" ] && return 0
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
    "$usage" "${san:+subjectAltName=$san
}" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -out "$name.pem" -days "$days" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
san="IP:127.0.0.1,DNS:localhost"
for n in "$@"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
done
issue etcd etcd serverAuth,clientAuth "$san"
issue master trainyard-master clientAuth ""
chmod 0644 ca.pem etcd.pem master.pem
echo "$dir: ca.pem, etcd.pem + etcd-key.pem (server), master.pem + master-key.pem (client)"
