#!/bin/sh
# Installs what the project needs outside Python: the Debian packages that
# bindep.txt lists for the lab and its cloud, then tox and bindep for this
# Python.
# Usage: tools/install-deps.sh   (as root on Debian; safe to run again)
set -eu
cd "$(dirname "$0")/.."
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (it installs Debian packages)" >&2
    exit 1
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'tox>=4' bindep
# bindep -b prints the missing packages and exits 1 when there are some.
missing=$(python3 -m bindep -b compile lab cloud || true)
if [ -n "$missing" ]; then
    echo "install-deps: installing Debian packages:" $missing
    export DEBIAN_FRONTEND=noninteractive
    # The lab starts libvirtd, glusterd, Ceph, MariaDB and RabbitMQ itself,
    # on its own addresses; the packages must not start system-wide copies.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy
        chmod +x $policy
        trap 'rm -f $policy' EXIT
    fi
    apt-get update -qq
    # Ceph's packages recommend a cephadm world (dashboards, LVM, ...) that
    # the lab does not run.
    plain= bare=
    for p in $missing; do
        case $p in
            ceph-*|python3-rados|python3-rbd) bare="$bare $p" ;;
            *) plain="$plain $p" ;;
        esac
    done
    # shellcheck disable=SC2086
    [ -z "$plain" ] || apt-get install -y -qq $plain >/dev/null
    # shellcheck disable=SC2086
    [ -z "$bare" ] || apt-get install -y -qq --no-install-recommends \
        $bare >/dev/null
fi
echo "install-deps: ready in $(( $(date +%s) - started ))s"
