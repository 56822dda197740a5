"""migration-lab up | down | status | matrix | run | bench | soak
(``run --smoke``: the lab end to end, quickly).

libvirt-python (in CaseRunner) and matplotlib (in the report's plots) are
imported where they are used, so that `migration-lab flags` needs neither.
"""

from concurrent import futures
import statistics
import time

from migration_tempest_plugin.integrity import bench
from migration_tempest_plugin.lab import disks
from migration_tempest_plugin.lab import faults
from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin.lab import results as resultlib
from migration_tempest_plugin.lab import session
from migration_tempest_plugin.lab import soak
from migration_tempest_plugin.runtime import LabError
from migration_tempest_plugin import storage_modes

say = session.say
# The checks of the controls (used by CI and unit tests).
control_summary = session.control_summary
controls_hold = session.controls_hold


def cmd_up(args):
    lab = session.make_lab(args)
    started = time.monotonic()
    try:
        lab.up(progress=say)
    except BaseException:
        say('lab: up failed; bringing down what was started')
        lab.down()
        raise
    say('lab: up in %.1fs' % (time.monotonic() - started))


def cmd_down(args):
    lab = session.make_lab(args, install=False)
    started = time.monotonic()
    lab.down(progress=say)
    say('lab: down in %.1fs' % (time.monotonic() - started))


def cmd_status(args):
    say(nodes.format_status(session.make_lab(args, install=False).status()))


def _cases(args):
    storages = args.storage or storage_modes.NAMES
    if args.controls:
        return [c for c in matrix.control_cases() if c.storage in storages
                and (not args.only or any(w in c.id for w in args.only))
                ] * args.repeat
    if args.smoke:
        return matrix.smoke_cases(storages) * args.repeat
    cases = [] if args.faults else matrix.all_cases(storages, args.only)
    extra = faults.fault_cases()
    if not args.faults:
        extra = disks.disk_cases() + extra
    cases += [c for c in extra if c.storage in storages
              and (not args.only or any(w in c.id for w in args.only))]
    return cases * args.repeat


def cmd_matrix(args):
    """On a lab that is up (migration-lab up)."""
    return _matrix_body(args)(session.make_lab(args, install=False))


def _matrix_body(args):
    def body(lab):
        cases = _cases(args)
        started = time.monotonic()
        results = session.run_cases(args, lab, cases)
        extra = {'wall_s': round(time.monotonic() - started, 1)}
        summary = session.control_summary(results)
        if summary:
            extra['controls'] = summary
        session.publish(args, results, extra)
        say('lab: %d cases in %.1fs' % (len(results), extra['wall_s']))
        if summary and not session.controls_hold(summary):
            say('lab: a control failed: the oracle or the lab cannot be '
                'trusted on this machine')
            return 1
        errors = [r for r in results
                  if r.verdict == resultlib.Verdict.ERROR]
        if errors:
            say('lab: %d case(s) could not be run (ERROR)' % len(errors))
            return 1
        return 0
    return body


def cmd_run(args):
    """The main job: up, matrix, report, down."""
    return session.with_lab(args, _matrix_body(args))


def cmd_bench(args):

    b = bench.benchmark(args.checker_mib, rounds=args.checker_rounds)
    say('checker on %d MiB with %d ACKs, medians of %d rounds: %.0f MB/s '
        'with the console parsed inside check() (ratio %.2f to sha256), '
        '%.0f MB/s on a parsed history (ratio %.2f); hashlib.sha256: '
        '%.0f MB/s' % (b.mib, b.acks, b.rounds, b.console_mbps,
                       b.console_ratio, b.parsed_mbps, b.parsed_ratio,
                       b.sha256_mbps))
    if args.checker_only:
        return 0

    def body(lab):
        walls, per_case, shares = [], {}, []
        parts = dict.fromkeys(('boot', 'link wait', 'migration', 'verify',
                               'rest'), 0.0)
        for n in range(args.rounds):
            cases = _cases(args)
            started = time.monotonic()
            results = session.run_cases(args, lab, cases)
            walls.append(time.monotonic() - started)
            say('bench: round %d/%d: %d cases in %.1fs' % (
                n + 1, args.rounds, len(cases), walls[-1]))
            for r in results:
                per_case.setdefault('%s/%s' % (r.storage, r.flag_set),
                                    []).append(r.duration_s)
                if r.duration_s and r.verify_s:
                    shares.append(r.verify_s / r.duration_s)
                # where a case's time goes, summed over cases and rounds
                parts['boot'] += r.boot_s
                parts['link wait'] += r.link_wait_s
                parts['migration'] += r.migration_s
                parts['verify'] += r.verify_s or 0.0
                parts['rest'] += max(0.0, r.duration_s - r.boot_s -
                                     r.link_wait_s - r.migration_s -
                                     (r.verify_s or 0.0))
        say('')
        say('median wall time of the matrix: %.1fs over %d round(s)' % (
            statistics.median(walls), len(walls)))
        say('median case time:')
        for key, values in per_case.items():
            say('  %-44s %6.1fs' % (key, statistics.median(values)))
        if shares:
            say('oracle verification share of case time: median %.1f%%, '
                'max %.1f%%' % (100 * statistics.median(shares),
                                100 * max(shares)))
        total = sum(parts.values())
        if total:
            say('case time by phase (all cases, all rounds; cases run side '
                'by side, so it exceeds the wall time): ' + ', '.join(
                    '%s %.0fs (%.0f%%)' % (k, v, 100 * v / total)
                    for k, v in parts.items()))
        return 0
    return session.with_lab(args, body)


def cmd_soak(args):
    """Up, one guest per storage mode migrated back and forth, down."""

    storages = args.storage or list(soak.SOAK_STORAGES)

    def body(lab):
        runner = session.make_runner(args, lab)
        soaks = [soak.Soak(runner, storage, args.rounds, progress=say)
                 for storage in storages]
        runner.prepare([s.case for s in soaks])
        say('soak: %d rounds on %s, side by side' % (
            args.rounds, ', '.join(storages)))
        with futures.ThreadPoolExecutor(len(storages)) as pool:
            results = list(pool.map(lambda s: s.run(), soaks))
        say('')
        for result in results:
            say(result.summary())
            for path in result.evidence:
                say('  evidence: %s' % path)
        return 0 if all(r.verdict == resultlib.Verdict.INTACT
                        for r in results) else 1
    return session.with_lab(args, body)


# -- argument parsing ---------------------------------------------------------


def _common(p, matrix=True):
    p.add_argument('--state-dir', default=nodes.DEFAULT_STATE_DIR,
                   help='where the lab keeps everything (default %(default)s'
                        ', or $MIGRATION_LAB_STATE)')
    if not matrix:
        return
    p.add_argument('--storage', action='append',
                   choices=storage_modes.NAMES,
                   help='only these storage modes (repeatable)')
    p.add_argument('--only', action='append', metavar='TEXT',
                   help='only cases whose storage/flag-set id contains TEXT')
    p.add_argument('--controls', action='store_true',
                   help='run only the control cases (of --storage and '
                        '--only, when given)')
    p.add_argument('--smoke', action='store_true',
                   help="only nova's live and block sets on each storage "
                        'mode whose outcome does not depend on timing: the '
                        'nodes, network, storage and case pipeline end to '
                        'end (the lab then goes down and must leave '
                        'nothing behind)')
    p.add_argument('--faults', action='store_true',
                   help='run only the fault cases (abort, kills, network '
                        'cut during the migration)')
    p.add_argument('--repeat', type=int, default=None,
                   help='run each case this many times (default 1; 5 with '
                        '--controls)')
    # Cases spend much of their time waiting (the capped migration, the
    # guest's writes, the nodes' link): on 2 cores, 3 at a time ran the
    # matrix in 292 s against 321 s with 2, with the same verdicts.
    p.add_argument('--jobs', type=int, default=3,
                   help='cases run at the same time (default %(default)s)')
    _guest_and_migration(p)
    p.add_argument('--json', metavar='PATH', help='write results as JSON')
    p.add_argument('--html', metavar='PATH', help='write an HTML report')


def _guest_and_migration(p):
    p.add_argument('--bandwidth', type=int, default=32, metavar='MIB_S',
                   help='migration bandwidth, disk mirror included '
                        '(default %(default)s MiB/s; 0 = unlimited)')
    p.add_argument('--timeout', type=float, default=90,
                   help='seconds before a migration is aborted')
    p.add_argument('--work-blocks', type=int, default=8192)
    p.add_argument('--static-blocks', type=int, default=8191)


def add_commands(sub):
    p = sub.add_parser('up', help='start the two lab nodes and storage')
    _common(p, matrix=False)
    p.set_defaults(func=cmd_up)
    p = sub.add_parser('down', help='stop and remove everything of the lab')
    _common(p, matrix=False)
    p.set_defaults(func=cmd_down)
    p = sub.add_parser('status', help='show the lab nodes and storage')
    _common(p, matrix=False)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser('matrix', help='run the flag matrix on a lab that '
                                      'is up')
    _common(p)
    p.set_defaults(func=cmd_matrix)
    p = sub.add_parser('run', help='the main job: up, matrix, report, down')
    _common(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser('bench', help='time the matrix and the oracle')
    _common(p)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--checker-mib', type=int, default=256)
    p.add_argument('--checker-rounds', type=int, default=5,
                   help='rounds of the checker figure (medians)')
    p.add_argument('--checker-only', action='store_true',
                   help='only the checker-versus-sha256 figure; no lab')
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser('soak', help='one writing guest migrated back and '
                                    'forth, checked after every round')
    _common(p, matrix=False)
    _guest_and_migration(p)
    p.add_argument('--storage', action='append', choices=soak.SOAK_STORAGES,
                   help='storage modes to soak, side by side (repeatable; '
                        'default: all of them)')
    p.add_argument('--rounds', type=int, default=100,
                   help='migrations per storage mode (default %(default)s)')
    p.set_defaults(func=cmd_soak)


def finish_args(args):
    if getattr(args, 'repeat', 1) is None:
        args.repeat = 5 if args.controls else 1
    for name in ('repeat', 'jobs', 'rounds'):
        if getattr(args, name, 1) < 1:
            raise LabError('--%s must be at least 1' % name)
    return args
