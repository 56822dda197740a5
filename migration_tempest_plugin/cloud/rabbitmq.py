"""RabbitMQ (and its epmd) for the lab cloud, on the lab's address, under
the cloud's folder, started by the cloud's supervisor."""

import os

from migration_tempest_plugin.cloud import base
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin import runtime as rt


def conf(s):
    """rabbitmq.conf: AMQP on the lab address only (the computes use it),
    the lab's user as the default user, no guest."""
    d = s.path('rabbitmq')
    return '\n'.join([
        '# ' + cfg.HEADER.replace('\n', '\n# '),
        'listeners.tcp.1 = %s:%d' % (s.host, cfg.RABBIT_PORT),
        'default_user = %s' % cfg.RABBIT_USER,
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


def env(s):
    """Environment of rabbitmq-server: every file under the state folder,
    Erlang distribution on loopback, epmd our own (started apart)."""
    d = s.path('rabbitmq')
    erl_args = ('-kernel inet_dist_use_interface {127,0,0,1} '
                '-kernel inet_dist_listen_min %d '
                '-kernel inet_dist_listen_max %d -start_epmd false'
                % (cfg.RABBIT_DIST_PORT, cfg.RABBIT_DIST_PORT))
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
        'RABBITMQ_DIST_PORT': str(cfg.RABBIT_DIST_PORT),
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': erl_args,
        'ERL_EPMD_PORT': str(cfg.EPMD_PORT),
        'ERL_EPMD_ADDRESS': '127.0.0.1',
    }


def epmd_argv():
    return ['epmd', '-address', '127.0.0.1', '-port', str(cfg.EPMD_PORT)]


SERVICES = ('rabbitmq', 'epmd')


def configure(cloud, s):
    d = cloud.path('rabbitmq')
    for sub in ('mnesia', 'log'):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    rt.write_file(os.path.join(d, 'rabbitmq.conf'), conf(s), 0o600)
    rt.write_file(os.path.join(d, 'rabbitmq-env.conf'), '')
    rt.write_file(os.path.join(d, 'enabled_plugins'), '[].\n')
    rt.write_file(os.path.join(d, 'advanced.config'), '[].\n')


def start(cloud, s):
    cloud.sup.start('epmd', epmd_argv())
    cloud.sup.wait('epmd', 'listened', lambda: base.tcp_answers(
        '127.0.0.1', cfg.EPMD_PORT), 20, interval=0.2)
    cloud.sup.start('rabbitmq', ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
                    env=dict(cloud.env(), **env(s)))


def wait(cloud, s):
    cloud.sup.wait('rabbitmq', 'listened on %s:%d' % (s.host,
                                                      cfg.RABBIT_PORT),
                   lambda: base.tcp_answers(s.host, cfg.RABBIT_PORT), 120)


def stop(cloud):
    """RabbitMQ before the epmd it registered with."""
    return cloud.stop_services(['rabbitmq']) + cloud.stop_services(['epmd'])
