#!/bin/sh
# Starts the word count worker from its V8 startup snapshot
# (worker.snapshot.blob beside this file, which `make build` writes), or,
# when this node cannot load that snapshot, from its bundle
# (bundled-worker.js), saying why. The flags are the worker's:
#
#   sh dist/examples/wordcount/start-worker.sh --coordinator ... (as worker.ts)
#
# A snapshot loads only in the node binary that wrote it (same version, V8
# flags, platform and architecture). Node refuses another one before any
# JavaScript runs: it prints "Failed to load the startup snapshot because
# ..." and exits with status 14; a damaged file makes it stop on a failed
# check (SIGTRAP, SIGABRT) or crash (SIGSEGV), also before any JavaScript
# runs. So the worker started
# from the snapshot writes its pid into the file CKPT_SNAPSHOT_STARTED_FILE
# names as it starts (worker.ts); a process that ends without having
# written it never ran the worker, and the worker then starts from the
# bundle, with a line on stderr giving node's exit status. A worker that ran
# and ended (even by a crash) is not started again: its status is this
# script's.
#
# Environment: CKPT_WORKER_SNAPSHOT, another snapshot file (empty: none, the
# bundle at once); NODE, the node binary (default: node on the PATH);
# TMPDIR, where the start marker goes (default /tmp). SIGTERM, SIGINT and
# SIGHUP are passed on to the worker, which stops gracefully.

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 1
node=${NODE:-node}
bundle="$here/bundled-worker.js"
blob=${CKPT_WORKER_SNAPSHOT-"$here/worker.snapshot.blob"}

say() {
  printf 'start-worker: %s\n' "$*" >&2
}

if [ -z "$blob" ]; then
  exec "$node" "$bundle" "$@"
fi
if [ ! -r "$blob" ]; then
  say "no readable startup snapshot at $blob; starting the worker from the bundle $bundle"
  exec "$node" "$bundle" "$@"
fi
if ! marker=$(mktemp "${TMPDIR:-/tmp}/ckpt-worker-started.XXXXXX"); then
  say "cannot make a start marker in ${TMPDIR:-/tmp} to check the startup snapshot; starting the worker from the bundle $bundle"
  exec "$node" "$bundle" "$@"
fi

CKPT_SNAPSHOT_STARTED_FILE=$marker "$node" --snapshot-blob "$blob" "$bundle" "$@" &
child=$!
trapped=''
trap 'trapped=1; stopping=1; kill -TERM "$child" 2>/dev/null' TERM
trap 'trapped=1; stopping=1; kill -INT "$child" 2>/dev/null' INT
trap 'trapped=1; kill -HUP "$child" 2>/dev/null' HUP
stopping=''
# A trapped signal interrupts wait; wait again until the process has ended.
while :; do
  trapped=''
  wait "$child"
  status=$?
  [ -n "$trapped" ] || break
done
trap - TERM INT HUP
started=''
[ -s "$marker" ] && started=1
rm -f "$marker"
if [ -n "$started" ] || [ -n "$stopping" ]; then
  exit "$status"
fi

case $status in
  14) why="node refused it (exit status 14; node's reason is above: a snapshot of another node binary, other V8 flags, or an unreadable file)" ;;
  133) why="V8 stopped reading it (SIGTRAP, status 133: a damaged file, its checksum differs)" ;;
  134) why="node aborted reading it (SIGABRT, status 134: a damaged or truncated file)" ;;
  139) why="node crashed reading it (SIGSEGV, status 139: a damaged or truncated file)" ;;
  *) why="node ended with status $status before the worker ran" ;;
esac
say "cannot start the worker from the startup snapshot $blob with node $("$node" --version 2>/dev/null): $why; starting it from the bundle $bundle"
exec "$node" "$bundle" "$@"
