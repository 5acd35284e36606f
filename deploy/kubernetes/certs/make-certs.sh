#!/usr/bin/env bash
# Makes what the Secrets of a ckpt deployment hold (three CAs, the server
# and client certificates, passwords and the operators' token) in OUT_DIR,
# and OUT_DIR/kustomization.yaml: an overlay of the word count example
# (or of KUSTOMIZATION) whose Secrets are these files instead of the
# placeholders. Deploy it with `kubectl apply -k OUT_DIR`.
#
#   deploy/kubernetes/certs/make-certs.sh OUT_DIR
#
# Run it again to renew the certificates: the CAs and the secrets
# (passwords, token) already in OUT_DIR are kept, every certificate and its
# key are made anew. Keep OUT_DIR out of version control, and the CA keys
# (OUT_DIR/ca/*.key) offline once the certificates are made.
#
# Environment:
#   NAMESPACE      namespace of the deployment, in the names certificates are valid for (ckpt)
#   JOBS           jobs whose workers get a client certificate worker-<job>-tls (wordcount)
#   DAYS           validity of the server and client certificates in days (365)
#   ETCD_MEMBERS   members of the etcd StatefulSet, each named in the certificate (3)
#   NATS_SERVERS   servers of the NATS StatefulSet, each named in the certificate (3)
#   KUSTOMIZATION  the kustomization the overlay replaces the Secrets of
#                  (deploy/kubernetes/examples/wordcount); it must have a
#                  placeholder of every Secret, worker-<job>-tls included
set -euo pipefail

if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
out=$1
ns=${NAMESPACE:-ckpt}
jobs=${JOBS:-wordcount}
days=${DAYS:-365}
etcd_members=${ETCD_MEMBERS:-3}
nats_servers=${NATS_SERVERS:-3}
here=$(cd "$(dirname "$0")" && pwd)
target=${KUSTOMIZATION:-$here/../examples/wordcount}
[ -f "$target/kustomization.yaml" ] || { echo "make-certs.sh: no kustomization.yaml in $target" >&2; exit 2; }

umask 077
mkdir -p "$out/ca" "$out/secrets"
out=$(cd "$out" && pwd)
target=$(cd "$target" && pwd)
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# ca NAME CN: a CA certificate and key in ca/NAME.{crt,key}, unless there already.
ca() {
  [ -s "$out/ca/$1.crt" ] && [ -s "$out/ca/$1.key" ] && return
  openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$out/ca/$1.key" -out "$out/ca/$1.crt" 2>/dev/null
}

# leaf SECRET CA CN USAGE [SANS]: SECRET/{ca.crt,tls.crt,tls.key}, a
# certificate for CN signed by CA, for USAGE (serverAuth, clientAuth or
# both), valid for SANS (openssl subjectAltName syntax).
leaf() {
  local dir=$out/$1 ext
  mkdir -p "$dir"
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$4"
  [ $# -ge 5 ] && ext="$ext
subjectAltName=$5"
  openssl req "${ec[@]}" -subj "/CN=$3" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  openssl x509 -req -in "$dir/tls.csr" -CA "$out/ca/$2.crt" -CAkey "$out/ca/$2.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile <(printf '%s\n' "$ext") \
    -out "$dir/tls.crt" 2>/dev/null
  rm "$dir/tls.csr"
  cp "$out/ca/$2.crt" "$dir/ca.crt"
}

# secret SECRET KEY: a random secret (64 hex digits, no newline) in secrets/SECRET/KEY, unless there already.
secret() {
  mkdir -p "$out/secrets/$1"
  [ -s "$out/secrets/$1/$2" ] || printf '%s' "$(openssl rand -hex 32)" >"$out/secrets/$1/$2"
}

# names NAME...: NAME, NAME.<ns>, NAME.<ns>.svc and NAME.<ns>.svc.cluster.local as DNS names.
names() {
  local n list=""
  for n in "$@"; do list="$list,DNS:$n,DNS:$n.$ns,DNS:$n.$ns.svc,DNS:$n.$ns.svc.cluster.local"; done
  printf '%s' "${list#,}"
}

# members STATEFULSET SERVICE COUNT: the pods' names under their headless
# Service (etcd-0.etcd, ...), each by itself: a wildcard covers none of the
# two-label ones (*.etcd does not match etcd-0.etcd for OpenSSL, Node.js or
# Go), and the wildcards of the longer forms cover more pods to come.
members() {
  local i list=""
  for ((i = 0; i < $3; i++)); do list="$list $1-$i.$2"; done
  printf '%s' "${list# }"
}

# Three CAs, so that a certificate of one plane opens nothing in another.
ca grpc ckpt-grpc-ca
ca etcd ckpt-etcd-ca
ca nats ckpt-nats-ca

# gRPC: the coordinators' server certificate (also for localhost, the
# dashboard through a port-forward), and the client certificates
# whose common names the access policy (access-policy.json) names.
leaf coordinator-tls grpc ckpt-coordinator-server serverAuth "$(names ckpt-coordinator),DNS:localhost,IP:127.0.0.1"
leaf coordinator-peer-tls grpc ckpt-coordinator clientAuth
leaf operator-tls grpc ckpt-operator clientAuth
for job in $jobs; do leaf "worker-$job-tls" grpc "worker-$job" clientAuth; done

# etcd: members (server and peer), reached also through a port-forward
# (localhost) and from inside a member's pod (127.0.0.1); the
# coordinators' and the administrators' client certificates, whose common
# names are no etcd user: a certificate alone grants nothing.
# shellcheck disable=SC2046 # one name per word
leaf etcd-server-tls etcd etcd serverAuth,clientAuth \
  "$(names etcd '*.etcd' $(members etcd etcd "$etcd_members")),DNS:localhost,IP:127.0.0.1"
leaf etcd-client-tls etcd ckpt-coordinator clientAuth
leaf etcd-admin-tls etcd etcd-admin clientAuth

# NATS: servers for clients (Service nats, and the names servers advertise),
# for each other (routes), and through a port-forward (localhost).
# shellcheck disable=SC2046
leaf nats-server-tls nats nats serverAuth,clientAuth \
  "$(names nats '*.nats-headless' $(members nats nats-headless "$nats_servers")),DNS:localhost,IP:127.0.0.1"

# etcd's token signing key pair, the same for every member (kept, like the passwords).
mkdir -p "$out/secrets/etcd-jwt"
if [ ! -s "$out/secrets/etcd-jwt/jwt.key" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/secrets/etcd-jwt/jwt.key" 2>/dev/null
  openssl pkey -in "$out/secrets/etcd-jwt/jwt.key" -pubout -out "$out/secrets/etcd-jwt/jwt.pub"
fi
secret etcd-auth root-password
secret etcd-auth ckpt-password
secret nats-users coordinator-password
secret nats-users system-password
for job in $jobs; do secret nats-users "worker-$job-password"; done
secret ckpt-tokens operator

# The overlay: every Secret above replaces the placeholder of the same name.
{
  echo "# Made by deploy/kubernetes/certs/make-certs.sh: the Secrets of $(realpath --relative-to="$here/../../.." "$target" 2>/dev/null || echo "$target")"
  echo "# with the certificates and secrets of this directory. Keep it out of version control."
  echo 'apiVersion: kustomize.config.k8s.io/v1beta1'
  echo 'kind: Kustomization'
  echo 'resources:'
  echo "  - $(realpath --relative-to="$out" "$target")"
  echo 'generatorOptions:'
  echo '  disableNameSuffixHash: true'
  echo 'secretGenerator:'
  for dir in "$out"/*-tls; do
    name=$(basename "$dir")
    printf '  - name: %s\n    behavior: replace\n    files:\n' "$name"
    for f in ca.crt tls.crt tls.key; do printf '      - %s/%s\n' "$name" "$f"; done
  done
  for dir in "$out"/secrets/*; do
    name=$(basename "$dir")
    printf '  - name: %s\n    behavior: replace\n    files:\n' "$name"
    for f in "$dir"/*; do printf '      - secrets/%s/%s\n' "$name" "$(basename "$f")"; done
  done
} >"$out/kustomization.yaml"

echo "make-certs.sh: certificates and secrets in $out; deploy with: kubectl apply -k $out" >&2
