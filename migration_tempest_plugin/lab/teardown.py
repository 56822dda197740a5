"""Taking the lab down: guests, libvirtds, storage, daemons, mount and
network namespaces, the bridge, and a check that nothing is left."""

import contextlib
import os
import shutil
import time

from migration_tempest_plugin.lab import sandbox
from migration_tempest_plugin import runtime as rt


def down(lab, progress=None, purge=False):
    """Stop everything and remove every namespace, link, mount and
    process of the lab.  With purge, also delete the state folder
    (disks, logs, gluster state).  Raises LabError listing leftovers."""
    say = progress or (lambda msg: None)
    if os.geteuid() != 0:
        raise rt.LabError('the lab needs root; run down as root')
    started = time.monotonic()
    problems = []
    os.makedirs(lab.state_dir, exist_ok=True)
    with lab.locked():
        lab.check_owner()
        say('guests and libvirtd')
        for node in lab.nodes:
            end_guests(lab, node, problems)
        say('storage mounts')
        lab.storage.down(say, problems)
        say('daemons and mount namespaces')
        for sb in lab.all_sandboxes():
            end_sandbox(lab, sb, problems)
        entries = (lab.procs.entry(n) for n in lab.procs.names())
        left = rt.terminate([e for e in entries if e])
        if left:
            problems.append('processes still alive: %s' % left)
        for name in lab.procs.names():
            lab.procs.forget(name)
        ns_folder = os.path.join(lab.state_dir, 'ns')
        while rt.top_mount(rt.host_mounts(), ns_folder):
            if not rt.umount(ns_folder):
                problems.append('cannot unmount %s' % ns_folder)
                break
        say('network')
        for sb in lab.all_sandboxes():
            if sandbox.link_exists(sb.veth):
                rt.host_run(['ip', 'link', 'del', sb.veth], check=False)
            if sb.netns_exists():
                res = rt.host_run(['ip', 'netns', 'del', sb.netns],
                                  check=False)
                if res.returncode:
                    problems.append('ip netns del %s: %s' % (
                        sb.netns, rt.one_line(res.stderr)))
        if sandbox.link_exists(sandbox.BRIDGE):
            rt.host_run(['ip', 'link', 'del', sandbox.BRIDGE], check=False)
        remove_netns_dir(lab, problems)
        problems += leftovers(lab)
        if purge and not problems:
            say('purging %s' % lab.state_dir)
            shutil.rmtree(lab.state_dir, ignore_errors=True)
        elif os.path.isdir(lab.state_dir):
            lab.save_meta(down_seconds=round(
                time.monotonic() - started, 2))
    if problems:
        raise rt.LabError('lab down left: ' + '; '.join(problems))
    say('lab down in %.1fs' % (time.monotonic() - started))


def end_guests(lab, node, problems):
    """End QEMU first (it holds the disks), then libvirtd, then forget
    the domains."""
    if node.namespaces_exist():
        end_qemu_and_libvirtd(lab, node, problems)
    # Persistent definitions (nova defines its domains) would come back
    # with the next libvirtd, and a new nova-compute refuses to start
    # beside instances it does not know.
    definitions = os.path.join(node.dir, 'etc-libvirt', 'qemu')
    if os.path.isdir(definitions):
        shutil.rmtree(definitions, ignore_errors=True)


def end_qemu_and_libvirtd(lab, node, problems):
    daemons = {lab.procs.pid(k) for k in lab.procs.names()}
    guests = rt.entries(p for p in node.pids() if p not in daemons)
    guests += qemu_from_pidfiles(lab, node)
    left = rt.terminate(guests)
    if left:
        problems.append('QEMU on %s still alive: %s' % (node.name, left))
    entry = lab.procs.entry(node.proc_key)
    if entry:
        left = rt.terminate([entry])
        if left:
            problems.append('libvirtd on %s still alive' % node.name)
        lab.procs.forget(node.proc_key)


def qemu_from_pidfiles(lab, node):
    """QEMU processes named by libvirt's pid files, for a namespace that
    was lost; matched by command line and a mount namespace that is not
    the host's."""
    out = []
    folder = os.path.join(node.dir, 'run', 'libvirt', 'qemu')
    if not os.path.isdir(folder):
        return out
    host_mnt = rt.ns_inode('/proc/self/ns/mnt')
    for name in os.listdir(folder):
        if not name.endswith('.pid'):
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                pid = int(f.read().strip())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmd = f.read().split(b'\0')
        except (OSError, ValueError):
            continue
        wanted = ('/run/libvirt/qemu/' + name).encode()
        if wanted in cmd and rt.ns_inode('/proc/%d/ns/mnt' % pid) \
                != host_mnt:
            out += rt.entries([pid])
    return out


def end_sandbox(lab, sb, problems=None):
    """Unmount the FUSE mounts inside, end every process inside, and
    release the mount namespace."""
    problems = [] if problems is None else problems
    if sb.namespaces_exist():
        with contextlib.suppress(rt.LabError):
            mounts = sb.mounts()
            for m in reversed(mounts):
                if m['fstype'].startswith('fuse'):
                    if not rt.umount(m['target'], run=sb.run):
                        problems.append('cannot unmount %s in %s' % (
                            m['target'], sb.name))
    left = rt.terminate(rt.entries(sb.pids()))
    if left:
        problems.append('processes still alive in %s: %s' % (sb.name,
                                                             left))
    for key in lab.procs.names():
        data = lab.procs.record(key)
        if data and '--net=' + sb.netns_file in data['argv']:
            if rt.terminate([(data['pid'], data['start'])]):
                problems.append('%s still alive' % key)
            lab.procs.forget(key)
    while sb.mntns_mounted():
        if not rt.umount(sb.mntns_file):
            problems.append('cannot unmount %s' % sb.mntns_file)
            break
    for path in (sb.ready_file, sb.mntns_file):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_netns_dir(lab, problems):
    if not lab.meta().get('created_run_netns'):
        return
    netns_dir = sandbox.NETNS_DIR
    if not os.path.isdir(netns_dir) or os.listdir(netns_dir):
        return
    while rt.top_mount(rt.host_mounts(), sandbox.NETNS_DIR):
        if not rt.umount(sandbox.NETNS_DIR):
            problems.append('cannot unmount %s' % sandbox.NETNS_DIR)
            return
    with contextlib.suppress(OSError):
        os.rmdir(sandbox.NETNS_DIR)
    lab.save_meta(created_run_netns=None)


def leftovers(lab):
    out = []
    mounts = rt.host_mounts()
    under = rt.mounts_under(mounts, lab.state_dir)
    if under:
        out.append('mounts under the state folder: %s' % ', '.join(under))
    for sb in lab.all_sandboxes():
        if sb.netns_exists():
            out.append('network namespace %s' % sb.netns)
        if sandbox.link_exists(sb.veth):
            out.append('link %s' % sb.veth)
    if sandbox.link_exists(sandbox.BRIDGE):
        out.append('bridge %s' % sandbox.BRIDGE)
    return out
