#!/usr/bin/env bash
# Starts a local, unprivileged Gantry node in ./run and runs its boot the way
# an image does: migrator, storewolf, apiserver, early-boot-config (with
# examples/user-data.toml), settings-committer, sundog, settings-committer,
# settings-applier --all. Rendered files land under run/root; restart commands
# go to a logging stand-in for systemctl there (run/root/restarts.log).
# Ctrl-C stops the node; run it again and it boots again from its datastore.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN_DIR:-run}
VARIANT=${VARIANT:-metal-dev}
USER_DATA=${USER_DATA:-examples/user-data.toml}
ROOT="$RUN/root"
mkdir -p "$ROOT/usr/bin"
cat > "$ROOT/usr/bin/systemctl" <<'SHIM'
#!/bin/sh
echo "$(date -u +%H:%M:%S) systemctl $* (changed: ${CHANGED_SETTINGS:-all})" >> "$GANTRY_ROOT/restarts.log"
SHIM
chmod +x "$ROOT/usr/bin/systemctl"
cat > "$RUN/os-release" <<REL
NAME=Gantry
PRETTY_NAME="Gantry (local $VARIANT)"
VARIANT_ID=$VARIANT
VERSION_ID=$(sed -n 's/^const Version = "\(.*\)"/\1/p' pkg/version/version.go)
BUILD_ID=local
REL
export PATH="$PWD/bin:$PATH"
applier_flags=(--root "$ROOT" --templates-dir "variants/$VARIANT/templates" --service-runner exec)

migrator --datastore-path "$RUN/datastore" --migration-directory "$RUN/migrations" --manifest "$RUN/manifest.json" \
  --migrate-to-version-from-os-release --os-release "$RUN/os-release"
storewolf --data-store-base-path "$RUN/datastore" --defaults-dir "variants/$VARIANT/defaults.d" --os-release "$RUN/os-release"
apiserver --datastore-path "$RUN/datastore/current" --socket-path "$RUN/api.sock" --os-release "$RUN/os-release" "${applier_flags[@]}" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 200); do apiclient --socket-path "$RUN/api.sock" -u /tx/list >/dev/null 2>&1 && break; sleep 0.05; done

S=(--socket-path "$RUN/api.sock")
early-boot-config "${S[@]}" --marker "$RUN/early-boot-config.ran" --user-data-file "$USER_DATA" --os-release "$RUN/os-release"
settings-committer "${S[@]}"
sundog "${S[@]}"
settings-committer "${S[@]}"
settings-applier --all "${S[@]}" "${applier_flags[@]}" || echo "settings-applier reported problems (see above)" >&2

api="bin/apiclient --socket-path $RUN/api.sock"
cat <<MSG

Gantry node running (variant $VARIANT); settings API on $RUN/api.sock.
Rendered files are under $ROOT/etc; restarts are logged in $ROOT/restarts.log.
In another terminal:

  $api get settings
  $api set motd="hello from the API"         # then: cat $ROOT/etc/motd
  $api set --dry-run 'kernel.sysctl."vm.swappiness"=10'
  $api -u "/settings?keys=settings.motd"
  $api -m PATCH -u '/settings?tx=FOO' -d '{"ntp": {"time-servers": ["time.example"]}}'
  $api -u '/tx/plan?tx=FOO'
  $api -m POST -u '/tx/commit_and_apply?tx=FOO'

Ctrl-C stops the node; its datastore stays in $RUN/datastore.
MSG
wait $pid
