"""The matrix's results as a terminal table, JSON and one HTML page."""

import base64
import collections
import functools
import html
import json

from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import plots as plotlib
from migration_tempest_plugin.lab import results

Verdict = results.Verdict

# Each verdict's colour in the HTML report, and what it means.
VERDICTS = (
    (Verdict.INTACT, '#2e7d32',
     'migrated; the oracle found every acknowledged write where it belongs'),
    (Verdict.DATA_LOSS, '#c62828',
     'the oracle found acknowledged writes lost or blocks corrupt, '
     'misplaced or stale'),
    (Verdict.REFUSED, '#757575',
     'nova or libvirt refused the migration before it began'),
    (Verdict.FAILED_SAFE, '#00838f',
     'the fault stopped the migration; the guest runs on at its source '
     'with its data, nothing left on the destination'),
    (Verdict.LEFT_BEHIND, '#6a1b9a',
     'the fault stopped the migration and the guest is still defined on '
     'the destination'),
    (Verdict.STOPPED, '#4e342e',
     'the stack stopped the guest after the migration; its disk was '
     'judged intact'),
    (Verdict.ERROR, '#ef6c00', 'the lab could not run the case'),
)
COLOURS = {name: colour for name, colour, _ in VERDICTS}
MIB = 2 ** 20


def progress_line(index, total, result):
    mark = '' if result.agrees else '  <-- ' + result.finding
    if result.control:
        mark += '  [control: %s]' % result.control
    return '[%2d/%d] %-14s %-28s %-9s %5.1fs lost=%d corrupt=%d%s' % (
        index, total, result.storage, result.flag_set, result.verdict,
        result.duration_s, result.lost_writes, result.corrupt_blocks, mark)


def table(results):
    rows = [('storage', 'flag set', 'verdict', 'expected', 'lost',
             'corrupt', 'disk MiB', 'down ms', 'secs', 'finding')]
    for r in results:
        rows.append((r.storage, r.flag_set, r.verdict, r.expected_outcome,
                     str(r.lost_writes), str(r.corrupt_blocks),
                     '%.1f' % (r.disk_bytes_copied / 2 ** 20),
                     str(r.downtime_ms), '%.1f' % r.duration_s,
                     r.finding or 'as expected'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append('  '.join(cell.ljust(w)
                               for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append('  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def findings(results):
    return [r for r in results if not r.agrees]


def to_json(results, extra=None):
    document = {'cases': [r.to_dict() for r in results]}
    document.update(extra or {})
    return json.dumps(document, indent=2, sort_keys=True)


# -- the HTML page -----------------------------------------------------------

STYLE = '''
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1320px;
 padding:0 1em;color:#212121;line-height:1.4}
h1{margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}
th{background:#f5f5f5;white-space:nowrap}td.k{white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.stats{display:flex;gap:1em;flex-wrap:wrap}
.stat{border:1px solid #ddd;border-radius:6px;padding:.6em 1.2em;
 min-width:9em}.stat b{display:block;font-size:1.8em}
.stat.bad b{color:#c62828}.muted{color:#9e9e9e}
.chip{display:inline-block;color:#fff;border-radius:3px;padding:0 6px;
 font-size:12px;white-space:nowrap}
td.v{color:#fff;text-align:center;white-space:nowrap;min-width:8em;
 text-shadow:0 0 2px rgba(0,0,0,.6)}
td.v a{color:#fff;text-decoration:none;display:block}
td.none{background:#fafafa}
.diff{outline:3px solid #000;outline-offset:-3px}
tr.group th{background:#fff;border:none;padding-top:1em;font-size:14px}
tr.finding td{background:#fff8e1}
.side{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}
.legend{display:grid;grid-template-columns:auto 1fr;gap:4px 10px;
 font-size:13px;align-items:center;max-width:34em;margin-top:.5em}
td.f{min-width:18em}
.swatch{width:5em;height:1.4em;border-radius:2px}
h3.plot{margin-bottom:0}figure{margin:.3em 0 1.5em}
figure img{max-width:100%;height:auto}
figcaption{font-size:13px;color:#616161}
details{margin:.3em 0}summary{cursor:pointer}
details.case{border-left:3px solid #ddd;padding-left:.6em}
details.case p{margin:.3em 0}
details.case:target{border-color:#000}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto;font-size:12px;
 white-space:pre-wrap}
'''

# A closed <details> that a link points at opens.
SCRIPT = '''
function openTarget(){var t=document.getElementById(location.hash.slice(1));
 if(t&&t.tagName==='DETAILS'){t.open=true;}}
window.addEventListener('hashchange',openTarget);openTarget();
'''

_e = html.escape


def to_html(results, title='migration-lab matrix', extra=None, plots=True):
    """One self-contained page: a summary, the storage by flag set grid,
    the plots (unless `plots` is false), a row of figures per case, and
    each case's message and raw JSON folded away."""
    extra = extra or {}
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<title>%s</title><style>%s</style></head><body>' % (
               _e(title), STYLE),
           '<h1>%s</h1>' % _e(title)]
    out += _summary(results, extra)
    out += _grid(results)
    if plots:
        out += _plots(results)
    out += _case_table(results)
    out += _case_details(results)
    out.append('<script>%s</script></body></html>' % SCRIPT)
    return '\n'.join(out)


def _anchor(n):
    return 'case-%d' % n


def _chip(verdict):
    return '<span class="chip" style="background:%s">%s</span>' % (
        COLOURS.get(verdict, '#000'), _e(verdict))


def _count(verdicts):
    """{verdict: how many}, in the legend's order (unknown ones after)."""
    counts = collections.Counter(verdicts)
    order = [v for v, _, _ in VERDICTS]
    return {v: counts[v] for v in order if v in counts} | {
        v: c for v, c in sorted(counts.items()) if v not in order}


def _duration(seconds):
    seconds = float(seconds)
    if seconds < 60:
        return '%.1f s' % seconds
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return '%d min %02d s' % (minutes, seconds)
    return '%d h %02d min' % divmod(minutes, 60)


def _summary(results, extra):
    diffs = [(n, r) for n, r in enumerate(results) if not r.agrees]
    stats = [(len(results), 'cases', ''),
             (len(results) - len(diffs), 'agree with the expected outcome',
              ''),
             (len(diffs), 'findings', ' bad' if diffs else '')]
    if 'wall_s' in extra:
        stats.append((_duration(extra['wall_s']), 'wall time', ''))
    out = ['<h2 id="summary">Summary</h2><div class="stats">']
    out += ['<div class="stat%s"><b>%s</b>%s</div>' % (cls, _e(str(v)),
                                                       _e(label))
            for v, label, cls in stats]
    out.append('</div>')
    counts = _count(r.verdict for r in results)
    out.append('<p>Verdicts: %s</p>' % ' '.join(
        '%s&nbsp;%d' % (_chip(v), c) for v, c in counts.items()))
    if diffs:
        out.append('<h3>Findings</h3><ol>')
        out += ['<li><a href="#%s">%s / %s</a>: %s</li>' % (
            _anchor(n), _e(r.storage), _e(r.flag_set), _e(r.finding))
            for n, r in diffs]
        out.append('</ol>')
    else:
        out.append('<p>Every case matched its expected outcome.</p>')
    controls = extra.get('controls')
    if controls:
        out.append('<h3>Controls</h3><table><tr><th>control case</th>'
                   '<th>kind</th><th>held / runs</th></tr>')
        for key, entry in sorted(controls.items()):
            out.append('<tr><td>%s</td><td>%s</td><td class="n">%d / %d'
                       '</td></tr>' % (_e(key), _e(entry['control']),
                                       entry['held'], entry['runs']))
        out.append('</table>')
    rest = {k: v for k, v in extra.items() if k not in ('wall_s', 'controls')}
    if rest:
        out.append('<details><summary>Other run data</summary><pre>%s</pre>'
                   '</details>' % _e(json.dumps(rest, indent=2,
                                                sort_keys=True)))
    return out


@functools.lru_cache(maxsize=1)
def _plain_flag_sets():
    return frozenset(fs.name for fs in matrix.flag_sets())


def _is_fault(flag_set):
    """A fault case is named after its flag set, '+', the fault (and some
    plain flag sets carry a '+' too: nova-live+tunnelled)."""
    return '+' in flag_set and flag_set not in _plain_flag_sets()


def _row_names(results):
    """The grid's rows: the plain flag sets, then the fault cases."""
    names = list(dict.fromkeys(r.flag_set for r in results))
    return ([n for n in names if not _is_fault(n)],
            [n for n in names if _is_fault(n)])


def _grid(results):
    storages = list(dict.fromkeys(r.storage for r in results))
    cells = {}
    for n, r in enumerate(results):
        cells.setdefault((r.flag_set, r.storage), []).append((n, r))
    plain, faulty = _row_names(results)
    out = ['<h2 id="grid">Storage by flag set</h2><div class="side">',
           '<table><tr><th>flag set</th>%s</tr>' % ''.join(
               '<th>%s</th>' % _e(s) for s in storages)]
    for heading, names in (('', plain), (
            'Faults injected during the migration', faulty)):
        if heading and names:
            out.append('<tr class="group"><th colspan="%d">%s</th></tr>' % (
                len(storages) + 1, _e(heading)))
        for name in names:
            out.append('<tr><th>%s</th>%s</tr>' % (_e(name), ''.join(
                _cell(cells.get((name, s), [])) for s in storages)))
    out.append('</table>')
    out += _legend()
    out.append('</div>')
    return out


def _cell(runs):
    if not runs:
        return '<td class="none" title="not run on this storage"></td>'
    counts = _count(r.verdict for _, r in runs)
    if len(counts) == 1:
        verdict = runs[0][1].verdict
        text = _e(verdict) + (' &times;%d' % len(runs) if len(runs) > 1
                              else '')
        background = COLOURS.get(verdict, '#000')
    else:   # repeated runs that disagree: one band per verdict
        text = ' / '.join('%s %d' % (_e(v), c) for v, c in counts.items())
        stops, done = [], 0
        for v, c in counts.items():
            stops.append('%s %d%% %d%%' % (COLOURS.get(v, '#000'),
                                           100 * done // len(runs),
                                           100 * (done + c) // len(runs)))
            done += c
        background = 'linear-gradient(to right,%s)' % ','.join(stops)
    first, r = runs[0]
    differs = not all(run.agrees for _, run in runs)
    tip = ('differs from the expected ' if differs else 'expected ') + \
        r.expected
    return '<td class="v%s" style="background:%s" title="%s"><a href="#%s">' \
        '%s</a></td>' % (' diff' if differs else '', background, _e(tip),
                         _anchor(first), text)


def _legend():
    out = ['<div class="legend">']
    for name, colour, meaning in VERDICTS:
        out.append('<div class="swatch" style="background:%s"></div>'
                   '<div><b>%s</b>: %s</div>' % (colour, _e(name),
                                                 _e(meaning)))
    out.append('<div class="swatch diff" style="background:#bdbdbd"></div>'
               '<div><b>black frame</b>: the verdict differs from the '
               'expected outcome (a finding); hover a cell for the '
               'expectation</div>'
               '<div class="swatch" style="border:1px solid #ddd;'
               'background:#fafafa"></div><div><b>empty</b>: not run on '
               'this storage</div></div>')
    return out


def _plots(results):
    out = ['<h2 id="plots">Plots</h2>']
    drawable = plotlib.available()
    for title, caption, data, draw in _plot_specs(results):
        out.append('<h3 class="plot">%s</h3>' % _e(title))
        if not data:
            out.append('<p class="muted">No plot: %s.</p>' % _e(caption))
        elif not drawable:
            out.append('<p class="muted">No plot: matplotlib is not '
                       'installed (it comes with the lab extra).</p>')
        else:
            png = base64.b64encode(draw(*data)).decode('ascii')
            out.append('<figure><img src="data:image/png;base64,%s" '
                       'alt="%s"><figcaption>%s.</figcaption></figure>' % (
                           png, _e(title), _e(caption)))
    return out


def _plot_specs(results):
    """(title, caption, what to draw or None, how); with nothing to draw
    the caption says why."""
    storages = list(dict.fromkeys(r.storage for r in results))
    modes = [('NON_SHARED_INC', 'NON_SHARED_INC (nova-block and its sets)'),
             ('NON_SHARED_DISK', 'NON_SHARED_DISK (raw-non-shared-disk)')]
    groups = []
    for storage in storages:
        by_mode = {}
        for r in results:
            mode = next((m for m, _ in modes if m in r.flags), None)
            if r.storage == storage and mode and r.migrated and \
                    not _is_fault(r.flag_set):
                by_mode.setdefault(mode, []).append(
                    r.disk_bytes_copied / MIB)
        if by_mode:
            groups.append((storage, by_mode))
    idle = [s for s in storages if s not in dict(groups)]
    plain, faulty = _row_names(results)
    rows = []
    for name in plain + faulty:
        times = [(r.storage, r.migration_s) for r in results
                 if r.flag_set == name and r.migration_s > 0
                 and r.verdict not in (Verdict.REFUSED, Verdict.ERROR)]
        if times:
            rows.append((name, times))
    runs = collections.Counter('%s / %s' % (r.storage, r.flag_set)
                               for r in results)
    seen, bars = {}, []
    for r in results:     # a repeated case's bars say which run they are
        label = '%s / %s' % (r.storage, r.flag_set)
        seen[label] = seen.get(label, 0) + 1
        if r.verdict == Verdict.DATA_LOSS:
            if runs[label] > 1:
                label += ' (run %d)' % seen[label]
            bars.append((label, r.lost_writes, r.corrupt_blocks))
    return [
        ('Disk bytes copied, NON_SHARED_INC against NON_SHARED_DISK',
         'one dot per migrated case, the line and number at the median; '
         'fault cases left out%s' % (
             '; nothing was copied on ' + ', '.join(idle) if idle else '')
         if groups else 'no migrated case copied its disk',
         (groups, modes) if groups else None, plotlib.disk_copied),
        ('Migration time by flag set',
         'one dot per case, coloured by storage; refused cases left out%s'
         % ('; fault cases below the dashed line' if faulty else '')
         if rows else 'no case spent time migrating',
         (rows, storages, len([r for r in rows if r[0] in plain]))
         if rows else None, plotlib.migration_time),
        ('Lost writes per data-loss case',
         'acknowledged writes the oracle did not find after the migration'
         if bars else 'no case lost data', (bars,) if bars else None,
         plotlib.lost_writes),
    ]


def _number(value, fmt='%d', blank=False):
    if blank or not value:
        return '<td class="n muted">%s</td>' % ('&ndash;' if blank else '0')
    return '<td class="n">%s</td>' % (fmt % value)


def _case_table(results):
    out = ['<h2 id="cases">Cases</h2>',
           '<p>Rows with a finding are shaded; a flag set opens the case\'s '
           'message and raw JSON.</p><table><tr><th>storage</th>'
           '<th>flag set</th><th>verdict</th><th>expected</th><th>lost<br>'
           'writes</th><th>migration<br>s</th><th>downtime<br>ms</th>'
           '<th>disk MiB<br>copied</th><th>finding</th></tr>']
    for n, r in enumerate(results):
        idle = r.verdict in (Verdict.REFUSED, Verdict.ERROR) and \
            not r.migration_s
        out.append(
            '<tr%s><td class="k">%s</td><td class="k"><a href="#%s">%s</a>'
            '</td><td>%s</td><td class="k" title="%s">%s</td>%s%s%s%s'
            '<td class="f">%s</td></tr>' % (
                '' if r.agrees else ' class="finding"', _e(r.storage),
                _anchor(n), _e(r.flag_set), _chip(r.verdict), _e(r.expected),
                _e(r.expected_outcome), _number(r.lost_writes),
                _number(r.migration_s, '%.1f', idle),
                _number(r.downtime_ms, '%d', idle or not r.migrated),
                _number(r.disk_bytes_copied / MIB, '%.1f', idle),
                _e(r.finding) if r.finding else
                '<span class="muted">as expected</span>'))
    out.append('</table>')
    return out


def _case_details(results):
    out = ['<h2 id="details">Messages and raw JSON</h2>']
    for n, r in enumerate(results):
        out.append(
            '<details class="case" id="%s"><summary>%s / %s: %s</summary>'
            '<p><b>expected</b>: %s</p><p><b>flags</b>: %s</p>'
            '<p><b>message</b>:</p><pre>%s</pre><details><summary>raw JSON'
            '</summary><pre>%s</pre></details></details>' % (
                _anchor(n), _e(r.storage), _e(r.flag_set), _chip(r.verdict),
                _e(r.expected), _e('|'.join(r.flags)),
                _e(r.message or '(none)'),
                _e(json.dumps(r.to_dict(), indent=2))))
    return out
