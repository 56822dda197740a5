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
# (and NOTE, ERR, DONE and FATAL records; doc/source/oracle.rst).  With a
# tag (MTP_TAG) every record starts "MTP.<tag> " instead of "MTP ", e.g.
#   MTP.vdb ACK <seq> <idx> <gen> <sum>
# so that two agents can share a console.  Each record is printed by one
# echo (one write), so it stays a whole line on a shared console.
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
#   MTP_TAG       mtp.tag       [a-z0-9]+: every record starts
#                               "MTP.<tag> " instead of "MTP "  (none)
#   MTP_INIT      mtp.init      1: label a device that has     0
#                               no label (below)
#
# With MTP_INIT=1, a device without a label (nova's blank ephemeral disk,
# formatted ext4 or vfat) is first given one: a random image id, no static
# region (static=1+0), a work region of min(device blocks - 1, 8192)
# blocks pre-filled with its generation-0 blocks, and step 1000003 (as
# blocks.make_layout would write it).  Block 0 says MTPINIT1 while the
# work region is written, then the label replaces it, each write with dd
# conv=fsync (and oflag=direct as the workload's), so a label is only ever
# found on a complete image, and a labelling cut short starts again at the
# next boot.  A device with a label is used as it is (after a reboot: a
# new run on the same image); one whose first two blocks hold MTP data but
# no label is refused, not labelled again: that would hide a damaged disk.
#
# The loop forks only for dd (and usleep when a delay is set).

# As PID 1 (exec'd by the lab's /init) the workload must never exit: the
# kernel would panic.  Elsewhere (e.g. over SSH) it exits.
finish() {
    [ $$ -eq 1 ] || exit "$1"
    while :; do sleep 3600; done
}

# The record prefix: "MTP", or "MTP.<tag>" with a tag.
P=MTP

fatal() {
    echo "$P FATAL $*"
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
    mtp.tag=*) : "${MTP_TAG:=${w#mtp.tag=}}" ;;
    mtp.init=*) : "${MTP_INIT:=${w#mtp.init=}}" ;;
    esac
done
dev=${1:-${MTP_DEV:-/dev/vda}}
delay_ms=${MTP_DELAY_MS:-0}
count=${MTP_COUNT:-0}
direct=${MTP_DIRECT:-auto}
tag=${MTP_TAG:-}
init=${MTP_INIT:-0}
if [ -n "$tag" ]; then
    # refused untagged: a reader of the tag would not see it
    case "$tag" in
    *[!a-z0-9]*) fatal "bad mtp.tag=$tag" ;;
    esac
    P=MTP.$tag
fi
case "$delay_ms$count" in
*[!0-9]*) fatal "bad mtp.delay_ms=$delay_ms or mtp.count=$count" ;;
esac
case "$init" in
0 | 1) ;;
*) fatal "bad mtp.init=$init" ;;
esac

# Without its driver /dev/vda would be a plain file in devtmpfs and every
# write would "succeed" into RAM.
[ -b "$dev" ] || fatal "$dev is not a block device"

# write_blocks FILE FIRST COUNT: COUNT blocks of FILE, in one write, to
# the device from block FIRST, durably and as the workload writes (O_DIRECT
# unless it is refused).
write_blocks() {
    while :; do
        if [ "$direct" = 0 ]; then
            dd if="$1" of="$dev" bs=$(($3 * 4096)) count=1 \
                seek=$(($2 * 4096)) oflag=seek_bytes conv=notrunc,fsync \
                2>/dev/null
        else
            dd if="$1" of="$dev" bs=$(($3 * 4096)) count=1 \
                seek=$(($2 * 4096)) oflag=seek_bytes,direct \
                conv=notrunc,fsync 2>/dev/null
        fi
        rc=$?
        if [ $rc -eq 0 ]; then
            if [ "$direct" = auto ]; then
                direct=1
                echo "$P NOTE direct=1"
            fi
            return 0
        fi
        if [ "$direct" = auto ]; then
            direct=0
            echo "$P NOTE direct=0 (dd oflag=direct failed rc=$rc)"
            continue
        fi
        fatal "labelling $dev: writing blocks $2+$3 failed rc=$rc"
    done
}

# line_block TEXT: a 4096-byte block of TEXT padded with dots to a
# 128-byte line, 32 times, in $part (the form of blocks.label_block).
line_block() {
    l=$1
    while [ ${#l} -lt 127 ]; do
        l=$l.
    done
    l="$l
"
    l=$l$l; l=$l$l; l=$l$l; l=$l$l; l=$l$l
    printf '%s' "$l" > "$part"
}

# Label a blank device (MTP_INIT=1): block 0 says MTPINIT1 while the
# work region's generation-0 blocks are written, then becomes the label,
# so that a label is only ever found on a complete image.
label_device() {
    part=${TMPDIR:-/tmp}/mtp-label.$$
    b0=$(dd if="$dev" bs=4096 count=1 2>/dev/null | head -n 1)
    case "$b0" in
    'MTPINIT1 '*) ;;  # an earlier labelling was cut short: again
    *)
        # MTP data without a label: a damaged disk, not a blank one
        if dd if="$dev" bs=4096 count=2 2>/dev/null | tr -d '\000' |
                grep -q -F -e MTPDISK1 -e 'MTP1 '; then
            fatal "no MTPDISK1 label on $dev but MTP data in its first" \
                "blocks: damaged, not labelled again"
        fi
        ;;
    esac
    size=$(blockdev --getsize64 "$dev") || fatal "no size for $dev"
    case "$size" in
    '' | *[!0-9]*) fatal "no size for $dev: $size" ;;
    esac
    wc=$((size / 4096 - 1))
    [ "$wc" -ge 1 ] || fatal "$dev too small for a label ($size bytes)"
    # blocks.DEFAULT_WORK_BLOCKS; the step is blocks.DEFAULT_STEP, a prime
    # above it, so coprime with any work count up to it
    [ "$wc" -gt 8192 ] && wc=8192
    read -r u < /proc/sys/kernel/random/uuid
    image=${u%%-*}
    imagei=$((0x$image))
    line_block "MTPINIT1 image=$image labelling "
    write_blocks "$part" 0 1
    # The generation-0 blocks, 1024 (4 MiB) at a time, by awk: the shell
    # takes 5 times as long, which is 20 s and more under TCG.  The sum,
    # image ^ (idx * 2654435761 mod 2^32), is computed in 16-bit halves:
    # busybox awk's printf %x and %d take an int.
    i=1
    while [ "$i" -le "$wc" ]; do
        n=$((wc + 1 - i))
        [ "$n" -gt 1024 ] && n=1024
        awk -v img="$image" -v ih=$((imagei >> 16)) \
            -v il=$((imagei & 65535)) -v first="$i" -v n="$n" 'BEGIN {
            for (i = first; i < first + n; i++) {
                x = i * 2654435761
                x -= int(x / 4294967296) * 4294967296
                xh = int(x / 65536)
                r = sprintf("MTP1 %s %08d 00000000 %04x%04x " \
                            "......................\n", img, i,
                            xor(ih, xh), xor(il, x - xh * 65536))
                r = r r; r = r r; r = r r; r = r r; r = r r; r = r r
                printf "%s", r
            }
        }' > "$part" || fatal "labelling $dev: awk failed"
        write_blocks "$part" "$i" "$n"
        i=$((i + n))
    done
    line_block "MTPDISK1 image=$image bs=4096 static=1+0 work=1+$wc \
step=1000003 "
    write_blocks "$part" 0 1
    rm -f "$part"
}

# The label: MTPDISK1 image=<id> bs=4096 static=<f>+<n> work=<f>+<n> step=<s>
label=$(dd if="$dev" bs=4096 count=1 2>/dev/null | head -n 1)
set -- $label
if [ "$1" != MTPDISK1 ]; then
    [ "$init" = 1 ] || fatal "no MTPDISK1 label on $dev"
    label_device
    label=$(dd if="$dev" bs=4096 count=1 2>/dev/null | head -n 1)
    set -- $label
    [ "$1" = MTPDISK1 ] || fatal "the label written on $dev reads back as" \
        "'$label'"
fi
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
echo "$P RUN $run image=$image static=$sf+$sc work=$wf+$wc step=$step$zero_run"

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
        echo "$P DONE $seq"
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
            echo "$P ERR $seq $idx $gen rc=$rc"
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
                echo "$P NOTE direct=1"
            fi
            break
        fi
        if [ "$direct" = auto ]; then
            # O_DIRECT refused (e.g. unaligned buffer): fsync only
            direct=0
            echo "$P NOTE direct=0 (dd oflag=direct failed rc=$rc)"
            continue
        fi
        echo "$P ERR $seq $idx $gen rc=$rc"
        sleep 1
    done
    echo "$P ACK $seq $idx $gen $h8"
    seq=$((seq + 1))
    if [ "$delay_ms" -gt 0 ]; then
        usleep $((delay_ms * 1000))
    fi
done
