import json
import threading

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.lab import commands
from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import pipeline
from migration_tempest_plugin.lab import report
from migration_tempest_plugin.lab import results
from migration_tempest_plugin import storage_modes


def typed(**kw):
    """Result keyword arguments from the flat figures a report shows: the
    oracle's counts into its report, the migration's into its outcome."""
    oracle = {k: kw.pop(k) for k in ('lost_writes', 'corrupt_blocks',
                                     'misplaced_blocks', 'stale_blocks',
                                     'acked_writes') if k in kw}
    names = {'migrated': 'migrated', 'post_copy': 'post_copy',
             'migration_s': 'seconds', 'downtime_ms': 'downtime_ms',
             'disk_bytes_copied': 'disk_bytes',
             'memory_bytes_transferred': 'memory_bytes'}
    outcome = {names[k]: kw.pop(k) for k in list(kw) if k in names}
    if oracle:
        kw['oracle'] = checker.Result(verdict=checker.INTACT, **oracle)
    kw['migration'] = results.MigrationOutcome(**outcome)
    return kw


def result(storage='local', flag_set='nova-block', verdict='INTACT',
           expected=flags.Outcome.INTACT, control='', **kw):
    exp = flags.Expectation(expected, 'why')
    return results.Result(
        storage=storage, flag_set=flag_set, flags=['LIVE'], verdict=verdict,
        expected=str(exp), expected_outcome=expected.value,
        agrees=results.agreement(exp, verdict, kw.get('message', '')),
        control=control,
        finding=results.finding_text(exp, verdict, kw.get('message', '')),
        **typed(**kw))


class TestMatrix(testtools.TestCase):

    def test_flag_sets_cover_nova_options_and_raw_sets(self):
        names = [fs.name for fs in matrix.flag_sets()]
        for option in matrix.NOVA_OPTIONS:
            self.assertIn('nova-live+' + option, names)
            self.assertIn('nova-block+' + option, names)
        for raw in ('raw-non-shared-disk', 'raw-compressed', 'raw-unsafe'):
            self.assertIn(raw, names)
        self.assertEqual(len(names), len(set(names)))

    def test_nova_sets_come_from_the_policy(self):
        by_name = {fs.name: fs for fs in matrix.flag_sets()}
        self.assertEqual(flags.nova_flags(flags.NovaOptions(),
                                          block_migration=True),
                         by_name['nova-block'].flags)
        self.assertTrue(by_name['nova-live+paused'].paused)
        self.assertFalse(flags.has(by_name['nova-block+auto-converge'].flags,
                                   'POSTCOPY'))

    def test_paused_copy_over_itself_expects_intact(self):
        cases = {c.id: c for c in matrix.all_cases()}
        for mode in ('shared-nolock', 'nfs'):
            paused = cases[mode + '/nova-block+paused'].expectation()
            self.assertEqual(flags.Outcome.INTACT, paused.outcome)
            self.assertIn('paused through the copy', paused.reason)
            self.assertEqual(flags.Outcome.DATA_AT_RISK,
                             cases[mode + '/nova-block'].expectation().outcome)

    def test_every_storage_mode_gets_every_set(self):
        cases = matrix.all_cases()
        self.assertEqual(len(storage_modes.NAMES) * len(matrix.flag_sets()),
                         len(cases))
        only = matrix.all_cases(only=['shared-nolock/nova-block'])
        self.assertTrue(only)
        self.assertTrue(all(c.storage == 'shared-nolock' for c in only))

    def test_smoke_cases_do_not_depend_on_timing(self):
        cases = {c.id: c.expectation().outcome for c in matrix.smoke_cases()}
        self.assertEqual(flags.Outcome.INTACT, cases['local/nova-block'])
        self.assertEqual(flags.Outcome.INTACT, cases['nfs/nova-live'])
        self.assertNotIn('shared-nolock/nova-block', cases)
        self.assertNotIn(flags.Outcome.DATA_AT_RISK, cases.values())

    def test_controls(self):
        controls = matrix.control_cases()
        loss = [c for c in controls if c.control == 'loss']
        intact = [c for c in controls if c.control == 'intact']
        self.assertEqual({'shared-nolock', 'nfs'}, {c.storage for c in loss})
        self.assertEqual({'local', 'shared', 'nfs', 'rbd'},
                         {c.storage for c in intact})
        for case in loss:
            self.assertEqual(flags.Outcome.DATA_AT_RISK,
                             case.expectation().outcome)
        for case in intact:
            self.assertEqual(flags.Outcome.INTACT,
                             case.expectation().outcome)
        refused = [c for c in controls if c.control == 'refused']
        self.assertEqual(['rbd/nova-block'], [c.id for c in refused])
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT,
                         refused[0].expectation().outcome)
        self.assertEqual(set(commands.session.CONTROL_VERDICTS),
                         {c.control for c in controls})

    def test_agreement(self):
        def agrees(outcome, verdict, message='', expected_message=''):
            return results.agreement(
                flags.Expectation(outcome, 'why', expected_message),
                verdict, message)
        self.assertTrue(agrees(flags.Outcome.DATA_AT_RISK, 'DATA-LOSS'))
        self.assertFalse(agrees(flags.Outcome.INTACT, 'DATA-LOSS'))
        self.assertTrue(agrees(flags.Outcome.REFUSED_BY_NOVA, 'REFUSED'))
        self.assertFalse(agrees(flags.Outcome.INTACT, 'ERROR'))
        # Refused, but not for the expected reason.
        self.assertTrue(agrees(flags.Outcome.REFUSED_BY_LIBVIRT, 'REFUSED',
                               'Unsafe migration: x', 'Unsafe migration'))
        self.assertFalse(agrees(flags.Outcome.REFUSED_BY_LIBVIRT, 'REFUSED',
                                'Cannot access storage file',
                                'Unsafe migration'))

    def test_finding_says_what_differs(self):
        r = result(verdict='DATA-LOSS', message='lost 3')
        self.assertEqual('expected INTACT, observed DATA-LOSS: lost 3',
                         r.finding)
        r = result(verdict='INTACT', expected=flags.Outcome.DATA_AT_RISK)
        self.assertIn('no write was lost in this run', r.finding)


class TestControlsAndReports(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.lines = []

    def test_loss_control_needs_four_of_five(self):
        runs = [result('shared-nolock', 'nova-block', 'DATA-LOSS',
                       flags.Outcome.DATA_AT_RISK, control='loss')] * 4
        runs.append(result('shared-nolock', 'nova-block', 'INTACT',
                           flags.Outcome.DATA_AT_RISK, control='loss'))
        summary = commands.control_summary(runs)
        self.assertEqual({'control': 'loss', 'runs': 5, 'held': 4},
                         summary['shared-nolock/nova-block'])
        self.assertTrue(commands.controls_hold(summary, out=self.lines.append))
        runs[0] = runs[-1]
        self.assertFalse(commands.controls_hold(
            commands.control_summary(runs), out=self.lines.append))
        self.assertIn('loss   3/5 FAILS', self.lines[-1])

    def test_intact_control_must_hold_every_time(self):
        runs = [result(control='intact')] * 4 + [
            result(verdict='DATA-LOSS', control='intact')]
        self.assertFalse(commands.controls_hold(
            commands.control_summary(runs), out=self.lines.append))

    def test_refused_control_needs_the_message_every_time(self):
        message = 'pre-creation of storage targets for incremental ' \
            'storage migration is not supported'
        expected = flags.Expectation(flags.Outcome.REFUSED_BY_LIBVIRT, 'why',
                                     message)

        def run(verdict, text):
            return results.Result(
                storage='rbd', flag_set='nova-block', flags=[],
                verdict=results.Verdict(verdict), expected=str(expected),
                expected_outcome=expected.outcome.value,
                agrees=results.agreement(expected, verdict, text),
                message=text, control='refused')
        runs = [run('REFUSED', 'Operation not supported: ' + message)] * 5
        summary = commands.control_summary(runs)
        self.assertEqual({'control': 'refused', 'runs': 5, 'held': 5},
                         summary['rbd/nova-block'])
        self.assertTrue(commands.controls_hold(summary, out=self.lines.append))
        # Refused for another reason, or the disk copied: it fails.
        for other in (run('REFUSED', 'Unsafe migration'),
                      run('DATA-LOSS', 'lost 3'), run('INTACT', '')):
            self.assertFalse(commands.controls_hold(
                commands.control_summary(runs[:4] + [other]),
                out=self.lines.append))
        self.assertIn('refused 4/5 FAILS', self.lines[-1])

    def test_json_has_the_minimum_shape(self):
        doc = json.loads(report.to_json([result(disk_bytes_copied=7)]))
        case = doc['cases'][0]
        for key, kind in (('storage', str), ('flags', list), ('verdict', str),
                          ('expected', str), ('message', str),
                          ('lost_writes', int), ('corrupt_blocks', int),
                          ('duration_s', float), ('disk_bytes_copied', int)):
            self.assertIsInstance(case[key], kind, key)

    def test_html_marks_differences(self):
        page = report.to_html([result(), result('shared', verdict='ERROR')])
        self.assertEqual(1, page.count('class="v diff"'))
        self.assertIn('#2e7d32', page)

    def test_table_lists_every_case(self):
        text = report.table([result(), result('shared', 'nova-live')])
        self.assertEqual(4, len(text.splitlines()))


class TestNodesLink(testtools.TestCase):
    """Ordering only: each wait is on an event, bounded, never a timing."""

    def _holder(self, link, alone, inside, leave):
        def hold():
            with link.held(alone=alone):
                inside.set()
                leave.wait(10)
        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(leave.set)
        return thread

    def test_cases_share_the_link(self):
        link = pipeline.NodesLink()
        first, second = threading.Event(), threading.Event()
        self._holder(link, False, first, threading.Event())
        self._holder(link, False, second, threading.Event())
        self.assertTrue(first.wait(5))
        self.assertTrue(second.wait(5))

    def test_alone_waits_for_sharers_and_goes_before_later_ones(self):
        link = pipeline.NodesLink()
        shared_in, shared_out = threading.Event(), threading.Event()
        self._holder(link, False, shared_in, shared_out)
        self.assertTrue(shared_in.wait(5))
        alone_in, alone_out = threading.Event(), threading.Event()
        self._holder(link, True, alone_in, alone_out)
        self.assertFalse(alone_in.wait(0.2))    # a sharer holds it
        later_in = threading.Event()
        self._holder(link, False, later_in, threading.Event())
        shared_out.set()
        self.assertTrue(alone_in.wait(5))
        self.assertFalse(later_in.is_set())     # alone holds it now
        alone_out.set()
        self.assertTrue(later_in.wait(5))

    def test_a_case_hands_the_link_back_once_it_is_whole(self):
        link = pipeline.NodesLink()
        alone_in, alone_out = threading.Event(), threading.Event()
        self._holder(link, True, alone_in, alone_out)
        self.assertTrue(alone_in.wait(5))
        later_in = threading.Event()
        self._holder(link, False, later_in, threading.Event())
        self.assertFalse(later_in.wait(0.2))
        link.release_alone()            # healed; its migration goes on
        self.assertTrue(later_in.wait(5))
        alone_out.set()
