"""The lab cloud: a real OpenStack (keystone, placement, glance, neutron,
nova) on the embedded lab's two libvirt nodes.

``python -m migration_tempest_plugin.cloud up | down | status`` (wired as
``migration-lab cloud ...``).  See doc/source/cloud.rst.

This package is imported both by the plugin's own Python (tox envs) and by
the lab cloud's venv (``bootstrap``, run there for openstacksdk), so this
file imports nothing.
"""
