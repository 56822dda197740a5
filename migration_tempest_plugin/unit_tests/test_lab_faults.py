"""The fault cases' pure parts: their expectations and verdicts."""

import dataclasses
import types

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import fault_run
from migration_tempest_plugin.lab import faults
from migration_tempest_plugin.lab import migration
from migration_tempest_plugin.lab import results


def _outcome(**changes):
    out = dict(migrated=False, error='operation failed: job aborted',
               fired=True, note='', destination_clean=True)
    out.update(changes)
    return results.MigrationOutcome(**out)


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
                 if c.fault.phase == faults.POST_COPY}
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
                         migration.state_name(self.lv, 3, 13))
        self.assertEqual('PAUSED/POSTCOPY',
                         migration.state_name(self.lv, 3, 12))
        self.assertEqual('RUNNING/POSTCOPY_FAILED',
                         migration.state_name(self.lv, 1, 11))

    def test_unknown_reason_or_state_by_number(self):
        self.assertEqual('RUNNING/12', migration.state_name(self.lv, 1, 12))
        self.assertEqual('SHUTOFF/2', migration.state_name(self.lv, 5, 2))
        self.assertEqual('7/0', migration.state_name(self.lv, 7, 0))


class TestFaultVerdict(testtools.TestCase):

    def test_failed_safe(self):
        verdict, message = fault_run.fault_verdict(_outcome())
        self.assertEqual(results.Verdict.FAILED_SAFE, verdict)
        self.assertIn('job aborted', message)
        self.assertTrue(results.agreement(
            flags.Expectation(flags.Outcome.FAILED_SAFE, 'r'), verdict))

    def test_guest_left_on_destination_is_a_finding(self):
        verdict, message = fault_run.fault_verdict(
            _outcome(destination_clean=False))
        self.assertEqual(results.Verdict.LEFT_BEHIND, verdict)
        self.assertIn('still defined on the destination', message)
        self.assertFalse(results.agreement(
            flags.Expectation(flags.Outcome.FAILED_SAFE, 'r'), verdict))

    def test_retry_that_migrated_names_the_first_attempt(self):
        verdict, message = fault_run.fault_verdict(_outcome(
            migrated=True, error='', first_error='canceled by client'))
        self.assertEqual(results.Verdict.INTACT, verdict)
        self.assertIn('first attempt: canceled by client', message)

    def test_fault_that_never_fired_is_said(self):
        _verdict, message = fault_run.fault_verdict(_outcome(fired=False,
                                                             migrated=True))
        self.assertIn('ended before the fault was due', message)

    def test_a_fault_is_frozen_data(self):
        fault = faults.fault_cases()[0].fault
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, fault,
                          'name', 'x')
        self.assertTrue(issubclass(fault.injector, faults.Injector))
