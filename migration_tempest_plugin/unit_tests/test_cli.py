import contextlib
import io

import testtools

from migration_tempest_plugin import cli


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


class TestFlagCommands(testtools.TestCase):

    def test_nova_block(self):
        code, out, _ = run('flags', 'nova', '--block')
        self.assertEqual(0, code)
        self.assertEqual({'LIVE', 'PEER2PEER', 'UNDEFINE_SOURCE',
                          'PERSIST_DEST', 'NON_SHARED_INC'},
                         set(out.strip().split('|')))

    def test_nova_refuses_tunnelled_with_tls(self):
        code, out, err = run('flags', 'nova', '--tunnelled', '--native-tls')
        self.assertNotEqual(0, code)
        self.assertEqual('', out)
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn("at the same time is invalid", err)

    def test_decode(self):
        code, out, _ = run('flags', 'decode', '0x8b')
        self.assertEqual((0, 'LIVE|PEER2PEER|PERSIST_DEST|NON_SHARED_INC\n'),
                         (code, out))

    def test_bad_input_is_one_line_and_non_zero(self):
        for argv in (('flags', 'decode', 'NOPE'),
                     ('flags', 'decode', '-3'),
                     ('flags', 'nova', '--parallel', '-1'),
                     ('flags', 'check', 'LIVE', '--storage', 'tape'),
                     ('flags', 'frobnicate')):
            code, out, err = run(*argv)
            self.assertNotEqual(0, code, argv)
            self.assertEqual(1, len(err.splitlines()), (argv, err))
            self.assertTrue(err.startswith('migration-lab: error: '), err)

    def test_check(self):
        code, out, _ = run('flags', 'check', 'LIVE|PEER2PEER|NON_SHARED_DISK',
                           '--storage', 'shared-nolock')
        self.assertEqual(0, code)
        self.assertTrue(out.startswith('DATA-AT-RISK'), out)
