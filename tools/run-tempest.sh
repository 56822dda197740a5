#!/bin/sh
# tox -e tempest: the plugin's tempest tests, with tempest's exit code.
#   TEMPEST_CONFIG=path      against the cloud that tempest.conf describes
#   TEMPEST_WORKSPACE=dir    against a tempest workspace's cloud
#   neither                  against the lab cloud on this machine; brought
#                            up when it is down, and then down again after
set -eu
regex=${TEMPEST_REGEX:-migration_tempest_plugin}
if [ -n "${TEMPEST_CONFIG:-}" ]; then
    exec tempest run --config-file "$TEMPEST_CONFIG" --regex "$regex" "$@"
fi
if [ -n "${TEMPEST_WORKSPACE:-}" ]; then
    cd "$TEMPEST_WORKSPACE"
    exec tempest run --regex "$regex" "$@"
fi
state=${MIGRATION_LAB_STATE:-/var/tmp/migration-lab}
brought_up=
if ! migration-lab cloud status --state-dir "$state" >/dev/null 2>&1; then
    echo "tempest: no lab cloud is up; bringing it up (a few minutes)"
    brought_up=yes
    # Whatever happens next, leave the machine as it was found.
    trap 'migration-lab cloud down --state-dir "$state"' EXIT
    trap 'exit 130' INT TERM
    migration-lab cloud up --state-dir "$state"
fi
cd "$state/cloud/tempest"
rc=0
tempest run --config-file etc/tempest.conf --regex "$regex" "$@" || rc=$?
[ -z "$brought_up" ] || echo "tempest: taking the lab cloud down again"
exit $rc
