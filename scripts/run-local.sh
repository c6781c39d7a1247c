#!/usr/bin/env bash
# Starts a local, unprivileged Gantry node in ./run: storewolf creates the
# datastore from the metal-dev defaults, apiserver serves the settings API on
# run/api.sock, the launch transaction is committed and examples/user-data.toml
# is applied, as first boot would. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN_DIR:-run}
VARIANT=${VARIANT:-metal-dev}
USER_DATA=${USER_DATA:-examples/user-data.toml}
mkdir -p "$RUN"
bin/storewolf --data-store-base-path "$RUN/datastore" --defaults-dir "variants/$VARIANT/defaults.d" --variant "$VARIANT"
bin/apiserver --datastore-path "$RUN/datastore/current" --socket-path "$RUN/api.sock" --variant "$VARIANT" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
api="bin/apiclient --socket-path $RUN/api.sock"
for _ in $(seq 100); do $api -u /tx/list >/dev/null 2>&1 && break; sleep 0.05; done
# settings-committer: commit the defaults storewolf staged (422 means nothing to commit).
$api -m POST -u '/tx/commit?tx=gantry-launch' >/dev/null 2>&1 || true
if [ -f "$USER_DATA" ]; then $api apply "$USER_DATA"; fi
cat <<MSG

Gantry node running (variant $VARIANT); settings API on $RUN/api.sock. In another terminal:

  $api get settings
  $api set motd="hello from the API"
  $api -u "/settings?keys=settings.motd"
  $api -m PATCH -u /settings -d '{"kernel": {"sysctl": {"net.ipv4.ip_forward": "1"}}}'
  $api -u /tx
  $api -m POST -u /tx/commit_and_apply

Ctrl-C stops the node; its datastore stays in $RUN/datastore.
MSG
wait $pid
