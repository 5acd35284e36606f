#!/bin/sh
# Turns on etcd's authentication for ckpt (the Job etcd-auth-setup): the
# user root (role root), the role ckpt with read and write on the
# coordinators' key prefix and nothing else, the coordinators' user with
# that role alone, then `auth enable`. Idempotent: what exists is kept, the
# role's permission and the user's password are set again from the
# Secret, and enabling auth twice changes nothing. Passwords go through
# stdin and the environment, never the command line.
#
# etcdctl reads the endpoints and the client certificate from
# ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY; besides:
#   ROOT_PASSWORD_FILE  root's password (set at its creation; change it later with `etcdctl user passwd root`)
#   USER_PASSWORD_FILE  the coordinators' password
#   ETCD_USER           the coordinators' user (ckpt); give no user the name of a client certificate's
#                       common name, which etcd takes as the user of a request without a password
#   KEY_PREFIX          the coordinators' --etcd-prefix (/ckpt/)
set -eu

root_password=$(cat "${ROOT_PASSWORD_FILE:?}")
user_password=$(cat "${USER_PASSWORD_FILE:?}")
user=${ETCD_USER:-ckpt}
role=ckpt
prefix=${KEY_PREFIX:-/ckpt/}
[ -n "$root_password" ] && [ -n "$user_password" ] || { echo "etcd-auth-setup: empty password file" >&2; exit 1; }

# Before auth is on, etcd ignores the credentials; after, every call needs root's.
export ETCDCTL_USER=root ETCDCTL_PASSWORD="$root_password"

if ! etcdctl user get root >/dev/null 2>&1; then
  printf '%s\n' "$root_password" | etcdctl user add root --interactive=false
fi
etcdctl user grant-role root root

etcdctl role get "$role" >/dev/null 2>&1 || etcdctl role add "$role"
etcdctl role grant-permission "$role" --prefix=true readwrite "$prefix"

if etcdctl user get "$user" >/dev/null 2>&1; then
  printf '%s\n' "$user_password" | etcdctl user passwd "$user" --interactive=false
else
  printf '%s\n' "$user_password" | etcdctl user add "$user" --interactive=false
fi
etcdctl user grant-role "$user" "$role"

etcdctl auth enable
echo "etcd-auth-setup: auth enabled; user $user may read and write $prefix alone" >&2
