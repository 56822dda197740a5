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

from migration_tempest_plugin import storage_modes

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
    # cinder's own WSGI module parses sys.argv (gunicorn's), so a module of
    # ours names its config file first (cloud/cinder_wsgi.py).  The catalog
    # type is block-storage; keystoneauth matches nova's volumev3 to it.
    ('cinder-api', (8776, 'migration_tempest_plugin.cloud.cinder_wsgi:'
                    'application', 'OS_CINDER_CONFIG_DIR', 'block-storage',
                    '/v3/$(project_id)s')),
])
# Which config folder each API reads (nova-api shares nova's).
API_CONF_DIR = {'keystone': 'keystone', 'placement': 'placement',
                'glance': 'glance', 'neutron': 'neutron', 'nova-api': 'nova',
                'cinder-api': 'cinder'}
RABBIT_PORT = 5672
# Erlang's port mapper and distribution port: loopback only, and off the
# defaults so that a host RabbitMQ (or any Erlang node) is not disturbed.
EPMD_PORT = 4371
RABBIT_DIST_PORT = 25673
DATABASES = ('keystone', 'placement', 'glance', 'neutron', 'nova_api',
             'nova', 'nova_cell0', 'cinder')
CONTROL_HOST = 'lab-control'   # nova's host name of conductor and scheduler
# cinder's host name (cinder-volume reports as CONTROL_HOST@CINDER_BACKEND).
CINDER_BACKEND = 'ceph'
# A second back end on another pool: cinder moves an attached volume there
# through nova's swap (a retype with migration), which a test exercises.
CINDER_BACKEND2 = 'ceph2'
SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron', 'cinder')
SERVICE_PROJECT = 'service'
ADMIN_USER = ADMIN_PROJECT = 'admin'
MEMBER_USER = MEMBER_PROJECT = 'demo'
DB_USER = 'lab'
RABBIT_USER = 'lab'
INSTANCES_DIR = 'nova'   # nova's instances_path: <storage path>/nova
FLAVOR_NAME = 'lab.guest'
FLAVOR_ALT_NAME = 'lab.guest.alt'
FLAVOR_BIGGER_NAME = 'lab.guest.bigger'
FLAVOR_DISKS_NAME = 'lab.guest.disks'
IMAGE_NAMES = {'kernel': 'lab-guest-kernel', 'ramdisk': 'lab-guest-ramdisk',
               'disk': 'lab-guest'}
# Nova's migration options the tests may flip; mirrored into [migration].
MIGRATION_OPTIONS = ('live_migration_tunnelled',
                     'live_migration_with_native_tls',
                     'live_migration_permit_post_copy',
                     'live_migration_permit_auto_converge',
                     'live_migration_parallel_connections')
# The scheduler filters, as devstack enables them (lib/nova FILTERS).
SCHEDULER_FILTERS = ('ComputeFilter', 'ComputeCapabilitiesFilter',
                     'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                     'ServerGroupAffinityFilter', 'SameHostFilter',
                     'DifferentHostFilter')
# The lab's storage modes that the cloud offers -> the plugin's [migration]
# storage choice (from the registry of storage modes).
PLUGIN_STORAGE = storage_modes.cloud_modes()
STORAGE_MODES = tuple(PLUGIN_STORAGE)


@dataclasses.dataclass
class ComputeNode:
    """One lab node as nova sees it."""
    name: str          # also nova's [DEFAULT] host and hypervisor hostname
    address: str
    instances_path: str


@dataclasses.dataclass(frozen=True)
class CephClient:
    """The lab's Ceph as its clients see it inside a lab node (the rbd lab
    storage mode binds /etc/ceph there): the names nova and cinder put in
    their configuration."""
    conf: str = '/etc/ceph/ceph.conf'
    user: str = 'cinder'           # cephx client.cinder (keyring in /etc/ceph)
    secret_uuid: str = ''          # libvirt secret of client.cinder's key
    vms_pool: str = 'vms'          # nova's instance disks (images_type = rbd)
    volumes_pool: str = 'volumes'  # cinder's volumes
    volumes2_pool: str = 'volumes2'  # cinder's second back end
    images_pool: str = 'images'


@dataclasses.dataclass
class Settings:
    cloud_dir: str                 # <state>/cloud
    secrets: dict                  # db, rabbit, admin, member, service
    storage: str = 'local'
    computes: list = dataclasses.field(default_factory=list)
    host: str = HOST
    debug: bool = True
    migration: dict = dataclasses.field(default_factory=dict)
    # How the cloud reaches the lab's Ceph (CephClient): cinder always, and
    # nova's instance disks with storage 'rbd'.
    ceph: CephClient = dataclasses.field(default_factory=CephClient)

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

    @property
    def images_rbd(self):
        """nova's instance disks are RBD images (images_type = rbd)."""
        return self.storage == 'rbd'


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


def common(s, state_path=None):
    return collections.OrderedDict([
        ('debug', s.debug),
        ('state_path', state_path),
        ('transport_url', transport_url(s)),
    ])


# -- keystone, placement, glance, neutron -------------------------------------


# -- nova ---------------------------------------------------------------------


# -- WSGI server --------------------------------------------------------------


# -- MariaDB and RabbitMQ -----------------------------------------------------


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
