"""tools/run-tempest.sh writes the .stestr.conf of the folder tempest runs
in for the tempest it runs, whatever another tempest install left there.
`tempest` here is a stand-in that reports how it was run; its `python` is
this interpreter, which has tempest."""

import configparser
import os
import subprocess
import sys

import fixtures
import tempest
import testtools

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'tools', 'run-tempest.sh')
STALE = ('[DEFAULT]\ntest_path=/other/venv/lib/python3.11/site-packages/'
         'tempest/test_discover\ntop_dir=/other/venv/lib/python3.11/'
         'site-packages/tempest\ngroup_regex=([^\\.]*\\.)*\n')
TEMPEST = os.path.dirname(os.path.abspath(tempest.__file__))


class TestRunTempest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        bin_dir = os.path.join(self.dir, 'bin')
        os.mkdir(bin_dir)
        fake = os.path.join(bin_dir, 'tempest')
        with open(fake, 'w') as f:
            f.write('#!/bin/sh\necho "cwd=$PWD"\necho "args=$*"\n')
        os.chmod(fake, 0o755)
        # A wrapper, not a link: a link to a venv's python outside the
        # venv is the bare interpreter.
        python = os.path.join(bin_dir, 'python')
        with open(python, 'w') as f:
            f.write('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
        os.chmod(python, 0o755)
        self.env = dict(os.environ, PATH=bin_dir + os.pathsep +
                        os.environ['PATH'])
        for name in ('TEMPEST_CONFIG', 'TEMPEST_WORKSPACE', 'TEMPEST_REGEX',
                     'TEMPEST_RUN_DIR', 'TOX_ENV_DIR'):
            self.env.pop(name, None)

    def run_script(self, cwd=None, **env):
        result = subprocess.run(['sh', SCRIPT], env=dict(self.env, **env),
                                cwd=cwd or self.dir, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(0, result.returncode, result.stderr)
        return dict(line.split('=', 1)
                    for line in result.stdout.splitlines())

    def assert_conf_for_this_tempest(self, folder):
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(os.path.join(folder, '.stestr.conf'))
        self.assertEqual(os.path.join(TEMPEST, 'test_discover'),
                         conf['DEFAULT']['test_path'])
        self.assertEqual(TEMPEST, conf['DEFAULT']['top_dir'])
        self.assertEqual(r'([^\.]*\.)*', conf['DEFAULT']['group_regex'])

    def test_workspace_conf_of_another_install_is_rewritten(self):
        workspace = os.path.join(self.dir, 'ws')
        os.mkdir(workspace)
        with open(os.path.join(workspace, '.stestr.conf'), 'w') as f:
            f.write(STALE)
        out = self.run_script(TEMPEST_WORKSPACE=workspace,
                              TEMPEST_REGEX='Abort')
        self.assertEqual(workspace, out['cwd'])
        # Only the plugin's tests whose id has it.
        self.assertEqual(r'run --serial --regex '
                         r'^(?=migration_tempest_plugin\.).*(?:Abort)',
                         out['args'])
        self.assert_conf_for_this_tempest(workspace)

    def test_config_runs_in_a_folder_of_its_own(self):
        etc = os.path.join(self.dir, 'etc')
        os.mkdir(etc)
        with open(os.path.join(etc, 'tempest.conf'), 'w') as f:
            f.write('[DEFAULT]\n')
        repo = os.path.join(self.dir, 'repo')
        os.mkdir(repo)
        with open(os.path.join(repo, '.stestr.conf'), 'w') as f:
            f.write('[DEFAULT]\ntest_path=./unit_tests\n')
        run_dir = os.path.join(self.dir, 'run')
        out = self.run_script(cwd=repo, TEMPEST_CONFIG='../etc/tempest.conf',
                              TEMPEST_RUN_DIR=run_dir)
        self.assertEqual(run_dir, out['cwd'])
        self.assertEqual('run --serial --config-file %s --regex '
                         'migration_tempest_plugin'
                         % os.path.join(etc, 'tempest.conf'), out['args'])
        self.assert_conf_for_this_tempest(run_dir)
        # The repository's own .stestr.conf (its unit tests) is untouched.
        with open(os.path.join(repo, '.stestr.conf')) as f:
            self.assertEqual('[DEFAULT]\ntest_path=./unit_tests\n', f.read())


# A stand-in for migration-lab: the cloud is down until `up`, which says
# its storage; every call is logged.
FAKE_LAB = '''#!/bin/sh
echo "lab $*" >> "$LOG"
[ "$2" = status ] && exit 1
exit 0
'''


class TestSlices(testtools.TestCase):
    """On the lab cloud, each mode runs the tests of the slice (the
    regex tempest run gets), and a mode with none is not brought up."""

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        bin_dir = os.path.join(self.dir, 'bin')
        os.mkdir(bin_dir)
        self.log = os.path.join(self.dir, 'log')
        for name, text in (
                ('migration-lab', FAKE_LAB),
                ('tempest', '#!/bin/sh\necho "tempest $*" >> "$LOG"\n'),
                ('python', '#!/bin/sh\nexec %s "$@"\n' % sys.executable)):
            path = os.path.join(bin_dir, name)
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(('TEMPEST_', 'MIGRATION_'))}
        self.env.update(PATH=bin_dir + os.pathsep + os.environ['PATH'],
                        LOG=self.log, MIGRATION_LAB_STATE=self.dir)
        os.makedirs(os.path.join(self.dir, 'cloud', 'tempest'))

    def run_modes(self, **env):
        """{mode: the regex its tempest run got}, and the lab's calls."""
        result = subprocess.run(['sh', SCRIPT], env=dict(self.env, **env),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(0, result.returncode, result.stderr)
        with open(self.log) as f:
            lines = f.read().splitlines()
        regexes, mode = {}, None
        for line in lines:
            words = line.split()
            if words[:3] == ['lab', 'cloud', 'up']:
                mode = words[words.index('--storage') + 1]
            elif words[0] == 'tempest':
                regexes[mode] = words[words.index('--regex') + 1]
        return regexes, lines

    def test_ci_slice_by_default(self):
        regexes, lines = self.run_modes()
        self.assertEqual(['local', 'shared', 'rbd'], list(regexes))
        self.assertEqual(r'^(?=migration_tempest_plugin\.)'
                         r'(?!.*(?:VolumeBackedLiveMigrationTest))',
                         regexes['local'])
        self.assertEqual(r'^(?=migration_tempest_plugin\.)'
                         r'(?!.*(?:test_volume_operations))',
                         regexes['shared'])
        self.assertTrue(regexes['rbd'].startswith(
            r'^(?=migration_tempest_plugin\.)(?!.*(?:'
            r'test_migration_configurations|test_migration_operations|'
            r'test_paused_guest_migrates_intact|'), regexes['rbd'])
        # Up once per mode (a switch after the first), down at the end.
        self.assertEqual('lab cloud down --state-dir %s' % self.dir,
                         [x for x in lines if x.startswith('lab')][-1])

    def test_rest_and_named_modes(self):
        regexes, _ = self.run_modes(MIGRATION_TEMPEST_SLICE='rest')
        self.assertEqual(['local', 'shared', 'rbd'], list(regexes))
        self.assertIn('(?:VolumeBackedLiveMigrationTest)', regexes['local'])
        self.assertIn('(?:test_volume_operations)', regexes['shared'])
        self.assertIn('test_migration_operations', regexes['rbd'])
        os.unlink(self.log)
        regexes, _ = self.run_modes(MIGRATION_TEMPEST_STORAGE='rbd')
        self.assertEqual({'rbd': 'migration_tempest_plugin'}, regexes)
        # TEMPEST_REGEX wins over the slice, in every mode.
        os.unlink(self.log)
        regexes, _ = self.run_modes(MIGRATION_TEMPEST_SLICE='rest',
                                    TEMPEST_REGEX='Abort')
        self.assertEqual({r'^(?=migration_tempest_plugin\.).*(?:Abort)'},
                         set(regexes.values()))

    def test_unknown_slice_is_refused(self):
        result = subprocess.run(['sh', SCRIPT], env=dict(
            self.env, MIGRATION_TEMPEST_SLICE='most'), capture_output=True,
            text=True, timeout=60)
        self.assertEqual(2, result.returncode)
        self.assertIn("unknown slice 'most'", result.stderr)
