"""roles/migration-host-access/files/libvirt-daemon.sh, the libvirt stop and
start commands of the Zuul jobs' compute hosts file, against a stand-in
for systemctl.

The stand-in keeps unit states in a JSON file and runs a real process as
each active service's main process, so the script's SIGKILL is real.  It
models what the script relies on: socket units, Restart=on-failure (a
service whose main process dies is started again unless it is masked),
masks in /run (is-enabled says "masked-runtime"; a masked unit does not
start), reset-failed.  It is not systemd: that the real one behaves so on
Ubuntu noble is written in doc/source/zuul.rst as untested.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile

import testtools

import migration_tempest_plugin

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(migration_tempest_plugin.__file__)),
    'roles', 'migration-host-access', 'files', 'libvirt-daemon.sh')

FAKE_SYSTEMCTL = r'''#!%(python)s
import json, os, subprocess, sys

STATE = os.environ['FAKE_SYSTEMD_STATE']


def load():
    with open(STATE) as f:
        return json.load(f)


def save(units):
    with open(STATE, 'w') as f:
        json.dump(units, f)


def alive(pid):
    try:
        with open('/proc/%%d/stat' %% pid) as f:
            return f.read().split(') ', 1)[1][0] not in 'ZX'
    except OSError:
        return False


def spawn():
    return subprocess.Popen(['sleep', '300'], start_new_session=True,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).pid


def refresh(units):
    for name, u in units.items():
        if name.endswith('.service') and u['state'] == 'active' \
                and not alive(u['pid']):
            u['pid'] = 0
            if u.get('mask'):
                u['state'] = 'failed'
            else:
                u['state'] = 'active'
                u['pid'] = spawn()
                u['restarts'] = u.get('restarts', 0) + 1


args = [a for a in sys.argv[1:] if a not in ('--quiet', '--runtime')]
quiet = '--quiet' in sys.argv
units = load()
refresh(units)
with open(STATE + '.log', 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\n')
verb, names = args[0], args[1:]
status = 0
if verb == 'is-active':
    u = units.get(names[0])
    state = u['state'] if u else 'inactive'
    if not quiet:
        print(state)
    status = 0 if state == 'active' else 3
elif verb == 'is-enabled':
    u = units.get(names[0])
    if u is None:
        word = 'not-found'
    elif u.get('mask'):
        word = 'masked-runtime'
    else:
        word = u['enabled']
    if not quiet:
        print(word)
    status = 0 if word == 'enabled' else 1
elif verb == 'show':
    prop, name = names[1], names[-1]
    u = units.get(name)
    if prop == 'MainPID':
        print(u['pid'] if u and u['state'] == 'active' else 0)
    else:
        print('masked' if u and u.get('mask') else
              'loaded' if u else 'not-found')
elif verb in ('mask', 'unmask'):
    for name in names:
        units.setdefault(name, {'state': 'inactive', 'enabled': 'disabled',
                                'pid': 0})['mask'] = verb == 'mask'
elif verb == 'reset-failed':
    for name in names:
        if name in units and units[name]['state'] == 'failed':
            units[name]['state'] = 'inactive'
elif verb in ('start', 'stop'):
    for name in names:
        u = units.get(name)
        if u is None:
            sys.stderr.write('Unit %%s not found.\n' %% name)
            status = 5
            continue
        if verb == 'start':
            if u.get('mask'):
                sys.stderr.write('Unit %%s is masked.\n' %% name)
                status = 1
            elif u['state'] != 'active':
                u['state'] = 'active'
                if name.endswith('.service'):
                    u['pid'] = spawn()
        else:
            if u['pid'] and alive(u['pid']):
                os.kill(u['pid'], 15)
            u['state'], u['pid'] = 'inactive', 0
else:
    sys.stderr.write('fake systemctl: %%s not modelled\n' %% verb)
    status = 1
save(units)
sys.exit(status)
''' % {'python': sys.executable}


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(') ', 1)[1][0] not in 'ZX'
    except OSError:
        return False


class LibvirtDaemonScriptTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix='mtp-fake-systemd-')
        self.addCleanup(self._cleanup)
        fake = os.path.join(self.dir, 'systemctl')
        with open(fake, 'w') as f:
            f.write(FAKE_SYSTEMCTL)
        os.chmod(fake, 0o755)
        self.state = os.path.join(self.dir, 'state.json')

    def _cleanup(self):
        if os.path.exists(self.state):
            for unit in self.units().values():
                if unit.get('pid') and _alive(unit['pid']):
                    os.kill(unit['pid'], signal.SIGKILL)
        subprocess.run(['rm', '-rf', self.dir], check=False)

    def host(self, active=(), present=(), enabled=()):
        """Units of one host: `active` ones running (a service with a real
        main process), `present` ones installed but stopped."""
        units = {}
        for name in present + active:
            units[name] = {'state': 'inactive', 'pid': 0,
                           'enabled': ('enabled' if name in enabled
                                       else 'disabled')}
        for name in active:
            units[name]['state'] = 'active'
            if name.endswith('.service'):
                units[name]['pid'] = subprocess.Popen(
                    ['sleep', '300'], start_new_session=True).pid
        with open(self.state, 'w') as f:
            json.dump(units, f)

    def units(self):
        with open(self.state) as f:
            return json.load(f)

    def run_script(self, *args):
        env = dict(os.environ, PATH=self.dir + ':/usr/bin:/bin',
                   FAKE_SYSTEMD_STATE=self.state, MIGRATION_LIBVIRT_WAIT='5')
        return subprocess.run(['sh', SCRIPT] + list(args), env=env,
                              capture_output=True, text=True, timeout=60)

    def assert_ran(self, result):
        self.assertEqual(0, result.returncode,
                         result.stdout + result.stderr)

    def test_monolithic_libvirtd_stays_down_until_start(self):
        daemon = ['libvirtd.socket', 'libvirtd-ro.socket',
                  'libvirtd-admin.socket', 'libvirtd.service']
        self.host(active=tuple(daemon),
                  present=('virtqemud.service', 'virtqemud.socket'),
                  enabled=('libvirtd.service',))
        first_pid = self.units()['libvirtd.service']['pid']

        self.assert_ran(self.run_script('stop'))
        units = self.units()
        self.assertFalse(_alive(first_pid))
        for name in daemon:
            self.assertNotEqual('active', units[name]['state'], name)
            self.assertTrue(units[name].get('mask'), name)
        # Restart=on-failure was refused by the mask, not run.
        self.assertEqual(0, units['libvirtd.service'].get('restarts', 0))
        self.assertFalse(units['virtqemud.service'].get('mask'))
        # Still down on a later look (nothing restarts it).
        self.assertNotEqual('active', self.units()['libvirtd.service'][
            'state'])

        self.assert_ran(self.run_script('start'))
        units = self.units()
        for name in daemon:
            self.assertEqual('active', units[name]['state'], name)
            self.assertFalse(units[name].get('mask'), name)
        self.assertTrue(_alive(units['libvirtd.service']['pid']))
        self.assertEqual('inactive', units['virtqemud.service']['state'])

    def test_modular_virtqemud(self):
        daemon = ['virtqemud.socket', 'virtqemud-ro.socket',
                  'virtqemud-admin.socket', 'virtqemud.service']
        self.host(active=tuple(daemon), enabled=('virtqemud.service',))
        self.assert_ran(self.run_script('stop'))
        units = self.units()
        for name in daemon:
            self.assertNotEqual('active', units[name]['state'], name)
        self.assertNotIn('libvirtd.service', units)
        self.assert_ran(self.run_script('start'))
        for name in daemon:
            self.assertEqual('active', self.units()[name]['state'], name)

    def test_socket_activated_daemon_that_exited_idle(self):
        # libvirtd --timeout 120 leaves only its sockets listening.
        self.host(active=('libvirtd.socket', 'libvirtd-ro.socket'),
                  present=('libvirtd.service', 'libvirtd-admin.socket'),
                  enabled=('libvirtd.service',))
        self.assert_ran(self.run_script('stop'))
        units = self.units()
        self.assertEqual('inactive', units['libvirtd.socket']['state'])
        self.assertEqual('inactive', units['libvirtd-ro.socket']['state'])
        self.assertTrue(units['libvirtd.service'].get('mask'))
        self.assertFalse(units['libvirtd-admin.socket'].get('mask'))
        self.assert_ran(self.run_script('start'))
        units = self.units()
        self.assertEqual('active', units['libvirtd.service']['state'])
        self.assertEqual('active', units['libvirtd.socket']['state'])
        self.assertEqual('active', units['libvirtd-ro.socket']['state'])
        # Only what was running comes back.
        self.assertEqual('inactive', units['libvirtd-admin.socket']['state'])

    def test_start_without_stop_starts_the_enabled_daemon(self):
        self.host(present=('libvirtd.service', 'virtqemud.service'),
                  enabled=('libvirtd.service',))
        result = self.run_script('stop')
        self.assert_ran(result)
        self.assertIn('no libvirt daemon was running', result.stdout)
        self.assert_ran(self.run_script('start'))
        units = self.units()
        self.assertEqual('active', units['libvirtd.service']['state'])
        self.assertEqual('inactive', units['virtqemud.service']['state'])

    def test_start_fails_when_no_daemon_is_enabled(self):
        self.host(present=('libvirtd.service',))
        self.assertEqual(1, self.run_script('start').returncode)

    def test_usage(self):
        self.assertEqual(2, self.run_script().returncode)
        self.assertEqual(2, self.run_script('restart').returncode)
