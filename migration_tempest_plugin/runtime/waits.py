"""Waiting for a condition on the monotonic clock (no wall-clock jumps, no
tempest)."""

import logging
import time

from migration_tempest_plugin.runtime.errors import LabError

LOG = logging.getLogger(__name__)


def call_until_true(func, duration, sleep_for):
    """Call `func` until it returns True or `duration` seconds pass on the
    monotonic clock, sleeping `sleep_for` between calls; return whether
    it did."""
    deadline = time.monotonic() + duration
    while True:
        if func():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(sleep_for, left))


def wait_for(what, predicate, timeout, proc_check=None, interval=0.2):
    """Wait until `predicate()` is true; `proc_check()` runs before each try
    and raises when waiting is pointless (the process died)."""
    def ready():
        if proc_check is not None:
            proc_check()
        return predicate()
    started = time.monotonic()
    if not call_until_true(ready, timeout, interval):
        raise LabError('timed out after %ss waiting for %s'
                       % (timeout, what))
    LOG.debug('%s after %.1fs', what, time.monotonic() - started)
