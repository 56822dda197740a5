"""The shared runtime's processes and logs, with real short-lived
processes (sleep, python) and temporary folders."""

import os
import subprocess
import sys
import tempfile
import time

import fixtures
import testtools

from migration_tempest_plugin import runtime


class TestLogs(testtools.TestCase):

    def test_tail_keeps_only_the_last_run(self):
        with tempfile.NamedTemporaryFile('w', delete=False) as f:
            f.write('old error\n\n--- started 2026 libvirtd\nnew line 1\n'
                    'new 2\n')
        self.addCleanup(os.unlink, f.name)
        self.assertEqual('--- started 2026 libvirtd\nnew line 1\nnew 2',
                         runtime.tail(f.name))
        self.assertEqual('new line 1 | new 2',
                         runtime.one_line(runtime.tail(f.name, 2)))

    def test_tail_of_a_missing_log(self):
        self.assertEqual('(no log at /nonexistent)',
                         runtime.tail('/nonexistent'))


class TestProcesses(testtools.TestCase):

    def test_terminate_only_what_is_still_ours(self):
        proc = subprocess.Popen(['sleep', '30'])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        [(pid, start)] = runtime.entries([proc.pid])
        self.assertTrue(runtime.pid_alive(pid, start))
        self.assertFalse(runtime.pid_alive(pid, start + 1))  # not ours
        self.assertEqual([], runtime.terminate([(pid, start + 1)], 1))
        self.assertIsNone(proc.poll())
        self.assertEqual([], runtime.terminate([(pid, start)], 5))
        self.assertFalse(runtime.pid_alive(pid))

    def test_host_namespaces_are_never_targets(self):
        own = os.stat('/proc/self/ns/net').st_ino
        self.assertEqual([], runtime.pids_in_namespaces([own], []))

    def test_recycled_pid_is_not_ours(self):
        proc = subprocess.Popen(['sleep', '30'], start_new_session=True)
        try:
            start = runtime.proc_start(proc.pid)
            self.assertEqual([proc.pid],
                             runtime.session_members(proc.pid, start))
            self.assertEqual([], runtime.session_members(proc.pid,
                                                         start + 1))
        finally:
            proc.kill()
            proc.wait()
        time.sleep(0.05)
        self.assertFalse(runtime.pid_alive(proc.pid))


class TestSupervisor(testtools.TestCase):

    def supervisor(self):
        d = self.useFixture(fixtures.TempDir()).path
        return runtime.Supervisor(os.path.join(d, 'pids'),
                                  os.path.join(d, 'logs'))

    def test_start_stop_session(self):
        sup = self.supervisor()
        argv = [sys.executable, '-c',
                'import subprocess, time; '
                'subprocess.Popen(["sleep", "60"]); '
                'print("ready", flush=True); time.sleep(60)']
        pid = sup.start('svc', argv)
        self.addCleanup(sup.stop, 'svc', 5)
        self.assertEqual(pid, sup.start('svc', argv))  # twice: same
        sup.wait('svc', 'said ready', lambda: 'ready' in open(
            sup.log('svc')).read().splitlines(), 10, interval=0.05)
        members = sup.members('svc')
        self.assertIn(pid, members)
        self.assertEqual(2, len(members))
        self.assertGreater(runtime.rss_bytes(members), 0)
        self.assertEqual(['svc'], sup.names())
        self.assertTrue(sup.stop('svc'))
        self.assertIsNone(sup.pid('svc'))
        for p in members:
            self.assertFalse(runtime.pid_alive(p))
        self.assertEqual([], sup.names())

    def test_log_given_by_the_caller(self):
        sup = self.supervisor()
        log = os.path.join(os.path.dirname(sup.pid_dir), 'elsewhere.out')
        sup.start('echo', ['sh', '-c', 'echo hello; sleep 30'], log)
        self.addCleanup(sup.stop, 'echo', 5)
        sup.wait('echo', 'said hello',
                 lambda: 'hello' in open(log).read(), 10, interval=0.05)
        self.assertEqual(log, sup.record('echo')['log'])

    def test_failure_names_the_service_with_its_log_tail(self):
        sup = self.supervisor()
        sup.start('broken', [sys.executable, '-c',
                             'import sys; print("bad option x"); '
                             'sys.exit(3)'])
        exc = self.assertRaises(
            runtime.ServiceError, sup.wait, 'broken', 'answered',
            lambda: False, 10, 0.05)
        self.assertIn('broken exited while waiting', str(exc))
        self.assertIn('bad option x', str(exc))

    def test_timeout_names_the_service(self):
        sup = self.supervisor()
        sup.start('slow', ['sleep', '30'])
        self.addCleanup(sup.stop, 'slow', 5)
        exc = self.assertRaises(
            runtime.ServiceError, sup.wait, 'slow', 'answered',
            lambda: False, 0.3, 0.05)
        self.assertIn('slow had not answered after 0s', str(exc))

    def test_cannot_start_is_a_clear_error(self):
        sup = self.supervisor()
        exc = self.assertRaises(runtime.ServiceError, sup.start, 'ghost',
                                ['/nonexistent/ghost'])
        self.assertIn('ghost: cannot start /nonexistent/ghost', str(exc))
        self.assertEqual([], sup.names())


class TestFiles(testtools.TestCase):

    def test_json_state_merges_and_survives_damage(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'sub', 'state.json')
        self.assertEqual({}, runtime.read_json(path))
        runtime.update_json(path, a=1)
        self.assertEqual({'a': 1, 'b': 2}, runtime.update_json(path, b=2))
        self.assertEqual({'a': 1, 'b': 2}, runtime.read_json(path))
        self.assertFalse(os.path.exists(path + '.tmp'))
        with open(path, 'w') as f:
            f.write('{"a": ')
        self.assertEqual({}, runtime.read_json(path))

    def test_write_file_mode(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'x')
        runtime.write_file(path, 'secret', 0o600)
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)


class TestCommands(testtools.TestCase):

    def test_failure_names_the_command_as_the_caller_knows_it(self):
        exc = self.assertRaises(
            runtime.LabCommandError, runtime.host_run,
            ['sh', '-c', 'echo broken >&2; exit 3'], where='lab-n1',
            shown=['virsh', 'list'])
        self.assertIn('lab-n1', str(exc))
        self.assertIn('virsh list', str(exc))
        self.assertIn('broken', str(exc))
        self.assertEqual(3, runtime.host_run(['sh', '-c', 'exit 3'],
                                             check=False).returncode)

    def test_timeout_is_a_lab_error(self):
        exc = self.assertRaises(runtime.LabError, runtime.host_run,
                                ['sleep', '5'], timeout=0.2)
        self.assertIn('timed out', str(exc))
