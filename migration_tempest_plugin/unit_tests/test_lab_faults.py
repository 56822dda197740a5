"""The fault cases' pure parts: their expectations and verdicts."""

import types

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import faults
from migration_tempest_plugin.lab import matrix


def _outcome(**changes):
    out = {'migrated': False, 'error': 'operation failed: job aborted',
           'fired': True, 'note': '', 'destination_clean': True}
    out.update(changes)
    return out


class TestFaultCases(testtools.TestCase):

    def test_every_case_says_what_it_expects_and_why(self):
        cases = faults.fault_cases()
        self.assertEqual(len(cases), len({c.id for c in cases}))
        for case in cases:
            expectation = case.expectation()
            self.assertIn(expectation.outcome, (flags.Outcome.FAILED_SAFE,
                                                flags.Outcome.INTACT))
            self.assertGreater(len(expectation.reason), 40, case.id)
            self.assertIn('+' + case.fault.name, case.id)

    def test_lab_wide_faults_run_alone(self):
        alone = {c.id for c in faults.fault_cases() if c.exclusive}
        self.assertIn('local/nova-block+cut-network', alone)
        self.assertIn('local/nova-block+kill-destination-libvirtd', alone)
        self.assertNotIn('local/nova-block+abort-source', alone)

    def test_post_copy_faults_run_on_the_post_copy_set(self):
        cases = {c.fault.name: c for c in faults.fault_cases()
                 if c.fault.phase == 'post-copy'}
        self.assertEqual({'cut-network-post-copy', 'pause-source-post-copy',
                          'abort-destination-post-copy'}, set(cases))
        for case in cases.values():
            self.assertEqual('shared', case.storage)
            self.assertTrue(flags.has(case.flags, 'POSTCOPY'))
            self.assertIn('POSTCOPY', case.expectation().reason)
        # Only the cut disturbs the lab.
        self.assertEqual({'cut-network-post-copy'}, {
            name for name, case in cases.items() if case.exclusive})


class TestStateName(testtools.TestCase):

    lv = types.SimpleNamespace(
        VIR_DOMAIN_RUNNING=1, VIR_DOMAIN_PAUSED=3, VIR_DOMAIN_SHUTOFF=5,
        VIR_DOMAIN_RUNNING_POSTCOPY=10, VIR_DOMAIN_RUNNING_POSTCOPY_FAILED=11,
        VIR_DOMAIN_RUNNING_LAST=12, VIR_DOMAIN_PAUSED_POSTCOPY=12,
        VIR_DOMAIN_PAUSED_POSTCOPY_FAILED=13)

    def test_reasons_by_name(self):
        self.assertEqual('PAUSED/POSTCOPY_FAILED',
                         faults.state_name(self.lv, 3, 13))
        self.assertEqual('PAUSED/POSTCOPY', faults.state_name(self.lv, 3, 12))
        self.assertEqual('RUNNING/POSTCOPY_FAILED',
                         faults.state_name(self.lv, 1, 11))

    def test_unknown_reason_or_state_by_number(self):
        self.assertEqual('RUNNING/12', faults.state_name(self.lv, 1, 12))
        self.assertEqual('SHUTOFF/2', faults.state_name(self.lv, 5, 2))
        self.assertEqual('7/0', faults.state_name(self.lv, 7, 0))


class TestFaultVerdict(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.fault = faults.fault_cases()[0].fault

    def test_failed_safe(self):
        verdict, message = self.fault.verdict(_outcome())
        self.assertEqual('FAILED-SAFE', verdict)
        self.assertIn('job aborted', message)
        self.assertTrue(matrix.agreement(
            flags.Expectation(flags.Outcome.FAILED_SAFE, 'r'), verdict))

    def test_guest_left_on_destination_is_a_finding(self):
        verdict, message = self.fault.verdict(
            _outcome(destination_clean=False))
        self.assertEqual('LEFT-BEHIND', verdict)
        self.assertIn('still defined on the destination', message)
        self.assertFalse(matrix.agreement(
            flags.Expectation(flags.Outcome.FAILED_SAFE, 'r'), verdict))

    def test_retry_that_migrated_names_the_first_attempt(self):
        verdict, message = self.fault.verdict(_outcome(
            migrated=True, error='', first_error='canceled by client'))
        self.assertEqual('INTACT', verdict)
        self.assertIn('first attempt: canceled by client', message)

    def test_fault_that_never_fired_is_said(self):
        _verdict, message = self.fault.verdict(_outcome(fired=False,
                                                        migrated=True))
        self.assertIn('ended before the fault was due', message)

    def test_fault_that_never_fired_is_a_finding(self):
        # An INTACT disk says nothing when the nemesis never acted.
        case = faults.fault_cases()[0]
        outcome = _outcome(fired=False, migrated=True, error='')
        verdict, message = case.fault.verdict(outcome)
        result = matrix.CaseRunner._result(
            None, case, case.expectation(), verdict, message, 0.0, outcome)
        self.assertEqual('INTACT', result.verdict)
        self.assertFalse(result.agrees)
        self.assertIn('never injected', result.finding)
        fired = matrix.CaseRunner._result(
            None, case, case.expectation(), 'INTACT', '', 0.0,
            _outcome(migrated=True, error=''))
        self.assertTrue(fired.agrees)


class _Runner(object):
    """A runner whose migration samples the job once, mid-copy, then
    returns what it is told."""

    def __init__(self, migrated=True):
        self.migrated = migrated
        self.restored = 0

    def migrate(self, case, inst, dom, dst_conn, on_stats=None, **kw):
        on_stats({'disk_processed': 1 << 20, 'memory_processed': 0})
        on_stats({'disk_processed': 2 << 20, 'memory_processed': 0})
        return {'migrated': self.migrated, 'error': '', 'seconds': 1.0,
                'post_copy': False}


class _Fault(faults.Fault):

    def __init__(self, fails):
        super().__init__('test-fault', 'disk', flags.Expectation(
            flags.Outcome.INTACT, 'a fault that should not matter'))
        self.fails = fails
        self.injected = 0
        self.restored = 0

    def inject(self, runner, inst, dom, dst_conn):
        self.injected += 1
        if self.fails:
            raise OSError('ip route add: RTNETLINK answers: File exists')
        return 'injected'

    def restore(self, runner):
        self.restored += 1


class TestInjection(testtools.TestCase):
    """A fault counts as fired only once inject() returned; an injection
    that raises makes the case the harness's ERROR, with its text."""

    def test_fault_that_fires(self):
        fault = _Fault(fails=False)
        outcome = fault.run(_Runner(), None, None, None, None)
        self.assertTrue(outcome['fired'])
        self.assertEqual(1, fault.injected)
        self.assertEqual(1, fault.restored)
        self.assertEqual(('INTACT', 'injected'), fault.verdict(outcome))

    def test_failed_injection_is_an_error_not_agreement(self):
        fault = _Fault(fails=True)
        exc = self.assertRaises(matrix.CaseError, fault.run, _Runner(),
                                None, None, None, None)
        self.assertIn('could not be injected', str(exc))
        self.assertIn('RTNETLINK answers: File exists', str(exc))
        self.assertEqual(1, fault.injected)   # not tried again
        self.assertEqual(1, fault.restored)   # the lab is healed anyway
