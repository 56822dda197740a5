"""Everything the lab cloud writes as configuration, as pure functions.

Nothing here touches the machine: each function takes a :class:`Settings`
(paths, addresses, secrets, storage mode) and returns text or a dict, so
that the unit tests can check every option that matters.
"""

import collections
import configparser
import dataclasses
import io
import os
import urllib.parse

import yaml

HOST = '10.254.0.254'          # labbr0: the control plane listens only here
REGION = 'RegionOne'
DOMAIN = 'Default'

# API services: name -> (port, WSGI application, config dir variable,
# catalog type, path of the catalog endpoint).
APIS = collections.OrderedDict([
    ('keystone', (5000, 'keystone.wsgi.api:application',
                  'OS_KEYSTONE_CONFIG_DIR', 'identity', '/v3')),
    ('placement', (8778, 'placement.wsgi.api:application',
                   'OS_PLACEMENT_CONFIG_DIR', 'placement', '')),
    ('glance', (9292, 'glance.wsgi.api:application',
                'OS_GLANCE_CONFIG_DIR', 'image', '')),
    ('neutron', (9696, 'neutron.wsgi.api:application',
                 'OS_NEUTRON_CONFIG_DIR', 'network', '')),
    ('nova-api', (8774, 'nova.wsgi.osapi_compute:application',
                  'OS_NOVA_CONFIG_DIR', 'compute', '/v2.1')),
])
# Which config folder each API reads (nova-api shares nova's).
API_CONF_DIR = {'keystone': 'keystone', 'placement': 'placement',
                'glance': 'glance', 'neutron': 'neutron', 'nova-api': 'nova'}
RABBIT_PORT = 5672
# Erlang's port mapper and distribution port: loopback only, and off the
# defaults so that a host RabbitMQ (or any Erlang node) is not disturbed.
EPMD_PORT = 4371
RABBIT_DIST_PORT = 25673
DATABASES = ('keystone', 'placement', 'glance', 'neutron', 'nova_api',
             'nova', 'nova_cell0')
CONTROL_HOST = 'lab-control'   # nova's host name of conductor and scheduler
SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron')
SERVICE_PROJECT = 'service'
ADMIN_USER = ADMIN_PROJECT = 'admin'
MEMBER_USER = MEMBER_PROJECT = 'demo'
DB_USER = 'lab'
RABBIT_USER = 'lab'
INSTANCES_DIR = 'nova'   # nova's instances_path: <storage path>/nova
FLAVOR_NAME = 'lab.guest'
FLAVOR_ALT_NAME = 'lab.guest.alt'
IMAGE_NAMES = {'kernel': 'lab-guest-kernel', 'ramdisk': 'lab-guest-ramdisk',
               'disk': 'lab-guest'}
# Nova's migration options the tests may flip; mirrored into [migration].
MIGRATION_OPTIONS = ('live_migration_tunnelled',
                     'live_migration_with_native_tls',
                     'live_migration_permit_post_copy',
                     'live_migration_permit_auto_converge',
                     'live_migration_parallel_connections')
# The lab's storage modes that the cloud offers (flags.STORAGE_MODES) ->
# the plugin's [migration] storage choice.
PLUGIN_STORAGE = {'local': 'local', 'shared': 'nfs'}
STORAGE_MODES = tuple(PLUGIN_STORAGE)


@dataclasses.dataclass
class ComputeNode:
    """One lab node as nova sees it."""
    name: str          # also nova's [DEFAULT] host and hypervisor hostname
    address: str
    instances_path: str


@dataclasses.dataclass
class Settings:
    cloud_dir: str                 # <state>/cloud
    secrets: dict                  # db, rabbit, admin, member, service
    storage: str = 'local'
    computes: list = dataclasses.field(default_factory=list)
    host: str = HOST
    debug: bool = True
    migration: dict = dataclasses.field(default_factory=dict)

    # -- paths ----------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.cloud_dir, *parts)

    @property
    def venv(self):
        return self.path('venv')

    def etc(self, service):
        return self.path('etc', service)

    @property
    def mysql_socket(self):
        return self.path('mysql', 'mysqld.sock')

    @property
    def lock_path(self):
        return self.path('lock')

    def nova_compute_dir(self, node):
        return self.path('etc', 'nova-compute-' + node)

    def url(self, api):
        port, _app, _env, _type, suffix = APIS[api]
        return 'http://%s:%d%s' % (self.host, port, suffix)

    @property
    def auth_url(self):
        return self.url('keystone')


def migration_options(overrides=None):
    """Nova's live migration options as the lab runs them (nova's own
    defaults), with `overrides` on top."""
    opts = {'live_migration_tunnelled': False,
            'live_migration_with_native_tls': False,
            'live_migration_permit_post_copy': False,
            'live_migration_permit_auto_converge': False,
            'live_migration_parallel_connections': 1}
    for key, value in (overrides or {}).items():
        if key not in opts:
            raise ValueError('unknown nova migration option %s' % key)
        opts[key] = value
    return opts


# -- ini rendering ------------------------------------------------------------

def _value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return ','.join(str(v) for v in value)
    text = str(value)
    if '\n' in text:
        raise ValueError('multi-line value: %r' % text)
    return text


def _parser():
    # No interpolation (passwords may hold %), keys keep their case, and
    # [DEFAULT] is a section like the others, as oslo.config reads it.
    parser = configparser.ConfigParser(interpolation=None, strict=False,
                                       default_section='\0none')
    parser.optionxform = str
    return parser


def render_ini(sections, header=None):
    """{section: {key: value}} -> ini text (sections and keys in order;
    None values left out)."""
    parser = _parser()
    for section, options in sections.items():
        parser.add_section(section)
        for key, value in options.items():
            if value is not None:
                parser.set(section, key, _value(value))
    out = io.StringIO()
    if header:
        out.write(''.join('# %s\n' % line for line in header.splitlines()))
        out.write('\n')
    parser.write(out)
    return out.getvalue().rstrip('\n') + '\n'


def parse_ini(text):
    """ini text -> {section: {key: value}} (last value wins); ValueError
    if it is not ini."""
    parser = _parser()
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError('not ini: %s' % exc) from None
    return collections.OrderedDict(
        (name, collections.OrderedDict(parser.items(name, raw=True)))
        for name in parser.sections())


HEADER = ('Written by migration_tempest_plugin.cloud on every `cloud up`;\n'
          'edit the code, not this file.')


# -- shared pieces ------------------------------------------------------------

def db_url(s, name):
    return ('mysql+pymysql://%s:%s@localhost/%s?unix_socket=%s&charset=utf8'
            % (DB_USER, urllib.parse.quote(s.secrets['db'], safe=''), name,
               urllib.parse.quote(s.mysql_socket, safe='/')))


def transport_url(s):
    return 'rabbit://%s:%s@%s:%d/' % (
        RABBIT_USER, urllib.parse.quote(s.secrets['rabbit'], safe=''),
        s.host, RABBIT_PORT)


def service_auth(s, user):
    """keystoneauth password options of a service user."""
    return collections.OrderedDict([
        ('auth_type', 'password'),
        ('auth_url', s.auth_url),
        ('username', user),
        ('password', s.secrets['service']),
        ('user_domain_name', DOMAIN),
        ('project_name', SERVICE_PROJECT),
        ('project_domain_name', DOMAIN),
        ('region_name', REGION),
    ])


def authtoken(s, user):
    opts = collections.OrderedDict([('www_authenticate_uri', s.auth_url)])
    opts.update(service_auth(s, user))
    opts['service_token_roles_required'] = True
    return opts


def _common(s, state_path=None):
    return collections.OrderedDict([
        ('debug', s.debug),
        ('state_path', state_path),
        ('transport_url', transport_url(s)),
    ])


# -- keystone, placement, glance, neutron -------------------------------------

def keystone_conf(s):
    keys = s.path('keystone', 'fernet-keys')
    return render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([('debug', False)])),
        ('database', {'connection': db_url(s, 'keystone')}),
        ('token', {'provider': 'fernet'}),
        ('fernet_tokens', {'key_repository': keys}),
        ('fernet_receipts', {'key_repository': keys}),
        ('credential', {'key_repository': s.path('keystone',
                                                 'credential-keys')}),
        ('cache', {'enabled': False}),
        # bcrypt's minimum cost: the lab's passwords are random and local,
        # and tempest's dynamic credentials make users for every class.
        ('identity', {'password_hash_rounds': 4}),
    ]), HEADER)


def placement_conf(s):
    return render_ini(collections.OrderedDict([
        ('DEFAULT', {'debug': False}),
        ('api', {'auth_strategy': 'keystone'}),
        ('placement_database', {'connection': db_url(s, 'placement')}),
        ('keystone_authtoken', authtoken(s, 'placement')),
    ]), HEADER)


def glance_api_conf(s):
    return render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([
            ('debug', False),
            ('enabled_backends', 'fs:file'),
            ('workers', 1),
        ])),
        ('database', {'connection': db_url(s, 'glance')}),
        ('keystone_authtoken', authtoken(s, 'glance')),
        ('paste_deploy', {'flavor': 'keystone'}),
        ('glance_store', {'default_backend': 'fs'}),
        ('fs', {'filesystem_store_datadir': s.path('glance', 'images')}),
        ('os_glance_staging_store', {
            'filesystem_store_datadir': s.path('glance', 'staging')}),
        ('os_glance_tasks_store', {
            'filesystem_store_datadir': s.path('glance', 'tasks')}),
        ('oslo_concurrency', {'lock_path': s.lock_path}),
        ('oslo_messaging_notifications', {'driver': 'noop'}),
    ]), HEADER)


def neutron_conf(s):
    """neutron-server's API only: ML2 with no mechanism driver and no agent.
    Nova boots the lab's servers with `networks: none`, but still asks
    neutron for ports and extensions around a build and a migration."""
    return render_ini(collections.OrderedDict([
        ('DEFAULT', collections.OrderedDict([
            ('debug', False),
            ('core_plugin', 'ml2'),
            # The router plugin defines models that ML2's port queries
            # expect (Port.port_forwardings); it needs no L3 agent for that.
            ('service_plugins', 'router'),
            ('auth_strategy', 'keystone'),
            ('transport_url', transport_url(s)),
            ('api_paste_config', os.path.join(s.etc('neutron'),
                                              'api-paste.ini')),
            ('api_workers', 1),
            ('rpc_workers', 0),
            ('rpc_state_report_workers', 0),
            ('notify_nova_on_port_status_changes', False),
            ('notify_nova_on_port_data_changes', False),
            ('state_path', s.path('neutron')),
        ])),
        ('database', {'connection': db_url(s, 'neutron')}),
        ('keystone_authtoken', authtoken(s, 'neutron')),
        ('nova', service_auth(s, 'nova')),
        ('oslo_concurrency', {'lock_path': s.lock_path}),
        ('oslo_messaging_notifications', {'driver': 'noop'}),
    ]), HEADER)


def ml2_conf(s):
    return render_ini(collections.OrderedDict([
        ('ml2', collections.OrderedDict([
            ('type_drivers', 'flat'),
            ('tenant_network_types', ''),
            ('mechanism_drivers', ''),
            ('extension_drivers', 'port_security'),
        ])),
        ('ml2_type_flat', {'flat_networks': '*'}),
    ]), HEADER)


# -- nova ---------------------------------------------------------------------

def _privsep_sections(s):
    helper = os.path.join(s.venv, 'bin', 'privsep-helper')
    return collections.OrderedDict(
        (section, {'helper_command': helper})
        for section in ('nova_sys_admin', 'privsep_osbrick',
                        'vif_plug_linux_bridge_privileged',
                        'vif_plug_ovs_privileged'))


def _nova_common(s, state_path):
    sections = collections.OrderedDict()
    default = _common(s, state_path)
    default['my_ip'] = s.host
    # SIGTERM: finish within seconds (the default waits up to 60).
    default['graceful_shutdown_timeout'] = 5
    default['rootwrap_config'] = os.path.join(s.etc('nova'),
                                              'rootwrap.conf')
    sections['DEFAULT'] = default
    sections['api'] = {'auth_strategy': 'keystone'}
    sections['keystone_authtoken'] = authtoken(s, 'nova')
    sections['service_user'] = collections.OrderedDict(
        [('send_service_user_token', True)] +
        list(service_auth(s, 'nova').items()))
    sections['placement'] = service_auth(s, 'placement')
    sections['neutron'] = service_auth(s, 'neutron')
    sections['glance'] = {'region_name': REGION}
    sections['cinder'] = {'os_region_name': REGION}
    sections['oslo_concurrency'] = {'lock_path': s.lock_path}
    sections['oslo_messaging_notifications'] = {'driver': 'noop'}
    sections['vnc'] = {'enabled': False}
    sections['spice'] = {'enabled': False}
    sections['serial_console'] = {'enabled': False}
    return sections


def nova_conf(s):
    """nova.conf of nova-api, nova-conductor and nova-scheduler (one cell:
    cell1's database in [database], its queue in transport_url)."""
    sections = _nova_common(s, s.path('nova', 'control'))
    sections['DEFAULT']['host'] = CONTROL_HOST
    sections['api_database'] = {'connection': db_url(s, 'nova_api')}
    sections['database'] = {'connection': db_url(s, 'nova')}
    sections['wsgi'] = {'api_paste_config': os.path.join(s.etc('nova'),
                                                         'api-paste.ini')}
    sections['conductor'] = {'workers': 1}
    sections['scheduler'] = collections.OrderedDict([
        ('workers', 1),
        # `cloud up` runs discover_hosts itself once the computes report.
        ('discover_hosts_in_cells_interval', -1),
    ])
    sections['filter_scheduler'] = {'track_instance_changes': False}
    return render_ini(sections, HEADER)


def nova_compute_conf(s, node, migration=None):
    """nova.conf of the nova-compute on one lab node."""
    opts = migration_options(migration if migration is not None
                             else s.migration)
    sections = _nova_common(s, s.path('nova', node.name))
    default = sections['DEFAULT']
    default['host'] = node.name
    default['my_ip'] = node.address
    default['compute_driver'] = 'libvirt.LibvirtDriver'
    default['instances_path'] = node.instances_path
    default['heal_instance_info_cache_interval'] = -1
    default['resume_guests_state_on_host_boot'] = False
    default['sync_power_state_interval'] = 60
    libvirt = collections.OrderedDict([
        ('virt_type', 'qemu'),
        ('cpu_mode', 'none'),
        ('live_migration_scheme', 'tcp'),
        ('live_migration_inbound_addr', node.address),
        ('live_migration_completion_timeout', 800),
        ('live_migration_timeout_action', 'abort'),
    ])
    libvirt.update(opts)
    sections['libvirt'] = libvirt
    sections['compute'] = {'max_concurrent_live_migrations': 1}
    # The guest kernel is an AKI image: a bzImage, whose legacy boot sector
    # nova's deep image inspection takes for an MBR with a bad partition
    # table.  Spawning does not inspect kernels, but pre_live_migration on
    # the destination does (fetch_to_raw), and refuses the migration with
    # "Image does not pass safety check".  The lab's images are our own.
    sections['workarounds'] = {'disable_deep_image_inspection': True}
    # Each node its own locks, as two hosts would have.
    sections['oslo_concurrency'] = {
        'lock_path': s.path('nova', node.name, 'lock')}
    sections.update(_privsep_sections(s))
    return render_ini(sections, HEADER)


# -- WSGI server --------------------------------------------------------------

def gunicorn_conf(s, api, threads=4):
    """gunicorn.conf.py of one API.  gunicorn runs with no command-line
    argument at all (it reads ./gunicorn.conf.py), because the services
    parse sys.argv with oslo.config and would refuse gunicorn's."""
    port, app, _env, _type, _suffix = APIS[api]
    return '\n'.join([
        '# ' + HEADER.replace('\n', '\n# '),
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
    _port, _app, env_var, _type, _suffix = APIS[api]
    env = {env_var: s.etc(API_CONF_DIR[api])}
    if api == 'neutron':
        env['OS_NEUTRON_CONFIG_FILES'] = 'neutron.conf;ml2_conf.ini'
    return env


# -- MariaDB and RabbitMQ -----------------------------------------------------

def mariadb_argv(s):
    """mariadbd on a Unix socket only: nothing in the nodes needs the
    database (nova-compute goes through the conductor)."""
    d = s.path('mysql')
    return ['mariadbd', '--no-defaults', '--user=root',
            '--datadir=' + os.path.join(d, 'data'),
            '--socket=' + s.mysql_socket,
            '--pid-file=' + os.path.join(d, 'mysqld.pid'),
            '--skip-networking', '--skip-name-resolve',
            '--performance-schema=OFF',
            '--innodb-buffer-pool-size=64M',
            '--innodb-log-file-size=48M',
            '--innodb-flush-log-at-trx-commit=2',
            '--max-connections=500',
            '--character-set-server=utf8mb4',
            '--collation-server=utf8mb4_general_ci']


def mariadb_install_argv(s):
    return ['mariadb-install-db', '--no-defaults', '--user=root',
            '--datadir=' + os.path.join(s.path('mysql'), 'data'),
            '--auth-root-authentication-method=socket', '--skip-test-db']


def _sql_quote(text):
    return "'%s'" % text.replace('\\', '\\\\').replace("'", "\\'")


def mariadb_setup_sql(s):
    """Databases and the one user the services connect as."""
    stmts = ['CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;' % db
             for db in DATABASES]
    stmts.append("CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY %s;"
                 % (DB_USER, _sql_quote(s.secrets['db'])))
    stmts.append("ALTER USER '%s'@'localhost' IDENTIFIED BY %s;"
                 % (DB_USER, _sql_quote(s.secrets['db'])))
    stmts += ["GRANT ALL PRIVILEGES ON %s.* TO '%s'@'localhost';"
              % (db, DB_USER) for db in DATABASES]
    stmts.append('FLUSH PRIVILEGES;')
    return '\n'.join(stmts) + '\n'


def rabbitmq_conf(s):
    """rabbitmq.conf: AMQP on the lab address only (the computes use it),
    the lab's user as the default user, no guest."""
    d = s.path('rabbitmq')
    return '\n'.join([
        '# ' + HEADER.replace('\n', '\n# '),
        'listeners.tcp.1 = %s:%d' % (s.host, RABBIT_PORT),
        'default_user = %s' % RABBIT_USER,
        'default_pass = %s' % s.secrets['rabbit'],
        'default_vhost = /',
        'default_permissions.configure = .*',
        'default_permissions.read = .*',
        'default_permissions.write = .*',
        'loopback_users = none',
        'log.file = %s' % os.path.join(d, 'log', 'rabbit.log'),
        'log.file.level = info',
        'log.console = false',
        'vm_memory_high_watermark.relative = 0.2',
        'disk_free_limit.absolute = 50MB',
        '',
    ])


def rabbitmq_env(s):
    """Environment of rabbitmq-server: every file under the state folder,
    Erlang distribution on loopback, epmd our own (started apart)."""
    d = s.path('rabbitmq')
    erl_args = ('-kernel inet_dist_use_interface {127,0,0,1} '
                '-kernel inet_dist_listen_min %d '
                '-kernel inet_dist_listen_max %d -start_epmd false'
                % (RABBIT_DIST_PORT, RABBIT_DIST_PORT))
    return {
        'HOME': d,
        'RABBITMQ_NODENAME': 'lab@localhost',
        'RABBITMQ_CONF_ENV_FILE': os.path.join(d, 'rabbitmq-env.conf'),
        'RABBITMQ_CONFIG_FILE': os.path.join(d, 'rabbitmq.conf'),
        'RABBITMQ_ADVANCED_CONFIG_FILE': os.path.join(d, 'advanced.config'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(d, 'enabled_plugins'),
        'RABBITMQ_MNESIA_BASE': os.path.join(d, 'mnesia'),
        'RABBITMQ_LOG_BASE': os.path.join(d, 'log'),
        'RABBITMQ_PID_FILE': os.path.join(d, 'rabbit.pid'),
        'RABBITMQ_DIST_PORT': str(RABBIT_DIST_PORT),
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': erl_args,
        'ERL_EPMD_PORT': str(EPMD_PORT),
        'ERL_EPMD_ADDRESS': '127.0.0.1',
    }


def epmd_argv():
    return ['epmd', '-address', '127.0.0.1', '-port', str(EPMD_PORT)]


# -- clients ------------------------------------------------------------------

def clouds_yaml(s):
    """clouds.yaml for openstacksdk / openstackclient: lab-admin and
    lab-member."""
    def cloud(user, project, password):
        return {'auth': {'auth_url': s.auth_url, 'username': user,
                         'password': password, 'project_name': project,
                         'user_domain_name': DOMAIN,
                         'project_domain_name': DOMAIN},
                'region_name': REGION, 'identity_api_version': 3,
                'interface': 'public'}
    return yaml.safe_dump({'clouds': {
        'lab-admin': cloud(ADMIN_USER, ADMIN_PROJECT, s.secrets['admin']),
        'lab-member': cloud(MEMBER_USER, MEMBER_PROJECT, s.secrets['member']),
    }}, default_flow_style=False)


def catalog(s):
    """(service name, type, url) of every API but keystone's own (which
    keystone-manage bootstrap registers)."""
    out = []
    for api, (_port, _app, _env, stype, _suffix) in APIS.items():
        if api == 'keystone':
            continue
        out.append((api.split('-')[0], stype, s.url(api)))
    return out
