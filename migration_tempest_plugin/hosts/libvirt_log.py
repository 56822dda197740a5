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
