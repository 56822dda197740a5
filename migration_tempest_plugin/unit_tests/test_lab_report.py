import re

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.lab import plots
from migration_tempest_plugin.lab import report
from migration_tempest_plugin.lab import results

MIB = 2 ** 20


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
           expected=flags.Outcome.INTACT, names=('LIVE', 'NON_SHARED_INC'),
           **kw):
    exp = flags.Expectation(expected, 'why')
    message = kw.get('message', '')
    return results.Result(
        storage=storage, flag_set=flag_set, flags=list(names),
        verdict=verdict, expected=str(exp), expected_outcome=expected.value,
        agrees=results.agreement(exp, verdict, message),
        finding=results.finding_text(exp, verdict, message), **typed(**kw))


def run():
    """A small matrix: copies on local, a loss on shared-nolock, a
    refusal, and a fault case."""
    return [
        result(migrated=True, migration_s=12.5, downtime_ms=80,
               disk_bytes_copied=20 * MIB),
        result(flag_set='raw-non-shared-disk',
               names=('LIVE', 'NON_SHARED_DISK'), migrated=True,
               migration_s=20.0, disk_bytes_copied=74 * MIB),
        result('shared', 'nova-live+tunnelled', names=('LIVE', 'TUNNELLED'),
               migrated=True, migration_s=9.0),
        result('shared-nolock', verdict='DATA-LOSS',
               expected=flags.Outcome.DATA_AT_RISK, migrated=True,
               migration_s=14.0, lost_writes=217, disk_bytes_copied=9 * MIB),
        result('shared', verdict='REFUSED', message='block-export-add'),
        result(flag_set='nova-block+cut-network', verdict='FAILED-SAFE',
               expected=flags.Outcome.FAILED_SAFE, migration_s=30.0,
               disk_bytes_copied=3 * MIB),
    ]


class TestHtmlReport(testtools.TestCase):

    def page(self, results=None, **kw):
        return report.to_html(run() if results is None else results,
                              plots=False, **kw)

    def test_summary_counts(self):
        page = self.page(extra={'wall_s': 65.2})
        self.assertIn('<b>6</b>cases', page)
        self.assertIn('<b>5</b>agree with the expected outcome', page)
        self.assertIn('<b>1</b>findings', page)
        self.assertIn('<b>1 min 05 s</b>wall time', page)
        # The one finding is listed with its text.
        self.assertIn('<a href="#case-4">shared / nova-block</a>: expected '
                      'INTACT: why, observed REFUSED: block-export-add',
                      page)
        self.assertNotIn('Every case matched', page)

    def test_summary_without_findings(self):
        page = self.page([result()])
        self.assertIn('<b>0</b>findings', page)
        self.assertIn('Every case matched its expected outcome.', page)
        self.assertNotIn('wall time', page)

    def test_controls_table(self):
        page = self.page(extra={'wall_s': 3, 'controls': {
            'shared-nolock/nova-block': {'control': 'loss', 'runs': 5,
                                         'held': 4}}})
        self.assertIn('<h3>Controls</h3>', page)
        self.assertIn('<td>shared-nolock/nova-block</td><td>loss</td>'
                      '<td class="n">4 / 5</td>', page)
        self.assertNotIn('Other run data', page)
        self.assertIn('Other run data', self.page(extra={'seed': 1}))

    def test_legend_explains_every_colour_and_the_frame(self):
        page = self.page()
        legend = page[page.index('<div class="legend">'):]
        for name, colour, meaning in report.VERDICTS:
            self.assertIn('background:%s"></div><div><b>%s</b>: %s' % (
                colour, name, meaning), legend)
        self.assertIn('<b>black frame</b>', legend)

    def test_fault_rows_come_after_the_plain_ones(self):
        page = self.page()
        grid = page[page.index('id="grid"'):page.index('class="legend"')]
        rows = re.findall(r'<tr(?: class="group")?><th[^>]*>([^<]+)</th>',
                          grid)
        self.assertEqual(['flag set', 'nova-block', 'raw-non-shared-disk',
                          'nova-live+tunnelled',
                          'Faults injected during the migration',
                          'nova-block+cut-network'], rows)
        self.assertNotIn('Faults injected', self.page([result()]))

    def test_grid_frames_what_differs(self):
        page = self.page()
        self.assertEqual(1, page.count('class="v diff"'))
        self.assertIn('title="differs from the expected INTACT: why"', page)

    def test_repeated_runs_share_a_cell(self):
        runs = [result('shared-nolock', verdict='DATA-LOSS',
                       expected=flags.Outcome.DATA_AT_RISK)] * 4 + [
            result('shared-nolock', expected=flags.Outcome.DATA_AT_RISK)]
        page = self.page(runs)
        self.assertIn('INTACT 1 / DATA-LOSS 4', page)
        self.assertIn('linear-gradient(to right,#2e7d32 0% 20%,'
                      '#c62828 20% 100%)', page)
        self.assertIn('DATA-LOSS &times;2', self.page(runs[:2]))

    def test_everything_is_escaped(self):
        page = self.page([result(verdict='ERROR',
                                 message='<script>alert(1)</script>',
                                 flag_set='<b>x</b>')])
        self.assertNotIn('<script>alert', page)
        self.assertNotIn('<b>x</b>', page)
        self.assertIn('&lt;script&gt;alert(1)&lt;/script&gt;', page)
        self.assertIn('&lt;b&gt;x&lt;/b&gt;', page)

    def test_case_rows_link_to_folded_details(self):
        page = self.page()
        for n in range(6):
            self.assertIn('<a href="#case-%d">' % n, page)
            self.assertIn('<details class="case" id="case-%d">' % n, page)
        self.assertIsNone(re.search(r'<details[^>]* open', page))
        self.assertEqual(6, page.count('<summary>raw JSON</summary>'))
        self.assertIn('&quot;lost_writes&quot;: 217', page)
        row = re.search(r'<tr><td class="k">shared-nolock</td>.*?</tr>',
                        page).group(0)
        for figure in ('>217<', '>14.0<', '>9.0<', 'DATA-AT-RISK'):
            self.assertIn(figure, row)

    def test_no_plots_when_told(self):
        page = self.page()
        self.assertNotIn('id="plots"', page)
        self.assertNotIn('data:image', page)

    def test_plot_without_data_is_a_note(self):
        page = report.to_html([result(verdict='REFUSED')])
        self.assertIn('id="plots"', page)
        self.assertNotIn('data:image', page)
        for note in ('no migrated case copied its disk',
                     'no case spent time migrating', 'no case lost data'):
            self.assertIn('No plot: %s.' % note, page)

    def test_plots_are_embedded_images(self):
        if not plots.available():
            self.skipTest('matplotlib is not installed (the lab extra)')
        page = report.to_html(run())
        self.assertEqual(3, page.count('<img src="data:image/png;base64,'))
        self.assertNotIn('No plot', page)

    def test_missing_matplotlib_is_a_note(self):
        self.patch(plots, 'available', lambda: False)
        page = report.to_html(run())
        self.assertEqual(3, page.count('matplotlib is not installed'))
        self.assertNotIn('data:image', page)

    def test_disk_plot_compares_inc_and_disk_by_flags(self):
        title, _, data, _ = report._plot_specs(run())[0]
        groups, modes = data
        # The fault case and the unmigrated ones are left out; INC and
        # DISK come from the flags, not the flag set's name.
        self.assertEqual(
            [('local', {'NON_SHARED_INC': [20.0], 'NON_SHARED_DISK': [74.0]}),
             ('shared-nolock', {'NON_SHARED_INC': [9.0]})], groups)
        self.assertEqual(['NON_SHARED_INC', 'NON_SHARED_DISK'],
                         [m for m, _ in modes])

    def test_fault_names(self):
        self.assertFalse(report._is_fault('nova-live+tunnelled'))
        self.assertFalse(report._is_fault('nova-block'))
        self.assertTrue(report._is_fault('nova-block+cut-network'))


class TestPlots(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if not plots.available():
            self.skipTest('matplotlib is not installed (the lab extra)')

    def assertPng(self, data):
        self.assertTrue(data.startswith(b'\x89PNG\r\n\x1a\n'))

    def test_disk_copied(self):
        self.assertPng(plots.disk_copied(
            [('local', {'NON_SHARED_INC': [2.0, 30.5],
                        'NON_SHARED_DISK': [74.0]}),
             ('shared-nolock', {'NON_SHARED_INC': [12.0]})],
            [('NON_SHARED_INC', 'inc'), ('NON_SHARED_DISK', 'disk')]))

    def test_migration_time(self):
        self.assertPng(plots.migration_time(
            [('nova-block', [('local', 10.0), ('shared-nolock', 12.0)]),
             ('nova-block+cut-network', [('local', 30.0)])],
            ['local', 'shared-nolock'], plain=1))

    def test_lost_writes_is_deterministic(self):
        bars = [('shared-nolock / nova-block', 217, 0),
                ('shared-nolock / nova-block (run 2)', 0, 3)]
        self.assertPng(plots.lost_writes(bars))
        self.assertEqual(plots.lost_writes(bars), plots.lost_writes(bars))
