"""Read the flags nova really handed libvirt out of a libvirtd debug log.

libvirtd logs each public API call at debug level when its log filters
include the public API (for example log_filters="1:libvirt 1:qemu"). nova
calls migrateToURI3 with PEER2PEER, which reaches the source libvirtd as
virDomainMigratePerform3Params (seen on libvirt 9.0):

  <time>: <tid>: debug : virDomainMigratePerform3Params:<n> : dom=0x.., (VM:
  name=instance-00000001, uuid=<uuid>), dconnuri=qemu+tcp://host/system,
  params=0x..., nparams=3, flags=0x8b

followed by one line per typed parameter, "params[\"migrate_disks\"]=..."
in recent releases. Pure: the caller fetches the text, which is the log
from an offset the host gave before the migration started (a libvirtd
debug log runs to gigabytes), so line numbers count from that offset.
"""

import dataclasses
import re

from migration_tempest_plugin import flags

_CALL = re.compile(
    r'(?P<api>virDomainMigrate(?:Perform3Params|ToURI3|3)):\d+ : .*'
    r'uuid=(?P<uuid>[0-9a-f-]{36})\).*'
    r'flags=(?P<flags>0x[0-9a-f]+|\d+)')
_URI = re.compile(r'(?:dconnuri|duri)=([^,\s]+)')


@dataclasses.dataclass(frozen=True)
class MigrateCall:
    api: str
    uuid: str
    dest_uri: str
    flags: int
    line: int

    @property
    def names(self):
        return flags.names(self.flags)


def migrate_calls(text, uuid=None):
    """Every migrate API call in the log, oldest first; only `uuid`'s when
    given."""
    calls = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _CALL.search(line)
        if not match:
            continue
        if uuid and match.group('uuid') != uuid:
            continue
        uri = _URI.search(line)
        calls.append(MigrateCall(match.group('api'), match.group('uuid'),
                                 uri.group(1) if uri else '',
                                 int(match.group('flags'), 0), number))
    return calls


# Any public API call on a domain, e.g. virDomainMigrateStartPostCopy (nova's
# switch to post-copy) or virDomainAbortJob (nova's abort).
_DOMAIN_CALL = re.compile(
    r'(?P<api>vir\w+):\d+ : dom=[^,]*, \(VM: name=[^,]*, '
    r'uuid=(?P<uuid>[0-9a-f-]{36})\)')


def domain_calls(text, api, uuid):
    """Line numbers of every call of public API `api` on domain `uuid`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if api not in line:
            continue
        match = _DOMAIN_CALL.search(line)
        if match and match.group('api') == api and \
                match.group('uuid') == uuid:
            found.append(number)
    return found


def errors_after(text, line, needle=None):
    """libvirt's error records after line number `line` that contain
    `needle` (all of them without one; error records name no domain: take
    them after that domain's migrate call, on a host that runs one
    migration at a time)."""
    return [entry for number, entry in enumerate(text.splitlines(), 1)
            if number > line and ': error : ' in entry and
            (needle is None or needle in entry)]


# QEMU's migration status events, as libvirtd 9.0 logs them (seen in the
# lab): QEMU_MONITOR_RECV_EVENT: mon=0x.. event={"timestamp": {...},
# "event": "MIGRATION", "data": {"status": "postcopy-active"}}.
_MIGRATION_EVENT = re.compile(r'QEMU_MONITOR_RECV_EVENT: .*"event": '
                              r'"MIGRATION", "data": \{"status": '
                              r'"(?P<status>[\w-]+)"')


def migration_statuses(text, line):
    """The statuses of QEMU's MIGRATION events after line number `line`,
    in order (events name a monitor, not a domain: take them after that
    domain's call, on a host that runs one migration at a time)."""
    return [match.group('status')
            for number, entry in enumerate(text.splitlines(), 1)
            if number > line
            for match in [_MIGRATION_EVENT.search(entry)] if match]


# The log line's thread: "<time>: <tid>: debug : ...".
_THREAD = re.compile(r'^\S+ \S+: (?P<tid>\d+): ')
# A typed parameter of the migrate call, logged by the same thread right
# after it: virDomainMigratePerform3Params:5382 :
# params["migrate_disks"]=(string)vda (one line per disk).
# Names may hold a dot: params["parallel.connections"]=(int)4.
_PARAM = re.compile(r'virDomainMigrate\w+:\d+ : params\["(?P<name>[\w.]+)"\]='
                    r'\((?P<type>\w+)\)(?P<value>.*)$')
# The disk copy of a block migration: libvirt asks the source's QEMU to
# mirror each disk it copies to the destination's NBD server, as
# blockdev-mirror with target "migration-<dev>-format" (or -storage)
# (libvirt 9.0, seen in the lab), or as drive-mirror with an nbd: target
# whose export is the disk's alias (older libvirt).
_MIRROR = re.compile(r'QEMU_MONITOR_SEND_MSG: .*"execute":\s*"'
                     r'(?P<cmd>blockdev-mirror|drive-mirror)"')
_MIRROR_TARGET = re.compile(r'"target":\s*"(?:migration-(?P<dev>[^"]+?)-'
                            r'(?:format|storage)|[^"]*exportname='
                            r'(?P<alias>[^"]+))"')


def _thread(line):
    match = _THREAD.match(line)
    return match.group('tid') if match else None


def _after_call(text, call):
    """(number, line) of the lines the call's thread logged after `call`
    (a MigrateCall from the same text), up to its next migrate call."""
    lines = text.splitlines()
    tid = _thread(lines[call.line - 1])
    for number in range(call.line + 1, len(lines) + 1):
        line = lines[number - 1]
        if _thread(line) != tid:
            continue
        if _CALL.search(line):
            return
        yield number, line


def call_params(text, call):
    """{name: [values]} of the typed parameters logged with `call`, in the
    order logged (a list parameter such as migrate_disks repeats its
    name)."""
    params = {}
    for _, line in _after_call(text, call):
        match = _PARAM.search(line)
        if not match:
            if params:
                break       # the parameters are logged together, first
            continue
        params.setdefault(match.group('name'), []).append(
            match.group('value').strip())
    return params


def migrate_disks(text, call):
    """The disks nova named in `call`'s migrate_disks parameter ([] when
    it named none: libvirt then copies every writable disk if
    NON_SHARED_* is set, which nova avoids by clearing the flag)."""
    return call_params(text, call).get('migrate_disks', [])


def mirrored_disks(text, call):
    """The disks whose copy the source's QEMU was asked to start for
    `call` (the NBD mirrors of a block migration), in the order asked:
    the device name (vda) for blockdev-mirror, the disk's alias
    (drive-virtio-disk0) for drive-mirror."""
    found = []
    for _, line in _after_call(text, call):
        if not _MIRROR.search(line):
            continue
        target = _MIRROR_TARGET.search(line)
        name = (target.group('dev') or target.group('alias')) if target \
            else '?'
        if name not in found:
            found.append(name)
    return found
