"""A lab session: the checks before it, the lab brought up and always
down again, the case runner, the cases run side by side, and their
results published (what ``migration-lab`` commands share).
"""

from concurrent import futures
import os
import signal
import subprocess
import time

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import guest as guestlib
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin.lab import pipeline
from migration_tempest_plugin.lab import report
from migration_tempest_plugin.lab import results as resultlib
from migration_tempest_plugin.runtime import LabError

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'tools')


def say(text):
    print(text, flush=True)


# -- preflight ----------------------------------------------------------------


def preflight(lab, install=True):
    """Root, the Debian packages (installed when missing), libvirt-python."""
    if os.geteuid() != 0:
        raise LabError('the lab needs root (network and mount namespaces, '
                       'libvirtd); run it as root')
    missing = lab.missing_binaries()
    if missing and install:
        say('lab: installing Debian packages from bindep.txt (missing: %s)'
            % ', '.join(sorted(missing)))
        if subprocess.run([os.path.join(TOOLS, 'install-deps.sh')]).returncode:
            raise LabError('tools/install-deps.sh failed')
    lab.preflight()
    try:
        import libvirt  # noqa: F401
    except ImportError:
        raise LabError('libvirt-python is not installed (pip install '
                       '.[lab], or use tox -e lab)')


def make_lab(args, install=True):
    lab = nodes.Lab(args.state_dir)
    preflight(lab, install)
    return lab


# -- commands -----------------------------------------------------------------


def layout(args):
    return blocks.make_layout(args.static_blocks, args.work_blocks)


def settings(args):
    return pipeline.Settings(bandwidth_mib=args.bandwidth,
                             migration_timeout_s=args.timeout)


def make_runner(args, lab):
    """A CaseRunner on a lab that is up, with the guest built."""

    work_dir = os.path.join(args.state_dir, 'matrix')
    os.makedirs(work_dir, exist_ok=True)
    say('lab: building the guest')
    guest = guestlib.build_guest(os.path.join(args.state_dir, 'guest'))
    return pipeline.CaseRunner(lab, guest, layout(args), work_dir,
                               settings(args))


def run_cases(args, lab, cases):
    """Run `cases` on a lab that is up; return the results."""

    runner = make_runner(args, lab)

    def run_one(case):
        try:
            return runner.run(case)
        except Exception as exc:  # a harness failure is this case's ERROR
            return runner.error_result(case, exc)

    runner.prepare(cases)
    alone = [n for n, case in enumerate(cases) if case.exclusive]
    # Fault cases last longest: started first, they do not hold the tail.
    side_by_side = sorted((n for n in range(len(cases)) if n not in alone),
                          key=lambda n: cases[n].fault is None)
    say('lab: %d cases, %d at a time' % (len(cases), args.jobs) + (
        '; %d of them, one after the other, hold the nodes\' link alone '
        'while they disturb it, and the others boot meanwhile'
        % len(alone) if alone else ''))
    results = [None] * len(cases)
    # The cases that hold the link alone run in a lane of their own, beside
    # the others: only their migrations exclude the others' (NodesLink).
    pools = [futures.ThreadPoolExecutor(args.jobs),
             futures.ThreadPoolExecutor(1)]
    try:
        running = {}
        for pool, group in zip(pools, (side_by_side, alone)):
            running.update({pool.submit(run_one, cases[n]): n
                            for n in group})
        for done, future in enumerate(futures.as_completed(running), 1):
            results[running[future]] = future.result()
            say(report.progress_line(done, len(cases),
                                     results[running[future]]))
    finally:
        # On Ctrl-C no queued case may start; the running ones end when
        # the lab goes down under them.
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
    return results


def publish(args, results, extra=None):
    say('')
    say(report.table(results))
    diffs = report.findings(results)
    say('')
    if diffs:
        say('Findings: %d case(s) differ from the expected outcome:'
            % len(diffs))
        for r in diffs:
            say('  %s / %s: %s' % (r.storage, r.flag_set, r.finding))
    else:
        say('Every case matched its expected outcome.')
    if args.json:
        with open(args.json, 'w') as f:
            f.write(report.to_json(results, extra))
        say('lab: JSON in %s' % args.json)
    if args.html:
        with open(args.html, 'w') as f:
            f.write(report.to_html(results, extra=extra))
        say('lab: HTML in %s' % args.html)


# What a control case must show: the seed's loss, nothing lost, or the
# stack's refusal (with the expected message) and nothing lost.
CONTROL_VERDICTS = {'loss': resultlib.Verdict.DATA_LOSS,
                    'intact': resultlib.Verdict.INTACT,
                    'refused': resultlib.Verdict.REFUSED}


def control_summary(results):
    """Per control case: how many runs gave the verdict it must give."""
    summary = {}
    for r in results:
        if not r.control:
            continue
        key = '%s/%s' % (r.storage, r.flag_set)
        wanted = CONTROL_VERDICTS[r.control]
        entry = summary.setdefault(key, {'control': r.control, 'runs': 0,
                                         'held': 0})
        entry['runs'] += 1
        # A refusal holds only with the refusing component's words (and
        # the disk intact, which REFUSED implies).
        entry['held'] += r.verdict == wanted and (
            wanted != resultlib.Verdict.REFUSED or r.agrees)
    return summary


def controls_hold(summary, out=say):
    """Loss controls: DATA-LOSS in at least 4 of 5 runs (80%); intact
    and refused controls: their verdict every time."""
    ok = True
    for key, entry in sorted(summary.items()):
        if entry['control'] == 'loss':
            holds = entry['held'] * 5 >= entry['runs'] * 4
        else:
            holds = entry['held'] == entry['runs']
        ok = ok and holds
        out('control %-36s %-6s %d/%d %s' % (
            key, entry['control'], entry['held'], entry['runs'],
            'holds' if holds else 'FAILS'))
    return ok


def with_lab(args, body):
    """Bring the lab up, run body(lab), and always bring it down again,
    on failure and on Ctrl-C or SIGTERM too."""
    lab = make_lab(args)

    def terminate(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, terminate)
    try:
        started = time.monotonic()
        lab.up(progress=say)
        say('lab: up in %.1fs' % (time.monotonic() - started))
        return body(lab)
    finally:
        say('lab: bringing the lab down')
        lab.down()
