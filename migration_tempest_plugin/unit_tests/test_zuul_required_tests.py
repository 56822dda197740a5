"""The tests each Zuul job requires (migration_required_tests) exist, are
selected by the job's test regex, and do not skip on the job's storage.

role check-required-tests fails a job unless every test it names ran and
passed, so a required test that skips in that job fails the job on every
run.  This reads zuul.d/jobs.yaml, merges each job's variables along its
parents as Zuul does (mappings merged key by key, anything else replaced),
and compares the result with the test methods found in the plugin's test
modules by reading their source.

The storage check only knows the form the suite uses: an ``if`` on
``CONF.migration.storage`` compared (``==`` or ``!=``) with a string,
whose body raises ``skipException``, at the top of the test method or of
its class's ``skip_checks``.  Other skip conditions (the base class's
checks on the whole configuration) are not read here.
"""

import ast
import os
import re

import testtools
import yaml

import migration_tempest_plugin

PACKAGE_DIR = os.path.dirname(migration_tempest_plugin.__file__)
REPO_DIR = os.path.dirname(PACKAGE_DIR)
JOBS_FILE = os.path.join(REPO_DIR, 'zuul.d', 'jobs.yaml')
TESTS_DIR = os.path.join(PACKAGE_DIR, 'tests')


def load_jobs(path=JOBS_FILE):
    with open(path) as f:
        documents = yaml.safe_load(f)
    return {item['job']['name']: item['job']
            for item in documents if 'job' in item}


def merge(parent, child):
    """Zuul's merge of job variables: mappings recursively, the rest
    replaced by the child's value."""
    if not (isinstance(parent, dict) and isinstance(child, dict)):
        return child
    merged = dict(parent)
    for key, value in child.items():
        merged[key] = merge(parent.get(key), value) if key in parent \
            else value
    return merged


def job_vars(jobs, name):
    """A job's variables merged along its parents in this file (the
    parents outside it, tempest's and devstack's, set none of ours)."""
    job = jobs[name]
    parent = job.get('parent')
    inherited = job_vars(jobs, parent) if parent in jobs else {}
    return merge(inherited, job.get('vars') or {})


def required_tests(variables):
    return sorted({name for name in
                   (variables.get('migration_required_tests') or {}).values()
                   if name})


def job_storage(variables):
    conf = variables.get('devstack_local_conf') or {}
    tempest = (conf.get('test-config') or {}).get('$TEMPEST_CONFIG') or {}
    return (tempest.get('migration') or {}).get('storage')


def _storage_condition(node):
    """('only', 'nfs') for ``if CONF.migration.storage != 'nfs': raise
    self.skipException(...)``, ('not', 'nfs') for ``==``, else None."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and len(node.test.ops) == 1):
        return None
    left, right = node.test.left, node.test.comparators[0]
    if not (isinstance(left, ast.Attribute) and left.attr == 'storage'
            and isinstance(left.value, ast.Attribute)
            and left.value.attr == 'migration'
            and isinstance(right, ast.Constant)
            and isinstance(right.value, str)):
        return None
    raises_skip = any(
        isinstance(statement, ast.Raise)
        and 'skipException' in ast.dump(statement)
        for statement in node.body)
    if not raises_skip:
        return None
    if isinstance(node.test.ops[0], ast.NotEq):
        return ('only', right.value)
    if isinstance(node.test.ops[0], ast.Eq):
        return ('not', right.value)
    return None


def _conditions(function):
    return [c for c in map(_storage_condition, function.body) if c]


def find_tests(tests_dir=TESTS_DIR):
    """{test id: storage conditions} for every test method under
    tests_dir; a test id as stestr lists it, without tempest's
    ``[id-...]`` suffix."""
    found = {}
    for folder, _, files in os.walk(tests_dir):
        for file_name in sorted(files):
            if not (file_name.startswith('test_')
                    and file_name.endswith('.py')):
                continue
            path = os.path.join(folder, file_name)
            module = os.path.relpath(path[:-3], REPO_DIR).replace(os.sep,
                                                                  '.')
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            classes = {node.name: node for node in tree.body
                       if isinstance(node, ast.ClassDef)}
            for cls in classes.values():
                class_conditions = []
                lineage = [cls]
                while lineage:
                    current = lineage.pop()
                    for item in current.body:
                        if (isinstance(item, ast.FunctionDef)
                                and item.name == 'skip_checks'):
                            class_conditions += _conditions(item)
                    lineage += [classes[base.id] for base in current.bases
                                if isinstance(base, ast.Name)
                                and base.id in classes]
                for item in cls.body:
                    if (isinstance(item, ast.FunctionDef)
                            and item.name.startswith('test_')):
                        test_id = '%s.%s.%s' % (module, cls.name, item.name)
                        found[test_id] = class_conditions + _conditions(item)
    return found


def skips_on(conditions, storage):
    for kind, value in conditions:
        if kind == 'only' and storage != value:
            return True
        if kind == 'not' and storage == value:
            return True
    return False


def problems(jobs, tests):
    """What is wrong with the jobs' required tests, one line each."""
    found = []
    for name in sorted(jobs):
        variables = job_vars(jobs, name)
        regex = re.compile(variables.get('tempest_test_regex') or '')
        storage = job_storage(variables)
        for method in required_tests(variables):
            ids = [test_id for test_id in tests
                   if test_id.rsplit('.', 1)[-1] == method]
            if not ids:
                found.append('%s requires %s, which no test module has'
                             % (name, method))
                continue
            selected = [test_id for test_id in ids if regex.search(test_id)]
            if not selected:
                found.append('%s requires %s, which its test regex %s does '
                             'not select' % (name, method, regex.pattern))
            for test_id in selected:
                if skips_on(tests[test_id], storage):
                    found.append('%s requires %s, which skips on its storage '
                                 '(%s)' % (name, test_id, storage))
    return found


class ZuulRequiredTestsTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.jobs = load_jobs()
        self.tests = find_tests()

    def test_jobs_require_tests_that_run_there(self):
        self.assertEqual([], problems(self.jobs, self.tests))

    def test_every_concrete_job_requires_a_test(self):
        concrete = [name for name, job in self.jobs.items()
                    if not job.get('abstract')]
        self.assertGreater(len(concrete), 1)
        for name in concrete:
            self.assertTrue(required_tests(job_vars(self.jobs, name)), name)

    def test_every_concrete_job_has_a_storage(self):
        for name, job in self.jobs.items():
            if not job.get('abstract'):
                self.assertIn(job_storage(job_vars(self.jobs, name)),
                              ('local', 'nfs'), name)

    def test_the_storage_skips_are_read(self):
        # Keeps the check above from passing because it reads nothing.
        by_method = {test_id.rsplit('.', 1)[-1]: conditions
                     for test_id, conditions in self.tests.items()}
        self.assertEqual([('only', 'nfs')], by_method[
            'test_block_migration_refused_on_shared_storage'])
        self.assertEqual([('only', 'local')], by_method[
            'test_live_migration_without_shared_storage_refused'])
        self.assertEqual([], by_method[
            'test_auto_live_migration_keeps_acknowledged_writes'])

    def test_a_test_skipping_on_the_jobs_storage_is_found(self):
        # The mistake this check exists for: the local post-copy job once
        # required the NFS-only switch to post-copy.
        jobs = {
            'base': {'name': 'base', 'vars': {
                'tempest_test_regex': r'^migration_tempest_plugin\.',
                'devstack_local_conf': {'test-config': {'$TEMPEST_CONFIG': {
                    'migration': {'storage': 'local'}}}}}},
            'post-copy': {'name': 'post-copy', 'parent': 'base', 'vars': {
                'migration_required_tests': {
                    'switch': 'test_force_complete_switches_to_post_copy',
                    'gone': 'test_that_does_not_exist',
                    'dropped': None}}},
        }
        found = '\n'.join(problems(jobs, self.tests))
        self.assertEqual(2, len(found.splitlines()), found)
        self.assertIn('post-copy requires test_that_does_not_exist, which '
                      'no test module has', found)
        self.assertIn('post-copy requires migration_tempest_plugin.tests.api.'
                      'admin.test_migration_operations.'
                      'PostCopyForceCompleteTest.'
                      'test_force_complete_switches_to_post_copy, which '
                      'skips on its storage (local)', found)

    def test_a_test_outside_the_regex_is_found(self):
        jobs = {'narrow': {'name': 'narrow', 'vars': {
            'tempest_test_regex':
                r'^migration_tempest_plugin\..*\.TunnelledLiveMigrationTest\.',
            'migration_required_tests': {
                'refusal':
                    'test_live_migration_without_shared_storage_refused'},
            'devstack_local_conf': {'test-config': {'$TEMPEST_CONFIG': {
                'migration': {'storage': 'local'}}}}}}}
        found = problems(jobs, self.tests)
        self.assertEqual(1, len(found), found)
        self.assertIn('its test regex', found[0])

    def test_merge_is_zuuls(self):
        self.assertEqual(
            {'a': {'b': 1, 'c': 3}, 'l': [2]},
            merge({'a': {'b': 1, 'c': 2}, 'l': [1]},
                  {'a': {'c': 3}, 'l': [2]}))
