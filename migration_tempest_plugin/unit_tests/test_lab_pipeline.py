"""The case pipeline against a fake libvirt: a migration that succeeds,
fails or hangs; a fault that fires, fails to inject or never fires; and the
cleanup after each."""

import tempfile
import threading
import time
import types

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.lab import faults
from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import pipeline
from migration_tempest_plugin.lab import results

Verdict = results.Verdict


class FakeError(Exception):
    def get_error_message(self):
        return str(self)


LV = types.SimpleNamespace(
    libvirtError=FakeError,
    VIR_MIGRATE_PARAM_BANDWIDTH='bandwidth',
    VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY='bandwidth.postcopy',
    VIR_MIGRATE_PARAM_URI='migrate_uri',
    VIR_MIGRATE_PARAM_MIGRATE_DISKS='migrate_disks',
    VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS='parallel.connections',
    VIR_DOMAIN_JOB_STATS_COMPLETED=2, VIR_DOMAIN_ABORT_JOB_POSTCOPY=1,
    VIR_DOMAIN_RUNNING=1, VIR_DOMAIN_PAUSED=3, VIR_DOMAIN_SHUTOFF=5,
    VIR_DOMAIN_CRASHED=6, VIR_DOMAIN_BLOCKED=2)


class World(object):
    """The domains each node's libvirtd knows, and how a migration goes:
    'ok', 'slow' (copies for a while, then succeeds), 'fail' or 'hang'
    (until aborted)."""

    def __init__(self, how):
        self.how = how
        self.domains = {'n1': {}, 'n2': {}}
        self.opened = []
        self.aborted = threading.Event()

    def open(self, uri):
        conn = FakeConn(self, uri.split('/')[2])
        self.opened.append(conn)
        return conn


class FakeConn(object):
    def __init__(self, world, address):
        self.world = world
        self.node = {'10.254.0.1': 'n1', '10.254.0.2': 'n2'}[address]
        self.closed = False

    def getURI(self):
        return 'fake://' + self.node

    def createXML(self, xml, flags):
        dom = FakeDom(self.world, self.node, 'uuid-1')
        self.world.domains[self.node]['uuid-1'] = dom
        return dom

    def lookupByUUIDString(self, uuid):
        try:
            return self.world.domains[self.node][uuid]
        except KeyError:
            raise FakeError('Domain not found') from None

    def close(self):
        self.closed = True


class FakeDom(object):
    def __init__(self, world, node, uuid):
        self.world, self.node, self.uuid = world, node, uuid
        self.active = True

    def migrateToURI3(self, uri, params, value):
        how = self.world.how
        if how == 'fail':
            raise FakeError('operation failed: refused')
        if how == 'hang':
            self.world.aborted.wait(10)
            raise FakeError('operation aborted: job cancelled')
        if how == 'slow':
            time.sleep(0.35)
        dst = 'n2' if self.node == 'n1' else 'n1'
        del self.world.domains[self.node][self.uuid]
        self.world.domains[dst][self.uuid] = FakeDom(self.world, dst,
                                                     self.uuid)

    def jobStats(self, flags=0):
        return {'disk_processed': 1 << 20, 'memory_processed': 1 << 20}

    def abortJob(self):
        self.world.aborted.set()

    def connect(self):
        return FakeConn(self.world, '10.254.0.1')

    def state(self):
        return (LV.VIR_DOMAIN_RUNNING if self.active
                else LV.VIR_DOMAIN_SHUTOFF, 0)

    def isActive(self):
        return self.active

    def isPersistent(self):
        return False

    def destroy(self):
        self.active = False
        self.world.domains[self.node].pop(self.uuid, None)

    def suspend(self):
        pass

    def resume(self):
        pass


class FakeInstance(object):
    uuid = 'uuid-1'
    name = 'mtp-uuid'

    def __init__(self):
        self.removed = False

    def create_disks(self, node, local_only=False):
        pass

    def domain_xml(self):
        return '<domain/>'

    def remove_files(self):
        self.removed = True


def _node(name, address):
    return types.SimpleNamespace(name=name, address=address,
                                 uri='qemu+tcp://%s/system' % address)


class Injector(faults.Injector):
    log = []

    def inject(self):
        self.log.append('inject')
        if self.ctx.fault.name == 'fails':
            raise OSError('RTNETLINK answers: File exists')
        return 'injected'

    def heal(self):
        self.log.append('heal')


class TestPipeline(testtools.TestCase):

    def runner(self, how):
        self.world = World(how)
        lv = types.SimpleNamespace(**vars(LV))
        lv.open = self.world.open
        lab = types.SimpleNamespace(nodes=[_node('n1', '10.254.0.1'),
                                           _node('n2', '10.254.0.2')])
        runner = pipeline.CaseRunner(
            lab, None, None, tempfile.mkdtemp(),
            pipeline.Settings(migration_timeout_s=0.5), libvirt=lv)
        self.inst = FakeInstance()
        runner.instance = lambda case: self.inst
        runner.wait_acks = lambda *a, **kw: None
        runner.ack_count = lambda inst: 0
        self.judged = []

        def judge(inst, node, evidence_dir=None):
            self.judged.append(node.name)
            return checker.Result(verdict=checker.INTACT,
                                  acked_writes=50), []
        runner.judge = judge
        Injector.log = []
        return runner

    def case(self, fault_name=None, phase='disk'):
        block = {fs.name: fs for fs in matrix.flag_sets()}['nova-block']
        fault = None
        if fault_name:
            fault = faults.Fault(fault_name, Injector, flags.Expectation(
                flags.Outcome.INTACT, 'the test says so'), phase)
        return matrix.Case('local', block, fault=fault)

    def assertCleanedUp(self):
        self.assertEqual({'n1': {}, 'n2': {}}, self.world.domains)
        self.assertTrue(self.inst.removed)
        self.assertTrue(all(c.closed for c in self.world.opened))

    def test_migration_that_succeeds(self):
        result = self.runner('ok').run(self.case())
        self.assertEqual(Verdict.INTACT, result.verdict)
        self.assertTrue(result.agrees)
        self.assertTrue(result.migrated)
        self.assertEqual(50, result.acked_writes)   # the oracle's own
        self.assertEqual(['n2'], self.judged)       # where it ran last
        self.assertCleanedUp()

    def test_migration_that_fails(self):
        result = self.runner('fail').run(self.case())
        self.assertEqual(Verdict.REFUSED, result.verdict)
        self.assertEqual('operation failed: refused', result.message)
        self.assertFalse(result.migrated)
        self.assertEqual(['n1'], self.judged)       # it stayed at home
        self.assertCleanedUp()

    def test_migration_that_hangs_is_aborted(self):
        result = self.runner('hang').run(self.case())
        self.assertTrue(self.world.aborted.is_set())
        self.assertIn('did not finish', result.migration.error)
        self.assertEqual(Verdict.REFUSED, result.verdict)
        self.assertCleanedUp()

    def test_fault_that_fires(self):
        result = self.runner('slow').run(self.case('fires'))
        self.assertEqual(['inject', 'heal'], Injector.log)
        self.assertTrue(result.migration.fired)
        self.assertEqual(Verdict.INTACT, result.verdict)
        self.assertTrue(result.agrees)
        self.assertIn('injected', result.message)
        self.assertCleanedUp()

    def test_fault_that_fails_to_inject_is_an_error(self):
        result = self.runner('slow').run(self.case('fails'))
        self.assertEqual(['inject', 'heal'], Injector.log)   # tried once
        self.assertEqual(Verdict.ERROR, result.verdict)
        self.assertFalse(result.agrees)
        self.assertIn('could not be injected', result.message)
        self.assertIn('RTNETLINK answers: File exists', result.message)
        self.assertCleanedUp()

    def test_fault_that_never_fires_never_agrees(self):
        result = self.runner('ok').run(self.case('late'))
        self.assertEqual(['heal'], Injector.log)
        self.assertFalse(result.migration.fired)
        self.assertEqual(Verdict.INTACT, result.verdict)
        self.assertFalse(result.agrees)
        self.assertIn('never injected', result.finding)
        self.assertCleanedUp()

    def test_cleanup_after_a_harness_error(self):
        runner = self.runner('ok')

        def boom(*a, **kw):
            raise results.CaseError('the guest wrote nothing')
        runner.wait_acks = boom
        result = runner.run(self.case())
        self.assertEqual(Verdict.ERROR, result.verdict)
        self.assertIn('the guest wrote nothing', result.message)
        self.assertCleanedUp()

    def test_result_record_keeps_the_report_fields(self):
        record = self.runner('ok').run(self.case()).to_dict()
        self.assertEqual('INTACT', record['verdict'])
        for key in ('lost_writes', 'corrupt_blocks', 'migrated',
                    'migration_s', 'disk_bytes_copied', 'boot_s'):
            self.assertIn(key, record)
