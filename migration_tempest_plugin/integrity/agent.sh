#!/bin/sh
# Integrity workload of migration-tempest-plugin (POSIX sh, busybox ash).
#
# Writes self-describing 4096-byte blocks to the work region of the test
# disk, in a deterministic order, and prints one acknowledgement line on
# stdout (the console) after each write is durable:
#
#   MTP RUN <run> image=<id> static=<f>+<n> work=<f>+<n> step=<step>
#       [zero=<k>]   (on the same line, when the label asks for zeroing)
#   MTP ACK <seq> <idx> <gen> <sum>
#
# Write number seq goes to block work_first + (seq * step) % work_count
# with generation seq / work_count + 1.  The block is one 64-byte record
#   MTP1 <run> <idx:08d> <gen:08d> <sum:08x> <dots>\n
# repeated 64 times, with
#   sum = (run ^ idx * 2654435761 ^ gen * 2246822519) & 0xffffffff.
# With zero=<k> in the label, write seq with seq % k == k - 1 empties its
# block instead: by writing zeros when (seq / k) is even (QEMU's
# detect_zeroes turns them into a write-zeroes request), else by discarding
# it (blkdiscard; busybox 1.35 has no -z).  Its ACK reads as any other.
# See migration_tempest_plugin/integrity/blocks.py and doc/source/oracle.rst.
#
# Usage: agent.sh [DEVICE]
# Settings (environment, else kernel command line mtp.<name>=, else default):
#   MTP_DEV       mtp.dev       target block device          /dev/vda
#   MTP_DELAY_MS  mtp.delay_ms  pause after each write (ms)   0
#   MTP_COUNT     mtp.count     stop after this many writes   0 (never)
#   MTP_DIRECT    mtp.direct    O_DIRECT: 1, 0 or auto        auto
#
# The loop forks only for dd (and usleep when a delay is set).

# As PID 1 (exec'd by the lab's /init) the workload must never exit: the
# kernel would panic.  Elsewhere (e.g. over SSH) it exits.
finish() {
    [ $$ -eq 1 ] || exit "$1"
    while :; do sleep 3600; done
}

fatal() {
    echo "MTP FATAL $*"
    finish 1
}

cmdline=
if [ -r /proc/cmdline ]; then
    read -r cmdline < /proc/cmdline
fi
for w in $cmdline; do
    case "$w" in
    mtp.dev=*) : "${MTP_DEV:=${w#mtp.dev=}}" ;;
    mtp.delay_ms=*) : "${MTP_DELAY_MS:=${w#mtp.delay_ms=}}" ;;
    mtp.count=*) : "${MTP_COUNT:=${w#mtp.count=}}" ;;
    mtp.direct=*) : "${MTP_DIRECT:=${w#mtp.direct=}}" ;;
    esac
done
dev=${1:-${MTP_DEV:-/dev/vda}}
delay_ms=${MTP_DELAY_MS:-0}
count=${MTP_COUNT:-0}
direct=${MTP_DIRECT:-auto}
case "$delay_ms$count" in
*[!0-9]*) fatal "bad mtp.delay_ms=$delay_ms or mtp.count=$count" ;;
esac

# Without its driver /dev/vda would be a plain file in devtmpfs and every
# write would "succeed" into RAM.
[ -b "$dev" ] || fatal "$dev is not a block device"

# The label: MTPDISK1 image=<id> bs=4096 static=<f>+<n> work=<f>+<n> step=<s>
label=$(dd if="$dev" bs=4096 count=1 2>/dev/null | head -n 1)
set -- $label
[ "$1" = MTPDISK1 ] || fatal "no MTPDISK1 label on $dev"
shift
image= bs= sf= sc= wf= wc= step= zero=0
for f in "$@"; do
    case "$f" in
    image=*) image=${f#image=} ;;
    bs=*) bs=${f#bs=} ;;
    static=*+*) v=${f#static=}; sf=${v%+*}; sc=${v#*+} ;;
    work=*+*) v=${f#work=}; wf=${v%+*}; wc=${v#*+} ;;
    step=*) step=${f#step=} ;;
    zero=*) zero=${f#zero=} ;;
    esac
done
case "$image" in
[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
*) fatal "bad image id in label: $label" ;;
esac
case "x$bs$sf$sc$wf$wc$step$zero" in
x*[!0-9]*) fatal "bad label: $label" ;;
esac
[ -n "$wc" ] && [ -n "$step" ] && [ "$bs" = 4096 ] && [ "$wc" -gt 0 ] ||
    fatal "bad label: $label"

# Run id: first 8 hex digits of a random uuid, never the image id.
run=$image
while [ "$run" = "$image" ]; do
    read -r u < /proc/sys/kernel/random/uuid
    run=${u%%-*}
done

zero_run=
[ "$zero" -gt 0 ] && zero_run=" zero=$zero"
echo "MTP RUN $run image=$image static=$sf+$sc work=$wf+$wc step=$step$zero_run"

dots=......................
nl='
'
runi=$((0x$run))
# one file per agent: two agents on one host (the unit tests) must not
# share it
blk=${TMPDIR:-/tmp}/mtp-block.$$
seq=0
discarded=0
while :; do
    if [ "$count" -gt 0 ] && [ "$seq" -ge "$count" ]; then
        echo "MTP DONE $seq"
        finish 0
    fi
    idx=$((wf + (seq * step) % wc))
    gen=$((seq / wc + 1))
    sum=$(((runi ^ (idx * 2654435761) ^ (gen * 2246822519)) & 0xffffffff))
    # zero-padded decimal and hex without forking printf
    i8=$((100000000 + idx)); i8=${i8#1}
    g8=$((100000000 + gen)); g8=${g8#1}
    h8= n=$sum k=0
    while [ $k -lt 8 ]; do
        d=$((n & 15))
        case $d in
        10) d=a ;; 11) d=b ;; 12) d=c ;; 13) d=d ;; 14) d=e ;; 15) d=f ;;
        esac
        h8=$d$h8
        n=$((n >> 4))
        k=$((k + 1))
    done
    op=write src=$blk
    if [ "$zero" -gt 0 ] && [ $((seq % zero)) -eq $((zero - 1)) ]; then
        op=zero src=/dev/zero
        [ $((seq / zero % 2)) -eq 1 ] && op=discard
    else
        b="MTP1 $run $i8 $g8 $h8 $dots$nl"
        b=$b$b; b=$b$b; b=$b$b; b=$b$b; b=$b$b; b=$b$b
        printf '%s' "$b" > $blk
    fi
    while :; do
        if [ $op = discard ]; then
            # the discard, then a flush (fsync of the device) to make it
            # durable as the writes are
            blkdiscard -o $((idx * 4096)) -l 4096 "$dev" 2>/dev/null &&
                dd if=/dev/null of="$dev" count=0 conv=notrunc,fsync \
                    2>/dev/null
            rc=$?
            if [ $rc -eq 0 ]; then
                discarded=1
                break
            fi
            [ $discarded = 1 ] ||
                fatal "blkdiscard failed on $dev (rc=$rc): no discard support?"
            echo "MTP ERR $seq $idx $gen rc=$rc"
            sleep 1
            continue
        fi
        if [ "$direct" = 0 ]; then
            dd if=$src of="$dev" bs=4096 seek=$idx count=1 \
                conv=notrunc,fsync 2>/dev/null
        else
            dd if=$src of="$dev" bs=4096 seek=$idx count=1 \
                conv=notrunc,fsync oflag=direct 2>/dev/null
        fi
        rc=$?
        if [ $rc -eq 0 ]; then
            if [ "$direct" = auto ]; then
                direct=1
                echo "MTP NOTE direct=1"
            fi
            break
        fi
        if [ "$direct" = auto ]; then
            # O_DIRECT refused (e.g. unaligned buffer): fsync only
            direct=0
            echo "MTP NOTE direct=0 (dd oflag=direct failed rc=$rc)"
            continue
        fi
        echo "MTP ERR $seq $idx $gen rc=$rc"
        sleep 1
    done
    echo "MTP ACK $seq $idx $gen $h8"
    seq=$((seq + 1))
    if [ "$delay_ms" -gt 0 ]; then
        usleep $((delay_ms * 1000))
    fi
done
