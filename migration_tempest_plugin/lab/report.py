"""The matrix's results as a terminal table, JSON and one HTML page."""

import html
import json

COLOURS = {'INTACT': '#2e7d32', 'DATA-LOSS': '#c62828',
           'REFUSED': '#757575', 'ERROR': '#ef6c00'}


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


def to_html(results, title='migration-lab matrix', extra=None):
    """Storage by flag set, each cell coloured by verdict, details below."""
    e = html.escape
    storages = list(dict.fromkeys(r.storage for r in results))
    flag_sets = list(dict.fromkeys(r.flag_set for r in results))
    cell = {(r.storage, r.flag_set): r for r in results}
    out = ['<!DOCTYPE html><html><head><meta charset="utf-8">',
           '<title>%s</title><style>' % e(title),
           'body{font-family:sans-serif;margin:2em}'
           'table{border-collapse:collapse}'
           'td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}'
           'td.v{color:#fff;text-align:center}'
           'td.v a{color:#fff}.diff{outline:3px solid #000}'
           '</style></head><body>',
           '<h1>%s</h1>' % e(title)]
    if extra:
        out.append('<pre>%s</pre>' % e(json.dumps(extra, indent=2)))
    out.append('<p>Cells with a black frame differ from the expected '
               'outcome.</p><table><tr><th>flag set</th>')
    out += ['<th>%s</th>' % e(s) for s in storages]
    out.append('</tr>')
    for fs in flag_sets:
        out.append('<tr><th>%s</th>' % e(fs))
        for s in storages:
            r = cell.get((s, fs))
            if r is None:
                out.append('<td></td>')
                continue
            out.append('<td class="v%s" style="background:%s" title="%s">'
                       '<a href="#%s">%s</a></td>' % (
                           '' if r.agrees else ' diff',
                           COLOURS.get(r.verdict, '#000'), e(r.expected),
                           e(_anchor(r)), e(r.verdict)))
        out.append('</tr>')
    out.append('</table><h2>Cases</h2>')
    for r in results:
        out.append('<h3 id="%s">%s / %s: %s</h3>' % (
            e(_anchor(r)), e(r.storage), e(r.flag_set), e(r.verdict)))
        out.append('<pre>%s</pre>' % e(json.dumps(r.to_dict(), indent=2)))
    out.append('</body></html>')
    return '\n'.join(out)


def _anchor(r):
    return '%s-%s' % (r.storage, r.flag_set)
