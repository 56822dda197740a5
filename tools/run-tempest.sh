#!/bin/sh
# tox -e tempest: the plugin's tempest tests, with tempest's exit code.
#   TEMPEST_CONFIG=path      against the cloud that tempest.conf describes
#   TEMPEST_WORKSPACE=dir    against a tempest workspace's cloud
#   neither                  against the lab cloud on this machine: when one
#                            is up, on it as it is; otherwise brought up
#                            and, for each mode of MIGRATION_TEMPEST_STORAGE
#                            (local, shared, rbd: nova's disks in Ceph),
#                            switched to that instance storage (its computes
#                            restart) and tested; taken down at the end
# TEMPEST_REGEX narrows the plugin's tests (default: all of them, in each
# mode).
#
# The three modes in full take longer than CI's hour, so on the lab cloud
# MIGRATION_TEMPEST_SLICE chooses per mode (ignored with TEMPEST_REGEX):
#   all    every test in every mode (the default when
#          MIGRATION_TEMPEST_STORAGE names the modes)
#   ci     (the default otherwise, which CI runs) each mode but what
#          *_REST names, which runs the same road in another mode:
#          local: the volume-backed live migration (no instance disk, and
#          an instances path of each host's own: rbd runs it so);
#          shared: the volume tests (the volumes are in Ceph on every mode,
#          and only the root disk differs, which the live tests cover);
#          rbd: the option tests (they change the migration stream, not
#          where the disk lives, and run on local and shared) and the
#          variants of live and cold migration whose RBD path a test that
#          stays takes (auto live, cold confirm and revert)
#   rest   what ci leaves out (tox -e tempest-rest)
# The tests run one at a time: some reconfigure and restart nova-compute on
# both hosts, and two migrations at once would share two busy cores.
#
# tempest run discovers tests through the .stestr.conf of the folder it
# runs in, and writes one only when there is none: one written by another
# tempest install (another venv run in the same workspace first) sends
# discovery to that install's files ("module incorrectly imported").  So
# each run here first (re)writes it for the tempest on PATH, and
# TEMPEST_CONFIG runs in a folder of their own (TEMPEST_RUN_DIR, default
# under tox's env dir), never in the repository, whose .stestr.conf is the
# unit tests'.
set -eu
LOCAL_REST='VolumeBackedLiveMigrationTest'
SHARED_REST='test_volume_operations'
RBD_REST='test_migration_configurations|test_migration_operations'\
'|test_paused_guest_migrates_intact|test_there_and_back_again'\
'|test_cold_migration_of_stopped_server|test_live_then_cold_migration_back'\
'|test_cold_migration_moves_every_disk'

# plugin_regex [SELECTION]: tempest run's --regex for the plugin's tests
# that SELECTION matches (all of them when empty).  tempest run discovers
# tempest's own tests too, and TEMPEST_REGEX=test_volume would also select
# tempest.api.compute.admin.test_volume*.  A lookahead keeps a full test id
# working as well.
plugin_regex() {
    if [ -n "${1:-}" ]; then
        printf '%s\n' "^(?=migration_tempest_plugin\\.).*(?:$1)"
    else
        echo migration_tempest_plugin
    fi
}
regex=$(plugin_regex "${TEMPEST_REGEX:-}")

# plugin_except SELECTION: the --regex for the plugin's tests that
# SELECTION does not match.
plugin_except() {
    printf '%s\n' "^(?=migration_tempest_plugin\\.)(?!.*(?:$1))"
}

# mode_regex SLICE MODE: the --regex for MODE in SLICE (nothing: no test).
mode_regex() {
    case "$1:$2" in
    all:*) plugin_regex '' ;;
    ci:local) plugin_except "$LOCAL_REST" ;;
    ci:shared) plugin_except "$SHARED_REST" ;;
    ci:rbd) plugin_except "$RBD_REST" ;;
    rest:local) plugin_regex "$LOCAL_REST" ;;
    rest:shared) plugin_regex "$SHARED_REST" ;;
    rest:rbd) plugin_regex "$RBD_REST" ;;
    esac
}

# The python that runs the tempest on PATH.
tempest_python() {
    bin=$(dirname "$(command -v tempest)")
    if [ -x "$bin/python" ]; then
        echo "$bin/python"
    else
        command -v python3
    fi
}

# write_stestr_conf DIR: the .stestr.conf of `tempest init` for this
# tempest install.
write_stestr_conf() {
    "$(tempest_python)" - "$1" <<'EOF'
import os
import sys

import tempest

top = os.path.dirname(os.path.abspath(tempest.__file__))
path = os.path.join(sys.argv[1], '.stestr.conf')
with open(path + '.tmp', 'w') as f:
    f.write('[DEFAULT]\ntest_path=%s\ntop_dir=%s\n'
            'group_regex=([^\\.]*\\.)*\n'
            % (os.path.join(top, 'test_discover'), top))
os.replace(path + '.tmp', path)
EOF
}

if [ -n "${TEMPEST_CONFIG:-}" ]; then
    config=$(realpath "$TEMPEST_CONFIG")
    run_dir=${TEMPEST_RUN_DIR:-${TOX_ENV_DIR:-$PWD/.tox/tempest}/workspace}
    mkdir -p "$run_dir"
    cd "$run_dir"
    write_stestr_conf .
    exec tempest run --serial --config-file "$config" --regex "$regex" "$@"
fi
if [ -n "${TEMPEST_WORKSPACE:-}" ]; then
    cd "$TEMPEST_WORKSPACE"
    write_stestr_conf .
    exec tempest run --serial --regex "$regex" "$@"
fi
state=${MIGRATION_LAB_STATE:-/var/tmp/migration-lab}
workspace=$state/cloud/tempest

run_suite() {
    write_stestr_conf "$workspace"
    (cd "$workspace" && tempest run --serial --config-file etc/tempest.conf \
        --regex "$regex" "$@")
}

if migration-lab cloud status --state-dir "$state" >/dev/null 2>&1; then
    echo "tempest: on the lab cloud that is up"
    run_suite "$@"
    exit $?
fi

if [ -n "${MIGRATION_TEMPEST_STORAGE:-}" ]; then
    slice=${MIGRATION_TEMPEST_SLICE:-all}
else
    slice=${MIGRATION_TEMPEST_SLICE:-ci}
fi
case $slice in
all|ci|rest) ;;
*) echo "tempest: MIGRATION_TEMPEST_SLICE: unknown slice '$slice'" \
        "(all, ci or rest)" >&2
   exit 2 ;;
esac
storage_modes=
for mode in ${MIGRATION_TEMPEST_STORAGE:-local shared rbd}; do
    case $mode in
    local|shared|rbd) ;;
    *) echo "tempest: MIGRATION_TEMPEST_STORAGE: unknown storage" \
            "'$mode' (local, shared or rbd)" >&2
       exit 2 ;;
    esac
    # A mode where the slice has no test is not brought up.
    if [ -n "${TEMPEST_REGEX:-}" ] || [ -n "$(mode_regex "$slice" "$mode")" ]
    then
        storage_modes="$storage_modes $mode"
    fi
done
# Whatever happens next, leave the machine as it was found.
trap 'migration-lab cloud down --state-dir "$state" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
rc=0
summary=
for mode in $storage_modes; do
    echo "tempest: the lab cloud with $mode storage"
    migration-lab cloud up --storage "$mode" --state-dir "$state"
    # Each mode's log and reports are its own.
    rm -rf "$workspace/logs/tempest.log" "$workspace/reports"
    mkdir -p "$workspace/reports"
    started=$(date +%s)
    mode_rc=0
    if [ -z "${TEMPEST_REGEX:-}" ]; then
        regex=$(mode_regex "$slice" "$mode")
        echo "tempest: $slice slice on $mode: --regex '$regex'"
    fi
    run_suite "$@" || mode_rc=$?
    took=$(( $(date +%s) - started ))
    # The workspace goes with the cloud: keep this mode's logs and reports.
    results=$state/tempest-results/$mode
    rm -rf "$results"
    mkdir -p "$results"
    cp -r "$workspace/logs" "$workspace/reports" "$results/" 2>/dev/null || :
    # Where the time went: every test's time, and the counts.
    (cd "$workspace" && stestr slowest --all) > "$results/test-times.txt" \
        2>/dev/null || :
    counts=$(cd "$workspace" && stestr last --subunit 2>/dev/null |
        subunit-stats 2>/dev/null | awk -F': ' \
        '/^Passed tests/ {p=$2} /^Failed tests/ {f=$2} /^Skipped tests/ {s=$2}
         END {printf "%d passed, %d failed, %d skipped", p, f, s}')
    # Each nova.conf change (and each restore) restarts both computes.
    switches=$(sed -n 's/.*restarted and serving in \([0-9.]*\)s.*/\1/p' \
        "$results/logs/tempest.log" 2>/dev/null | awk \
        '{n++; t+=$1} END {if (n) printf "%d, mean %.1fs", n, t/n; else print 0}')
    summary="$summary
tempest: $mode storage: exit $mode_rc in ${took}s ($counts); compute restarts for a configuration: $switches; each test's time in $results/test-times.txt"
    [ "$mode_rc" = 0 ] || rc=$mode_rc
done
echo "tempest: taking the lab cloud down"
migration-lab cloud down --state-dir "$state" || rc=$?
echo "$summary"
exit $rc
