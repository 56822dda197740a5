"""What the lab and the lab cloud both stand on, one module per concern:
errors, commands, files, mounts, processes and waits on this machine.

Nothing here knows about nodes, storage or OpenStack; ``lab/`` and
``cloud/`` build on it (as ``rt.NAME``), and what tempest loads never
imports it.
"""

from migration_tempest_plugin.runtime.commands import command_env
from migration_tempest_plugin.runtime.commands import host_run
from migration_tempest_plugin.runtime.commands import run_logged
from migration_tempest_plugin.runtime.commands import START_MARKER
from migration_tempest_plugin.runtime.commands import tail
from migration_tempest_plugin.runtime.commands import which
from migration_tempest_plugin.runtime.errors import LabCommandError
from migration_tempest_plugin.runtime.errors import LabError
from migration_tempest_plugin.runtime.errors import one_line
from migration_tempest_plugin.runtime.files import read_json
from migration_tempest_plugin.runtime.files import update_json
from migration_tempest_plugin.runtime.files import write_file
from migration_tempest_plugin.runtime.mounts import bind_private
from migration_tempest_plugin.runtime.mounts import host_mounts
from migration_tempest_plugin.runtime.mounts import host_umount
from migration_tempest_plugin.runtime.mounts import mounts_under
from migration_tempest_plugin.runtime.mounts import parse_mountinfo
from migration_tempest_plugin.runtime.mounts import top_mount
from migration_tempest_plugin.runtime.mounts import umount
from migration_tempest_plugin.runtime.processes import entries
from migration_tempest_plugin.runtime.processes import ns_inode
from migration_tempest_plugin.runtime.processes import pid_alive
from migration_tempest_plugin.runtime.processes import pids_in_namespaces
from migration_tempest_plugin.runtime.processes import proc_start
from migration_tempest_plugin.runtime.processes import reap
from migration_tempest_plugin.runtime.processes import rss_bytes
from migration_tempest_plugin.runtime.processes import ServiceError
from migration_tempest_plugin.runtime.processes import session_members
from migration_tempest_plugin.runtime.processes import Supervisor
from migration_tempest_plugin.runtime.processes import terminate
from migration_tempest_plugin.runtime.waits import call_until_true
from migration_tempest_plugin.runtime.waits import wait_for

__all__ = [
    'LabError', 'LabCommandError', 'one_line', 'START_MARKER', 'tail',
    'command_env', 'which', 'host_run', 'run_logged', 'write_file',
    'read_json', 'update_json', 'parse_mountinfo', 'top_mount', 'mounts_under',
    'bind_private', 'host_umount', 'host_mounts', 'umount', 'reap',
    'proc_start', 'pid_alive', 'ns_inode', 'pids_in_namespaces', 'entries',
    'terminate', 'session_members', 'rss_bytes', 'ServiceError', 'Supervisor',
    'call_until_true', 'wait_for',
]
