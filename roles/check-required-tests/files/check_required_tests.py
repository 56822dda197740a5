"""Fail unless every named test ran and passed in the last tempest run.

Usage: check_required_tests.py TEMPEST_DIR TEST_NAME...

TEMPEST_DIR is where run-tempest ran tempest (its .stestr repository holds
the last run).  A TEST_NAME is a test method name (test_...): it matches
every test id whose last component, without tempest's "[id-...,tags]"
suffix, is that name.  Each name must match at least one test, and every
match must have the status "success": a skipped test fails the check as a
missing or failed one does.  Uses the stestr and subunit2csv of tempest's
tox env; needs only the standard library itself.
"""

import csv
import glob
import io
import os
import re
import subprocess
import sys


def tool(tempest_dir, name):
    candidates = [os.path.join(tempest_dir, '.tox', 'tempest', 'bin', name)]
    candidates += sorted(glob.glob(
        os.path.join(tempest_dir, '.tox', '*', 'bin', name)))
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    sys.exit('no %s in any tox env under %s/.tox' % (name, tempest_dir))


def last_run(tempest_dir):
    stream = subprocess.run([tool(tempest_dir, 'stestr'), 'last', '--subunit'],
                            cwd=tempest_dir, stdout=subprocess.PIPE,
                            check=True).stdout
    table = subprocess.run([tool(tempest_dir, 'subunit2csv'),
                            '--no-passthrough'],
                           input=stream, stdout=subprocess.PIPE,
                           check=True).stdout
    return list(csv.DictReader(io.StringIO(table.decode())))


def method_name(test_id):
    return re.sub(r'\[[^\]]*\]$', '', test_id).rsplit('.', 1)[-1]


def main(tempest_dir, names):
    rows = last_run(tempest_dir)
    missing = []
    for name in names:
        runs = [row for row in rows if method_name(row['test']) == name]
        if not runs:
            print('%s: did not run' % name)
            missing.append(name)
        for row in runs:
            print('%s: %s' % (row['test'], row['status']))
            if row['status'] != 'success':
                missing.append(row['test'])
    if missing:
        sys.exit('required tests that did not pass: %s' % ', '.join(missing))


if __name__ == '__main__':
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
