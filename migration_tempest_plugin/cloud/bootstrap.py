"""The lab cloud's bootstrap and checks, with openstacksdk.

This module runs inside the lab cloud's venv (which has openstacksdk):

    <venv>/bin/python -m migration_tempest_plugin.cloud.bootstrap STEP SPEC

SPEC is a JSON file written by :mod:`migration_tempest_plugin.cloud.cloud`;
the result of the step is printed as one JSON line on stdout.  Steps:

catalog   projects, roles, users and the catalog (keystone-manage bootstrap
          has made the admin user, the identity endpoints and the roles
          admin, member and reader)
images    the lab guest (kernel, ramdisk, disk) and the flavors
computes  wait until every named nova-compute is up and enabled and its
          hypervisor listed; return services and hypervisors
status    services and hypervisors as they are
volumes   wait until cinder's scheduler and volume services are up
"""

import hashlib
import json
import sys
import time

import openstack
import openstack.config
import openstack.connection
import openstack.exceptions


def connect(spec, cloud='lab-admin'):
    loader = openstack.config.OpenStackConfig(
        config_files=[spec['clouds_yaml']], vendor_files=[])
    return openstack.connection.Connection(config=loader.get_one(cloud))


# -- catalog ------------------------------------------------------------------

def _project(conn, name, domain):
    project = conn.identity.find_project(name, domain_id=domain.id)
    if project is None:
        project = conn.identity.create_project(
            name=name, domain_id=domain.id,
            description='migration lab cloud')
    return project


def _role(conn, name):
    role = conn.identity.find_role(name)
    if role is None:
        role = conn.identity.create_role(name=name)
    return role


def _user(conn, name, password, domain, project):
    user = conn.identity.find_user(name, domain_id=domain.id)
    if user is None:
        user = conn.identity.create_user(
            name=name, password=password, domain_id=domain.id,
            default_project_id=project.id)
    else:
        conn.identity.update_user(user, password=password)
    return user


def _grant(conn, project, user, role):
    if not conn.identity.validate_user_has_project_role(project, user, role):
        conn.identity.assign_project_role_to_user(project, user, role)


def _service(conn, name, stype, url, region):
    service = None
    for s in conn.identity.services():
        if s.name == name and s.type == stype:
            service = s
    if service is None:
        service = conn.identity.create_service(name=name, type=stype,
                                               enabled=True)
    have = {e.interface: e for e in conn.identity.endpoints(
        service_id=service.id)}
    for interface in ('public', 'internal', 'admin'):
        endpoint = have.get(interface)
        if endpoint is None:
            conn.identity.create_endpoint(
                service_id=service.id, interface=interface, url=url,
                region_id=region, enabled=True)
        elif endpoint.url != url:
            conn.identity.update_endpoint(endpoint, url=url)
    return service


def step_catalog(spec):
    conn = connect(spec)
    domain = conn.identity.find_domain(spec['domain'])
    roles = {name: _role(conn, name)
             for name in ('admin', 'member', 'reader', 'service')}
    service_project = _project(conn, spec['service_project'], domain)
    for name in spec['service_users']:
        user = _user(conn, name, spec['service_password'], domain,
                     service_project)
        for role in ('admin', 'service'):
            _grant(conn, service_project, user, roles[role])
    member_project = _project(conn, spec['member_project'], domain)
    member = _user(conn, spec['member_user'], spec['member_password'],
                   domain, member_project)
    for role in ('member', 'reader'):
        _grant(conn, member_project, member, roles[role])
    for name, stype, url in spec['catalog']:
        _service(conn, name, stype, url, spec['region'])
    return {'service_project': service_project.id,
            'member_project': member_project.id}


# -- images and flavors -------------------------------------------------------

def _digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _image(conn, name, path, disk_format, properties):
    """The image called `name` with the content of `path` and these
    properties; an older one (other content or properties) is replaced."""
    digest = _digest(path)
    keep = None
    for image in conn.image.images(name=name):
        props = image.properties or {}
        same = props.get('lab_sha256') == digest and all(
            str(props.get(k, getattr(image, k, None))) == str(v)
            for k, v in properties.items())
        if same and image.status == 'active' and keep is None:
            keep = image
        else:
            conn.image.delete_image(image, ignore_missing=True)
    if keep is not None:
        return keep
    return conn.image.create_image(
        name=name, filename=path, disk_format=disk_format,
        container_format=disk_format if disk_format in ('aki', 'ari')
        else 'bare', visibility='public', wait=True, timeout=600,
        allow_duplicates=True, lab_sha256=digest, **properties)


def _flavor(conn, name, ram, vcpus, disk, ephemeral=0, swap=0):
    flavor = conn.compute.find_flavor(name)
    if flavor is not None and (
            flavor.ram, flavor.vcpus, flavor.disk, flavor.ephemeral,
            flavor.swap or 0) != (ram, vcpus, disk, ephemeral, swap):
        conn.compute.delete_flavor(flavor)
        flavor = None
    if flavor is None:
        flavor = conn.compute.create_flavor(
            name=name, ram=ram, vcpus=vcpus, disk=disk, ephemeral=ephemeral,
            swap=swap, is_public=True)
    return flavor


def step_images(spec):
    conn = connect(spec)
    names = spec['image_names']
    kernel = _image(conn, names['kernel'], spec['kernel'], 'aki', {})
    ramdisk = _image(conn, names['ramdisk'], spec['ramdisk'], 'ari', {})
    disk = _image(conn, names['disk'], spec['disk'], 'raw', {
        'kernel_id': kernel.id, 'ramdisk_id': ramdisk.id,
        'os_command_line': spec['cmdline'],
        'hw_disk_bus': 'virtio',
        # The guest's init does not handle ACPI, so nova would wait
        # [DEFAULT] shutdown_timeout (60 s) before every power-off of a cold
        # migration, resize or shelve.  It acknowledges only durable writes,
        # so cutting its power at once breaks no promise it made.
        'os_shutdown_timeout': '0',
    })
    flavors = {key: _flavor(conn, **f).id
               for key, f in spec['flavors'].items()}
    return {'kernel_id': kernel.id, 'ramdisk_id': ramdisk.id,
            'image_id': disk.id, 'flavors': flavors}


# -- computes -----------------------------------------------------------------

def _listing(conn):
    services = [{'binary': s.binary, 'host': s.host, 'zone':
                 s.availability_zone, 'status': s.status, 'state': s.state,
                 'updated_at': s.updated_at}
                for s in conn.compute.services()]
    hypervisors = [{'name': h.name, 'state': h.state, 'status': h.status,
                    'id': h.id}
                   for h in conn.compute.hypervisors()]
    return {'services': services, 'hypervisors': hypervisors}


def step_status(spec):
    return _listing(connect(spec))


def _wait(what, fetch, missing_in, timeout, interval):
    """fetch() until missing_in(its result) is empty, or `timeout` seconds
    have passed (an API error is retried until then); return the last
    result, with 'missing' when something still was."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = fetch()
        except openstack.exceptions.SDKException as exc:
            if time.monotonic() > deadline:
                raise
            sys.stderr.write('%s: %s; trying again\n' % (what, exc))
            time.sleep(2)
            continue
        missing = missing_in(result)
        if not missing:
            return result
        if time.monotonic() > deadline:
            result['missing'] = missing
            return result
        time.sleep(interval)


def step_computes(spec):
    conn = connect(spec)
    wanted = set(spec['hosts'])
    wanted_hyp = set(spec.get('hypervisors') or spec['hosts'])

    def missing_in(listing):
        up = {s['host'] for s in listing['services']
              if s['binary'] == 'nova-compute' and s['state'] == 'up'
              and s['status'] == 'enabled'}
        hyp = {h['name'] for h in listing['hypervisors']
               if h['state'] == 'up' and h['status'] == 'enabled'}
        control = {s['binary'] for s in listing['services']
                   if s['state'] == 'up'}
        return sorted((wanted - up) | (wanted_hyp - hyp)
                      | (set(spec.get('control', ())) - control))
    return _wait('computes', lambda: _listing(conn), missing_in,
                 spec.get('timeout', 180), 2)


# -- cinder -------------------------------------------------------------------

def _volume_services(conn):
    return [{'binary': s.binary, 'host': s.host, 'status': s.status,
             'state': s.state, 'updated_at': s.updated_at}
            for s in conn.block_storage.services()]


def step_volumes(spec):
    """Wait until every [binary, host] of spec['services'] is up and
    enabled in cinder; return cinder's services ('missing': the binaries
    that were not, after spec['timeout'] seconds)."""
    conn = connect(spec)
    wanted = spec['services']

    def missing_in(result):
        return sorted(set(
            binary for binary, host in wanted
            if not any(s['binary'] == binary and s['host'] == host and
                       s['state'] == 'up' and s['status'] == 'enabled'
                       for s in result['services'])))
    return _wait('volumes', lambda: {'services': _volume_services(conn)},
                 missing_in, spec.get('timeout', 120), 1)


STEPS = {'catalog': step_catalog, 'images': step_images,
         'computes': step_computes, 'status': step_status,
         'volumes': step_volumes}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in STEPS:
        sys.stderr.write('usage: bootstrap {%s} SPEC.json\n'
                         % '|'.join(STEPS))
        return 2
    with open(argv[1]) as f:
        spec = json.load(f)
    result = STEPS[argv[0]](spec)
    sys.stdout.write(json.dumps(result, default=str) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
