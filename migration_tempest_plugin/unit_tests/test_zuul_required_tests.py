"""The tests each Zuul job requires (migration_required_tests) exist, are
selected by the job's test regex, and do not skip in the job's
configuration.

role check-required-tests fails a job unless every test it names ran and
passed, so a required test that skips in that job fails the job on every
run.  This reads zuul.d/jobs.yaml, merges each job's variables along its
parents as Zuul does (mappings merged key by key, anything else replaced),
and compares the result with the test methods found in the plugin's test
modules by reading their source.

A skip is an ``if`` at the top of the test method, or of the ``skip_checks``
of its class or of a base class in the same module, whose body raises
``skipException``.  Its condition is evaluated against the job's
tempest.conf: the job's ``test-config`` for ``$TEMPEST_CONFIG`` over the
defaults of tempest's options and the plugin's.  It may use ``CONF.<group>.
<option>``, constants, comparisons (``==``, ``!=``, ``<``, ``in``, ...),
``not``/``and``/``or``, ``len``, ``set``, and the storage kinds of
``storage_modes`` (``shared_disks``, ``shared_instances_path``) or a
``self.<property>`` that returns one of those.  A condition that uses
anything else (a value known only when the test runs) cannot be judged
here and counts as not skipping; the base class's checks in tests/base.py
are not read either.
"""

import ast
import os
import re

import testtools
import yaml

import migration_tempest_plugin
from migration_tempest_plugin import config as plugin_config
from migration_tempest_plugin import storage_modes

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


def tempest_test_config(variables):
    conf = variables.get('devstack_local_conf') or {}
    return (conf.get('test-config') or {}).get('$TEMPEST_CONFIG') or {}


def job_storage(variables):
    return (tempest_test_config(variables).get('migration') or {}).get(
        'storage')


def _defaults():
    """{(section, option): default} of tempest's options and the
    plugin's, sections spelt as in tempest.conf."""
    from tempest import config as tempest_config
    found = {}
    for group, opts in (list(tempest_config._opts) +
                        plugin_config.list_opts()):
        if group is None:
            continue
        name = group if isinstance(group, str) else group.name
        for opt in opts:
            found[(name, opt.dest)] = opt.default
    return found


DEFAULTS = _defaults()


# What the job's run playbook writes into tempest.conf once glance is up
# (roles/upload-integrity-guest), with values known only then.
WRITTEN_AT_RUN_TIME = {
    ('migration', option): 'written by roles/upload-integrity-guest'
    for option in ('image_ref', 'flavor_ref', 'resize_flavor_ref',
                   'disks_flavor_ref')}


def job_tempest_conf(variables):
    """{(section, option): value} of the job's tempest.conf as far as
    this file, the run playbook and the options' defaults tell."""
    conf = dict(DEFAULTS)
    conf.update(WRITTEN_AT_RUN_TIME)
    for section, options in tempest_test_config(variables).items():
        for option, value in (options or {}).items():
            conf[(section, option)] = value
    return conf


class Unknown(Exception):
    """A condition this check cannot judge."""


_COMPARE = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_CALLS = {
    'len': len, 'set': set, 'bool': bool,
    'shared_disks': storage_modes.shared_disks,
    'shared_instances_path': storage_modes.shared_instances_path,
}


def _as_list(value):
    if isinstance(value, str):
        return [v.strip() for v in value.split(',') if v.strip()]
    return list(value or [])


def evaluate(node, conf, properties=None):
    """The value of expression `node` in the job's tempest.conf `conf`;
    `properties`: {name: expression} of the class's properties."""
    properties = properties or {}
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(evaluate(e, conf, properties) for e in node.elts)
    if isinstance(node, ast.Attribute):
        value = node.value
        if isinstance(value, ast.Attribute) and \
                isinstance(value.value, ast.Name) and value.value.id == 'CONF':
            key = (value.attr.replace('_', '-'), node.attr)
            if key not in conf:
                key = (value.attr, node.attr)
            if key not in conf:
                raise Unknown(ast.dump(node))
            default = DEFAULTS.get(key)
            found = conf[key]
            if isinstance(default, list):
                return _as_list(found)
            if isinstance(default, bool) and isinstance(found, str):
                return found.strip().lower() in ('true', '1', 'yes', 'on')
            return found
        if isinstance(value, ast.Name) and value.id in ('self', 'cls') and \
                node.attr in properties:
            return evaluate(properties[node.attr], conf, properties)
        raise Unknown(ast.dump(node))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not evaluate(node.operand, conf, properties)
    if isinstance(node, ast.BoolOp):
        values = [evaluate(v, conf, properties) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
            type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](
            evaluate(node.left, conf, properties),
            evaluate(node.comparators[0], conf, properties))
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else \
            getattr(func, 'id', None)
        if name in _CALLS:
            return _CALLS[name](*[evaluate(a, conf, properties)
                                  for a in node.args])
    raise Unknown(ast.dump(node))


def _skip_condition(node):
    """The test of an ``if`` whose body raises skipException, else None."""
    if not isinstance(node, ast.If):
        return None
    raises_skip = any(
        isinstance(statement, ast.Raise)
        and 'skipException' in ast.dump(statement)
        for statement in node.body)
    return node.test if raises_skip else None


def _conditions(function):
    return [c for c in map(_skip_condition, function.body) if c is not None]


def _properties(cls):
    """{name: returned expression} of the class's one-line properties."""
    found = {}
    for item in cls.body:
        if (isinstance(item, ast.FunctionDef) and any(
                getattr(d, 'id', None) == 'property'
                for d in item.decorator_list)):
            returns = [s for s in item.body if isinstance(s, ast.Return)]
            if len(returns) == 1 and returns[0].value is not None:
                found[item.name] = returns[0].value
    return found


class TestConditions(object):
    """The skip conditions of one test method and its classes."""

    def __init__(self, expressions, properties):
        self.expressions = expressions
        self.properties = properties

    def __len__(self):
        return len(self.expressions)

    def skips(self, conf):
        """Whether the test skips in tempest.conf `conf` (as far as can
        be told)."""
        for expression in self.expressions:
            try:
                if evaluate(expression, conf, self.properties):
                    return True
            except Unknown:
                continue
        return False


def find_tests(tests_dir=TESTS_DIR):
    """{test id: TestConditions} for every test method under
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
                properties = {}
                lineage = [cls]
                while lineage:
                    current = lineage.pop()
                    for name, value in _properties(current).items():
                        properties.setdefault(name, value)
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
                        found[test_id] = TestConditions(
                            class_conditions + _conditions(item),
                            properties)
    return found


def problems(jobs, tests):
    """What is wrong with the jobs' required tests, one line each."""
    found = []
    for name in sorted(jobs):
        variables = job_vars(jobs, name)
        regex = re.compile(variables.get('tempest_test_regex') or '')
        conf = job_tempest_conf(variables)
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
                if tests[test_id].skips(conf):
                    found.append('%s requires %s, which skips in its '
                                 'configuration (storage %s)'
                                 % (name, test_id, storage))
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
                              tuple(storage_modes.PLUGIN_KINDS), name)

    def _skips(self, method, **sections):
        """Whether test `method` skips in a tempest.conf with `sections`
        ({section: {option: value}}) over the defaults."""
        conf = dict(DEFAULTS)
        for section, options in sections.items():
            for option, value in options.items():
                conf[(section, option)] = value
        (conditions,) = [c for test_id, c in self.tests.items()
                         if test_id.rsplit('.', 1)[-1] == method]
        return conditions.skips(conf)

    def test_the_storage_skips_are_read(self):
        # Keeps the check above from passing because it reads nothing.
        def skips(method, storage):
            return self._skips(method, migration={'storage': storage})
        refused = 'test_block_migration_refused_on_shared_storage'
        self.assertEqual([True, False, False],
                         [skips(refused, s) for s in ('local', 'nfs', 'rbd')])
        without = 'test_live_migration_without_shared_storage_refused'
        self.assertEqual([False, True, True],
                         [skips(without, s) for s in ('local', 'nfs', 'rbd')])
        auto = 'test_auto_live_migration_keeps_acknowledged_writes'
        self.assertEqual([False, False, False],
                         [skips(auto, s) for s in ('local', 'nfs', 'rbd')])
        evacuate = 'test_evacuate_keeps_shared_disk'
        self.assertEqual([True, False, False], [self._skips(
            evacuate, migration={'storage': s, 'fail_hosts': True})
            for s in ('local', 'nfs', 'rbd')])
        # Through a property of the class (MoveIntegrityTestBase's
        # shared_disks), with an option.
        reboot = 'test_hard_reboot_after_live_migration_keeps_writes'
        self.assertEqual([True, False, False, False], [self._skips(
            reboot, migration={'storage': s}, **{'compute-feature-enabled': {
                'block_migration_for_live_migration': block}})
            for s, block in (('local', False), ('local', True),
                             ('nfs', False), ('rbd', False))])
        # In skip_checks of the class and of its base class in the module.
        block = 'test_block_migration_copies_root_not_volume'
        self.assertEqual([False, True, True],
                         [skips(block, s) for s in ('local', 'nfs', 'rbd')])

    def test_the_option_skips_are_read(self):
        block = 'test_block_migration_copies_root_not_volume'
        self.assertTrue(self._skips(block, service_available={
            'cinder': False}))
        self.assertFalse(self._skips(block, service_available={
            'cinder': True}))
        multiattach = 'test_multiattach_volume_consistent_from_both_servers'
        # tempest's default: off.
        self.assertTrue(self._skips(multiattach))
        self.assertFalse(self._skips(multiattach, **{
            'compute-feature-enabled': {'volume_multiattach': True}}))
        swap = 'test_swapped_volume_follows_live_migration'
        two = {'volume-feature-enabled': {'multi_backend': True},
               'volume': {'backend_names': 'lvmdriver-1,lvmdriver-2'}}
        self.assertFalse(self._skips(swap, **two))
        one = {'volume-feature-enabled': {'multi_backend': True},
               'volume': {'backend_names': 'ceph'}}
        self.assertTrue(self._skips(swap, **one))

    def test_a_condition_known_only_at_run_time_is_not_a_skip(self):
        conditions = TestConditions(
            [ast.parse('self.hosts_pinned', mode='eval').body,
             ast.parse("CONF.migration.no_such_option == 'x'",
                       mode='eval').body], {})
        self.assertFalse(conditions.skips(dict(DEFAULTS)))

    def test_a_volume_test_without_cinder_is_found(self):
        # cinder off (as the base job had it) and a volume test required.
        jobs = {'local': {'name': 'local', 'vars': {
            'tempest_test_regex': r'^migration_tempest_plugin\.',
            'migration_required_tests': {
                'volume': 'test_block_migration_copies_root_not_volume'},
            'devstack_local_conf': {'test-config': {'$TEMPEST_CONFIG': {
                'service_available': {'cinder': False},
                'migration': {'storage': 'local'}}}}}}}
        found = problems(jobs, self.tests)
        self.assertEqual(1, len(found), found)
        self.assertIn('skips in its configuration', found[0])

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
                      'skips in its configuration (storage local)', found)

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
