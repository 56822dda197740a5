"""Every exception class the project defines derives from errors.Error, so
that the CLIs can print one line and exit non-zero for all of them."""

import importlib
import inspect
import pkgutil

import testtools

import migration_tempest_plugin
from migration_tempest_plugin import errors

# Modules that need more than the plugin's own requirements to import.
NEEDS_EXTRAS = ('migration_tempest_plugin.cloud.bootstrap',
                'migration_tempest_plugin.cloud.cinder_wsgi')


class TestOneRoot(testtools.TestCase):

    def test_every_exception_derives_from_the_root(self):
        strays, seen = [], 0
        for info in pkgutil.walk_packages(migration_tempest_plugin.__path__,
                                          'migration_tempest_plugin.'):
            if '.unit_tests' in info.name or '.tests' in info.name or \
                    info.name.endswith('__main__') or \
                    info.name in NEEDS_EXTRAS:
                continue
            module = importlib.import_module(info.name)
            for name, obj in inspect.getmembers(module, inspect.isclass):
                if obj.__module__ != module.__name__ or \
                        not issubclass(obj, BaseException):
                    continue
                seen += 1
                if not issubclass(obj, errors.Error):
                    strays.append('%s.%s' % (info.name, name))
        self.assertGreater(seen, 10)
        self.assertEqual([], strays)
