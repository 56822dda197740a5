#!/bin/sh
# migration-tempest-plugin-libvirt stop|start
#
# Installed on each compute host by the role migration-host-access; the
# compute hosts file gives "<this> stop" as libvirt_stop_command and
# "<this> start" as libvirt_start_command, which the plugin's fault tests
# run as root over SSH.
#
# stop: the libvirt daemon that runs the QEMU driver ends as on a host
# that fails: SIGKILL to the daemon, and it stays down until "start".
# Which daemon that is depends on the distribution: devstack on Ubuntu
# noble (and Debian 12) runs the monolithic libvirtd, while hosts set up
# with libvirt's modular daemons (Fedora, CentOS Stream 9 and later, and
# distributions moving the same way) run virtqemud instead; this handles
# whichever of the two is in use, found by its service or sockets being
# active.  Three things could bring a killed daemon back, and each is
# stopped first:
#   - socket activation: the daemon's sockets (<d>.socket, <d>-ro.socket,
#     <d>-admin.socket) would start it on the next client connection, a
#     virsh of the tests included, so they are stopped;
#   - Restart=on-failure in the unit: a SIGKILL counts as a failure, and
#     systemd would restart the daemon within a second;
#   - any unit that Wants= it.
# The last two are stopped by masking the units in /run (mask --runtime:
# gone at the next boot, and the masks are also how "start" knows what
# to bring back).  Only the daemon's main process is killed (its
# MainPID, as KillMode=process in libvirt's units would stop it): on a
# host without systemd-machined the guests' QEMU processes share the
# daemon's cgroup, and they are left running either way, as killing a
# guest is a step of the test's own.
#
# start: unmasks what "stop" masked, and starts the sockets and the
# daemon again; with nothing masked, starts whichever daemon is enabled.
# Both exit non-zero unless the daemon ends up in the state asked for.
set -u

DAEMONS="libvirtd virtqemud"
WAIT_SECONDS=${MIGRATION_LIBVIRT_WAIT:-30}

sockets() {
    echo "$1.socket $1-ro.socket $1-admin.socket"
}

active() {
    systemctl is-active --quiet "$1"
}

runtime_masked() {
    [ "$(systemctl is-enabled "$1" 2>/dev/null)" = masked-runtime ]
}

# Wait until the unit is down: "inactive" or "failed" (a killed daemon
# whose restart the mask refused), not "activating" (a restart pending).
wait_inactive() {
    i=0
    while :; do
        case $(systemctl is-active "$1" 2>/dev/null) in
            inactive | failed) return 0 ;;
        esac
        i=$((i + 1))
        [ "$i" -gt "$WAIT_SECONDS" ] && return 1
        sleep 1
    done
}

wait_active() {
    i=0
    until active "$1"; do
        i=$((i + 1))
        [ "$i" -gt "$WAIT_SECONDS" ] && return 1
        sleep 1
    done
}

stop_daemon() {
    d=$1
    units=$d.service
    live_sockets=
    for s in $(sockets "$d"); do
        if active "$s"; then
            units="$units $s"
            live_sockets="$live_sockets $s"
        fi
    done
    # shellcheck disable=SC2086
    systemctl mask --runtime $units || return 1
    if [ -n "$live_sockets" ]; then
        # shellcheck disable=SC2086
        systemctl stop $live_sockets || return 1
    fi
    pid=$(systemctl show -p MainPID --value "$d.service")
    if [ "${pid:-0}" -gt 0 ]; then
        kill -KILL "$pid" || return 1
    fi
    if ! wait_inactive "$d.service"; then
        echo "$d.service still active $WAIT_SECONDS s after SIGKILL" >&2
        return 1
    fi
    echo "$d: killed; masked until start: $units"
}

start_units() {
    d=$1
    shift
    # A killed daemon is left "failed"; reset it so that start is clean.
    systemctl reset-failed "$d.service" 2>/dev/null
    # shellcheck disable=SC2068
    systemctl start $@ || return 1
    if ! wait_active "$d.service"; then
        echo "$d.service not active $WAIT_SECONDS s after start" >&2
        return 1
    fi
    echo "$d: started: $*"
}

do_stop() {
    stopped=
    for d in $DAEMONS; do
        in_use=
        active "$d.service" && in_use=yes
        for s in $(sockets "$d"); do
            active "$s" && in_use=yes
        done
        [ -n "$in_use" ] || continue
        stop_daemon "$d" || return 1
        stopped="$stopped $d"
    done
    [ -n "$stopped" ] || echo "no libvirt daemon was running"
    return 0
}

do_start() {
    started=
    for d in $DAEMONS; do
        units=
        for u in "$d.service" $(sockets "$d"); do
            runtime_masked "$u" && units="$units $u"
        done
        [ -n "$units" ] || continue
        # shellcheck disable=SC2086
        systemctl unmask --runtime $units || return 1
        # Sockets first: they are ordered before the service anyway.
        start=
        for u in $units; do
            case $u in *.socket) start="$start $u" ;; esac
        done
        # shellcheck disable=SC2086
        start_units "$d" $start "$d.service" || return 1
        started="$started $d"
    done
    [ -n "$started" ] && return 0
    # Nothing was stopped by this script: make sure the enabled daemon
    # runs (libvirtd first, as devstack on Ubuntu runs it).
    for d in $DAEMONS; do
        if systemctl is-enabled --quiet "$d.service" 2>/dev/null; then
            start_units "$d" "$d.service"
            return
        fi
    done
    echo "neither libvirtd nor virtqemud is enabled on this host" >&2
    return 1
}

case ${1:-} in
    stop) do_stop ;;
    start) do_start ;;
    *)
        echo "usage: $0 stop|start" >&2
        exit 2
        ;;
esac
