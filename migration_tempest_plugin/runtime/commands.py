"""Commands run to their end: on the host, or logged to a file."""

import logging
import os
import shutil
import subprocess
import time

from migration_tempest_plugin import common
from migration_tempest_plugin.runtime.errors import LabCommandError
from migration_tempest_plugin.runtime.errors import LabError

LOG = logging.getLogger(__name__)

START_MARKER = '--- started '


def tail(path, lines=15, limit=1500):
    """The last lines of a log, from the last start marker on."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32768))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return '(no log at %s)' % path
    marker = text.rfind('\n' + START_MARKER)
    if marker >= 0:
        text = text[marker + 1:]
    out = '\n'.join(text.rstrip().splitlines()[-lines:])
    return out if len(out) <= limit else '...' + out[-limit:]


def command_env():
    env = dict(os.environ)
    path = env.get('PATH', '')
    env['PATH'] = path + ':' + common.SBIN_PATH if path else common.SBIN_PATH
    env['LC_ALL'] = 'C'
    return env


def which(binary):
    return shutil.which(binary, path=command_env()['PATH'])


def host_run(argv, check=True, timeout=120, input=None, where='host',
             env=None, shown=None):
    """Run `argv` to its end and return the CompletedProcess (text output);
    raise LabError on a timeout or a missing program, LabCommandError on a
    failure when `check`.  Errors name `where` and `shown` (the command as
    the caller knows it, when `argv` wraps it)."""
    shown = [str(a) for a in (shown or argv)]
    started = time.monotonic()
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout, input=input,
                             env=env or command_env(),
                             cwd='/', stdin=None if input is not None
                             else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise LabError('%s: `%s` timed out after %ss' % (
            where, ' '.join(shown), timeout)) from exc
    except FileNotFoundError as exc:
        raise LabError('%s: `%s` not found' % (where, argv[0])) from exc
    LOG.debug('%s: %s -> exit %d in %.2fs', where, ' '.join(shown),
              res.returncode, time.monotonic() - started)
    if check and res.returncode:
        raise LabCommandError(shown, res.returncode, res.stdout, res.stderr,
                              where)
    return res


def run_logged(argv, what, log, env=None, timeout=900, input=None,
               stdout_apart=False):
    """Run `argv` to its end with its output appended to `log` (after a
    start marker) and return that output as text; raise LabError naming
    `what`, with the log's tail, if it fails.  With `stdout_apart`, only
    stderr goes to the log and stdout is returned (a tool that answers in
    JSON)."""
    argv = [str(a) for a in argv]
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'ab') as out:
        out.write(('\n%s%s: %s\n' % (START_MARKER, time.strftime('%F %T'),
                                     ' '.join(argv))).encode())
        out.flush()
        try:
            res = subprocess.run(
                argv, stdout=subprocess.PIPE,
                stderr=out if stdout_apart else subprocess.STDOUT,
                input=input.encode() if input is not None else None,
                stdin=None if input is not None else subprocess.DEVNULL,
                env=env or command_env(), timeout=timeout, cwd='/')
        except subprocess.TimeoutExpired as exc:
            raise LabError('%s: timed out after %ds' % (what, timeout)
                           ) from exc
        except OSError as exc:
            raise LabError('%s: cannot run %s: %s' % (what, argv[0], exc)
                           ) from exc
        if not stdout_apart:
            out.write(res.stdout)
    if res.returncode:
        raise LabError('%s failed (exit %d); last lines of %s:\n%s' % (
            what, res.returncode, log, tail(log)))
    return res.stdout.decode('utf-8', 'replace')
