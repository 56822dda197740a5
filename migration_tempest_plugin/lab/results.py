"""What a case gives: a verdict, the migration's outcome, and the result
that the reports read, which embeds the oracle's own report.
"""

import dataclasses
import enum
import typing

from migration_tempest_plugin import errors
from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import checker


class Verdict(str, enum.Enum):
    """A case's verdict (a str, so that reports and JSON read the word)."""
    INTACT = checker.INTACT
    DATA_LOSS = checker.DATA_LOSS
    REFUSED = 'REFUSED'             # the stack declined the migration
    ERROR = checker.ERROR           # the lab could not run the case
    # Fault cases: the guest runs on at its source with its data...
    FAILED_SAFE = 'FAILED-SAFE'
    # ...but is still defined on the destination.
    LEFT_BEHIND = 'LEFT-BEHIND'
    STOPPED = 'STOPPED'             # the stack stopped the guest; disk intact

    def __str__(self):
        return self.value


class CaseError(errors.Error):
    """The harness could not run the case (not a verdict on the stack)."""


@dataclasses.dataclass
class MigrationOutcome:
    """One migration as the lab saw it, faults and retries included."""
    migrated: bool = False
    error: str = ''             # libvirt's message when it did not migrate
    seconds: float = 0.0
    post_copy: bool = False     # the switch to post-copy happened
    downtime_ms: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0
    timeout: str = ''           # the watchdog aborted it, and why
    # A fault case: the fault fired (inject() returned), what it said,
    # whether the destination forgot the guest, a retry's first error.
    fired: typing.Optional[bool] = None
    note: str = ''
    destination_clean: bool = True
    first_error: str = ''
    stopped: str = ''           # the stack stopped the guest afterwards


# What each expected outcome accepts as an observed verdict.
AGREEING = {
    flags.Outcome.INTACT: (Verdict.INTACT,),
    flags.Outcome.REFUSED_BY_LIBVIRT: (Verdict.REFUSED,),
    flags.Outcome.REFUSED_BY_NOVA: (Verdict.REFUSED,),
    flags.Outcome.DATA_AT_RISK: (Verdict.DATA_LOSS,),
    flags.Outcome.FAILED_SAFE: (Verdict.FAILED_SAFE,),
}


def agreement(expectation, verdict, message=''):
    """Does an observed verdict (and refusal message) match the expected
    outcome? A refusal must carry the refusing component's expected words:
    refused for another reason is a finding too."""
    if verdict not in AGREEING[expectation.outcome]:
        return False
    return verdict != Verdict.REFUSED or expectation.message in message


def finding_text(expectation, verdict, message):
    if agreement(expectation, verdict, message):
        return ''
    if expectation.outcome is flags.Outcome.DATA_AT_RISK and \
            verdict == Verdict.INTACT:
        return 'data at risk, but no write was lost in this run'
    return 'expected %s, observed %s%s' % (
        str(expectation) if verdict == Verdict.REFUSED
        else expectation.outcome.value, Verdict(verdict).value,
        (': ' + message) if message else '')


FIRST_OFFSETS = 10


@dataclasses.dataclass
class Result:
    """One case's result.  The oracle's counts are read from its report,
    which the result holds (None when the disk was never judged)."""
    storage: str
    flag_set: str
    flags: list
    verdict: Verdict
    expected: str
    expected_outcome: str
    agrees: bool
    message: str = ''
    control: str = ''
    oracle: typing.Optional[checker.Result] = None
    writes_during_migration: int = 0
    migration: MigrationOutcome = dataclasses.field(
        default_factory=MigrationOutcome)
    duration_s: float = 0.0
    boot_s: float = 0.0
    link_wait_s: float = 0.0      # waiting for a case that held it alone
    verify_s: float = 0.0
    finding: str = ''

    def _count(self, name):
        return getattr(self.oracle, name) if self.oracle else 0

    lost_writes = property(lambda self: self._count('lost_writes'))
    corrupt_blocks = property(lambda self: self._count('corrupt_blocks'))
    misplaced_blocks = property(lambda self: self._count('misplaced_blocks'))
    stale_blocks = property(lambda self: self._count('stale_blocks'))
    acked_writes = property(lambda self: self._count('acked_writes'))

    @property
    def first_offsets(self):
        return list(self.oracle.first_offsets)[:FIRST_OFFSETS] \
            if self.oracle else []

    migrated = property(lambda self: self.migration.migrated)
    post_copy = property(lambda self: self.migration.post_copy)
    migration_s = property(lambda self: round(self.migration.seconds, 2))
    downtime_ms = property(lambda self: self.migration.downtime_ms)
    memory_bytes_transferred = property(
        lambda self: self.migration.memory_bytes)
    disk_bytes_copied = property(lambda self: self.migration.disk_bytes)

    FLAT = ('lost_writes', 'corrupt_blocks', 'misplaced_blocks',
            'stale_blocks', 'acked_writes', 'first_offsets', 'migrated',
            'post_copy', 'migration_s', 'downtime_ms',
            'memory_bytes_transferred', 'disk_bytes_copied')

    def to_dict(self):
        """The report's record: the case's fields and the oracle's and the
        migration's figures, side by side, as before they were typed."""
        out = {f.name: getattr(self, f.name)
               for f in dataclasses.fields(self)
               if f.name not in ('oracle', 'migration')}
        out['verdict'] = Verdict(self.verdict).value
        out.update((name, getattr(self, name)) for name in self.FLAT)
        return out
