"""The lab cloud's own venv: the OpenStack services from PyPI, pinned by
tools/cloud-constraints.txt, installed with the host's Python.

The venv is kept by ``cloud down`` (it is no process, database or queue)
and reinstalled only when the constraints or the package list change.
"""

import hashlib
import os
import sys
import time

from migration_tempest_plugin import runtime as rt

# What the venv holds; every version comes from the constraints file.
PACKAGES = ('nova', 'keystone', 'openstack-placement', 'glance', 'neutron',
            'cinder', 'tempest', 'python-openstackclient', 'openstacksdk',
            'PyMySQL', 'gunicorn', 'libvirt-python')
CONSTRAINTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), 'tools', 'cloud-constraints.txt')
MARKER = '.migration-lab-cloud'


def fingerprint(constraints=CONSTRAINTS, packages=PACKAGES):
    h = hashlib.sha256()
    with open(constraints, 'rb') as f:
        h.update(f.read())
    h.update('\n'.join(packages).encode())
    h.update(('%d.%d' % sys.version_info[:2]).encode())
    return h.hexdigest()


def base_python():
    """The interpreter a venv should be made from: the one running this
    code, or the one it was made from if it runs in a venv (tox)."""
    return getattr(sys, '_base_executable', None) or sys.executable


def install_argv(venv, constraints=CONSTRAINTS, packages=PACKAGES):
    return [os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install',
            '--disable-pip-version-check', '--no-input', '-q',
            '-c', constraints] + list(packages)


def is_ready(venv, constraints=CONSTRAINTS):
    try:
        with open(os.path.join(venv, MARKER)) as f:
            return f.read().strip() == fingerprint(constraints)
    except OSError:
        return False


def install(venv, log_path, constraints=CONSTRAINTS, say=print):
    """Create or update the venv; return the seconds it took (0 when it
    was ready).  Output goes to `log_path`."""
    if is_ready(venv, constraints):
        return 0.0
    started = time.monotonic()
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    say('cloud: installing the OpenStack services into %s (pinned by %s)'
        % (venv, os.path.basename(constraints)))
    python = os.path.join(venv, 'bin', 'python')
    if not os.path.exists(python):
        rt.run_logged([base_python(), '-m', 'venv', venv], 'making the venv',
                      log_path)
    rt.run_logged([python, '-m', 'pip', 'install',
                   '--disable-pip-version-check', '-q', '-U', 'pip'],
                  'updating pip in the venv', log_path)
    rt.run_logged(install_argv(venv, constraints),
                  'installing the OpenStack services', log_path, timeout=1800)
    rt.write_file(os.path.join(venv, MARKER), fingerprint(constraints) + '\n')
    return time.monotonic() - started


def bin_path(venv, name):
    return os.path.join(venv, 'bin', name)
