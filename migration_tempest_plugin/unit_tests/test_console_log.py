"""The console log recorder against real files, read by its own shell
script run here (a host whose commands run on this machine)."""

import os
import shutil
import subprocess
import tempfile
import threading

import testtools

from migration_tempest_plugin.tests import console_log

UUID = '0f6a4d7e-1b2c-4d3e-8f9a-0b1c2d3e4f5a'


class LocalHost(object):
    """A compute host whose instances path is a folder here."""

    def __init__(self, instances_path):
        self.instances_path = instances_path

    def console_log(self, uuid):
        return os.path.join(self.instances_path, uuid, 'console.log')

    def execute(self, argv):
        return subprocess.run(argv, check=True, capture_output=True,
                              text=True).stdout


class TestConsoleLogRecorder(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.host = LocalHost(self.root)
        os.makedirs(os.path.join(self.root, UUID))
        self.recorder = console_log.ConsoleLogRecorder(
            {'n1': self.host}, UUID, host_of=lambda: 'n1', shared=False,
            interval=3600)
        self.useFixture(self.recorder)

    def write(self, text, mode='a', folder=UUID):
        with open(os.path.join(self.root, folder, 'console.log'), mode) as f:
            f.write(text)

    def test_a_growing_file_is_one_segment(self):
        self.write('MTP RUN a\n')
        self.recorder.read()
        self.write('MTP ACK 0\nMTP AC')
        self.recorder.read()
        self.write('K 1\n')
        self.recorder.read()
        self.assertEqual(['MTP RUN a\nMTP ACK 0\nMTP ACK 1\n'],
                         self.recorder.texts())

    def test_a_file_emptied_in_place_starts_a_segment(self):
        # A new boot: QEMU truncates the log (append off) and writes again.
        self.write('x' * 200 + '\nMTP ACK 7\n')
        self.recorder.read()
        self.write('boot again\n', mode='w')
        self.recorder.read()
        self.write('boot again and longer than before ' * 10, mode='w')
        self.recorder.read()
        texts = self.recorder.texts()
        self.assertEqual(3, len(texts))
        self.assertEqual('boot again\n', texts[1])

    def test_the_last_lines_are_read_from_the_resize_folder(self):
        self.write('MTP ACK 0\n')
        self.recorder.read()
        self.write('MTP ACK 1\n')
        os.rename(os.path.join(self.root, UUID),
                  os.path.join(self.root, UUID + '_resize'))
        os.makedirs(os.path.join(self.root, UUID))
        self.write('MTP RUN b\n')
        self.recorder.read()
        self.assertEqual(['MTP ACK 0\nMTP ACK 1\n', 'MTP RUN b\n'],
                         self.recorder.texts())

    def test_reads_at_once_append_each_byte_once(self):
        self.write(''.join('MTP ACK %d\n' % i for i in range(2000)))
        threads = [threading.Thread(target=self.recorder.read)
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.recorder.read()
        texts = self.recorder.texts()
        self.assertEqual(1, len(texts))
        self.assertEqual(2000, texts[0].count('MTP ACK'))

    def test_no_file_no_segment(self):
        self.recorder.read()
        self.assertEqual([], self.recorder.texts())
