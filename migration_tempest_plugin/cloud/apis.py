"""keystone, placement, glance and neutron for the lab cloud: their
configuration, their database schemas, and their APIs under gunicorn on
the lab's address (nova-api's and cinder-api's gunicorn too; their
services' own files are in nova.py and cinder.py)."""

import collections
import os

from migration_tempest_plugin.cloud import base
from migration_tempest_plugin.cloud import config as cfg

# The tree this package is in (for the APIs that load a module of ours).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# The APIs with a database of their own (nova's are in nova.py, cinder's in
# cinder.py).
WITH_DATABASE = ('keystone', 'placement', 'glance', 'neutron')
# (config folder, file under the venv's etc/) copied as they are.
COPIED = (('glance', 'glance/glance-api-paste.ini'),
          ('neutron', 'neutron/api-paste.ini'))


def configure(s):
    """(config folder, file name, text) of every file the APIs read."""
    out = [('keystone', 'keystone.conf', keystone_conf(s)),
           ('placement', 'placement.conf', placement_conf(s)),
           ('glance', 'glance-api.conf', glance_api_conf(s)),
           ('neutron', 'neutron.conf', neutron_conf(s)),
           ('neutron', 'ml2_conf.ini', ml2_conf(s))]
    for api in cfg.APIS:
        out.append(('gunicorn-' + api, 'gunicorn.conf.py',
                    gunicorn_conf(s, api)))
    return out


def _conf(s, service, name):
    return ['--config-file', os.path.join(s.etc(service), name)]


def init(cloud, s, api):
    """One API's database schema (keystone: and its bootstrap)."""
    if api == 'keystone':
        km = [cloud.bin('keystone-manage')] + _conf(s, 'keystone',
                                                    'keystone.conf')
        cloud.run(km + ['db_sync'], 'keystone-manage db_sync')
        for what in ('fernet_setup', 'credential_setup'):
            cloud.run(km + [what, '--keystone-user', 'root',
                            '--keystone-group', 'root'],
                      'keystone-manage ' + what)
        cloud.run(km + [
            'bootstrap', '--bootstrap-password', s.secrets['admin'],
            '--bootstrap-username', cfg.ADMIN_USER,
            '--bootstrap-project-name', cfg.ADMIN_PROJECT,
            '--bootstrap-role-name', 'admin',
            '--bootstrap-service-name', 'keystone',
            '--bootstrap-region-id', cfg.REGION,
            '--bootstrap-admin-url', s.auth_url,
            '--bootstrap-internal-url', s.auth_url,
            '--bootstrap-public-url', s.auth_url],
            'keystone-manage bootstrap')
    elif api == 'placement':
        cloud.run([cloud.bin('placement-manage')]
                  + _conf(s, 'placement', 'placement.conf')
                  + ['db', 'sync'], 'placement-manage db sync')
    elif api == 'glance':
        cloud.run([cloud.bin('glance-manage')]
                  + _conf(s, 'glance', 'glance-api.conf') + ['db_sync'],
                  'glance-manage db_sync')
    elif api == 'neutron':
        cloud.run([cloud.bin('neutron-db-manage')]
                  + _conf(s, 'neutron', 'neutron.conf')
                  + _conf(s, 'neutron', 'ml2_conf.ini')
                  + ['upgrade', 'heads'], 'neutron-db-manage upgrade')
    else:
        raise ValueError('no database for %s' % api)


def keystone_conf(s):
    keys = s.path('keystone', 'fernet-keys')
    return cfg.render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([('debug', False)])),
        ('database', {'connection': cfg.db_url(s, 'keystone')}),
        ('token', {'provider': 'fernet'}),
        ('fernet_tokens', {'key_repository': keys}),
        ('fernet_receipts', {'key_repository': keys}),
        ('credential', {'key_repository': s.path('keystone',
                                                 'credential-keys')}),
        ('cache', {'enabled': False}),
        # bcrypt's minimum cost: the lab's passwords are random and local,
        # and tempest's dynamic credentials make users for every class.
        ('identity', {'password_hash_rounds': 4}),
    ]), cfg.HEADER)


def placement_conf(s):
    return cfg.render_ini(collections.OrderedDict([
        ('DEFAULT', {'debug': False}),
        ('api', {'auth_strategy': 'keystone'}),
        ('placement_database', {'connection': cfg.db_url(s, 'placement')}),
        ('keystone_authtoken', cfg.authtoken(s, 'placement')),
    ]), cfg.HEADER)


def glance_api_conf(s):
    return cfg.render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([
            ('debug', False),
            ('enabled_backends', 'fs:file'),
            ('workers', 1),
        ])),
        ('database', {'connection': cfg.db_url(s, 'glance')}),
        ('keystone_authtoken', cfg.authtoken(s, 'glance')),
        ('paste_deploy', {'flavor': 'keystone'}),
        ('glance_store', {'default_backend': 'fs'}),
        ('fs', {'filesystem_store_datadir': s.path('glance', 'images')}),
        ('os_glance_staging_store', {
            'filesystem_store_datadir': s.path('glance', 'staging')}),
        ('os_glance_tasks_store', {
            'filesystem_store_datadir': s.path('glance', 'tasks')}),
        ('oslo_concurrency', {'lock_path': s.lock_path}),
        ('oslo_messaging_notifications', {'driver': 'noop'}),
    ]), cfg.HEADER)


def neutron_conf(s):
    """neutron-server's API only: ML2 with no mechanism driver and no agent.
    Nova boots the lab's servers with `networks: none`, but still asks
    neutron for ports and extensions around a build and a migration."""
    return cfg.render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([
            ('debug', False),
            ('core_plugin', 'ml2'),
            # The router plugin defines models that ML2's port queries
            # expect (Port.port_forwardings); it needs no L3 agent for that.
            ('service_plugins', 'router'),
            ('auth_strategy', 'keystone'),
            ('transport_url', cfg.transport_url(s)),
            ('api_paste_config', os.path.join(s.etc('neutron'),
                                              'api-paste.ini')),
            ('api_workers', 1),
            ('rpc_workers', 0),
            ('rpc_state_report_workers', 0),
            ('notify_nova_on_port_status_changes', False),
            ('notify_nova_on_port_data_changes', False),
            ('state_path', s.path('neutron')),
        ])),
        ('database', {'connection': cfg.db_url(s, 'neutron')}),
        ('keystone_authtoken', cfg.authtoken(s, 'neutron')),
        ('nova', cfg.service_auth(s, 'nova')),
        ('oslo_concurrency', {'lock_path': s.lock_path}),
        ('oslo_messaging_notifications', {'driver': 'noop'}),
    ]), cfg.HEADER)


def ml2_conf(s):
    return cfg.render_ini(collections.OrderedDict([
        ('ml2', collections.OrderedDict([
            ('type_drivers', 'flat'),
            ('tenant_network_types', ''),
            ('mechanism_drivers', ''),
            ('extension_drivers', 'port_security'),
        ])),
        ('ml2_type_flat', {'flat_networks': '*'}),
    ]), cfg.HEADER)


def gunicorn_conf(s, api, threads=4):
    """gunicorn.conf.py of one API.  gunicorn runs with no command-line
    argument at all (it reads ./gunicorn.conf.py), because the services
    parse sys.argv with oslo.config and would refuse gunicorn's."""
    port, app, _env, _type, _suffix = cfg.APIS[api]
    return '\n'.join([
        '# ' + cfg.HEADER.replace('\n', '\n# '),
        'wsgi_app = %r' % app,
        'bind = [%r]' % ('%s:%d' % (s.host, port)),
        'workers = 1',
        "worker_class = 'gthread'",
        'threads = %d' % threads,
        'timeout = 600',
        'graceful_timeout = 10',
        # Longer than any client's idle pause (the default, 2 s, races
        # with a client that reuses its connection and gets a reset).
        'keepalive = 75',
        "proc_name = %r" % ('lab-' + api),
        "accesslog = '-'",
        "errorlog = '-'",
        'capture_output = True',
        '',
    ] + (NEUTRON_WORKER_HOOK if api == 'neutron' else []))


# neutron's port listing reads Port.port_forwardings, a backref that exists
# only once SQLAlchemy has configured its mappers; neutron-server's RPC and
# periodic workers do that early, the API alone does not.
NEUTRON_WORKER_HOOK = [
    '',
    'def post_worker_init(worker):',
    '    from sqlalchemy import orm',
    '    orm.configure_mappers()',
    '',
]


def api_env(s, api):
    """Environment variables that point one API at its config folder."""
    _port, _app, env_var, _type, _suffix = cfg.APIS[api]
    env = {env_var: s.etc(cfg.API_CONF_DIR[api])}
    if api == 'neutron':
        env['OS_NEUTRON_CONFIG_FILES'] = 'neutron.conf;ml2_conf.ini'
    if api == 'cinder-api':
        # Our WSGI module (cloud/cinder_wsgi.py) comes from this tree.
        env['PYTHONPATH'] = PACKAGE_ROOT
    return env


def start(cloud, s, api, restart=False):
    name = api
    if restart:
        cloud.sup.stop(name)
    cloud.sup.start(name, [cloud.bin('gunicorn')],
                    env=dict(cloud.env(), **api_env(s, api)),
                    cwd=s.etc('gunicorn-' + api))


def root(s, api):
    return 'http://%s:%d/' % (s.host, cfg.APIS[api][0])


def wait(cloud, s, api, timeout=180):
    url = root(s, api)
    cloud.sup.wait(api, 'answered at ' + url,
                   lambda: base.http_answers(url), timeout)


def stop(cloud):
    return cloud.stop_services(list(cfg.APIS))
