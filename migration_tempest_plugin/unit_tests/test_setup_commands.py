import os
import re

import testtools

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TestSetupCommands(testtools.TestCase):
    """CI must run exactly the README's test command."""

    def readme_commands(self):
        with open(os.path.join(TOP, 'README.rst')) as f:
            text = f.read()
        block = text.split('.. code-block:: console', 1)[1]
        return re.findall(r'^   (tools/\S+ && .+)$', block.split('\n\n\n')[0]
                          + '\n', re.M)

    def test_readme_opens_with_two_commands(self):
        commands = self.readme_commands()
        self.assertEqual(2, len(commands), commands)
        self.assertTrue(commands[0].endswith('tox -e lab'), commands[0])

    def test_ci_runs_the_readme_test_command(self):
        with open(os.path.join(TOP, '.ci', 'run')) as f:
            ci = f.read()
        self.assertIn(self.readme_commands()[1], ci.splitlines())
