"""Every private nova test internal the harness uses, in one place.

nova-ha's test harness (``nova_ha.sim.novastack``, ``nova_ha.sim.novaproc``,
``nova_ha.sim.novaprocs``, ``tests/functional/base.py``) runs nova's own
functional-test stack. Those fixtures are not an API: they change between
releases. Everything private the harness reaches into is listed here, with
why, and the harness imports it through this module, so that a new nova
release that breaks one is found here (``check()`` looks them all up; the
unit test tests/unit/test_nova_internals.py runs it and so does ``make
matrix`` on every supported release).

Importing this module imports no nova code: call :func:`monkey_patch` first
(nova must be monkey patched, or told not to be, before anything imports
it), then the accessors.

Threading mode per release (README, "Supported OpenStack releases"):

- nova 31 (2025.1) only knows eventlet: importing ``nova.monkey_patch``
  patches unless ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` is true; there is no
  ``patch()``;
- nova 33 (2026.1) has ``monkey_patch.patch()`` and an experimental native
  threading mode in which its functional fixtures fail: eventlet;
- nova 34 (2026.2) services run on native threads by default: threading.

``NOVA_HA_NOVA_THREADING=eventlet|threading`` overrides the choice; an
explicit ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` is honoured too. The choice is
written back to ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` so that every child
process (the sim, nova services, nova-manage) runs in the same mode.
Eventlet mode does not work under pytest-xdist (the workers hang): run
those releases' tests serially (``-p no:xdist``; ``make matrix`` does).
"""

import importlib
import os

THREADING_ENV = 'NOVA_HA_NOVA_THREADING'
NOVA_ENV = 'OS_NOVA_DISABLE_EVENTLET_PATCHING'
MODES = ('eventlet', 'threading')
# First nova release whose services (and functional fixtures) run on
# native threads by default: 34.0.0, 2026.2.
FIRST_THREADING_NOVA = 34

_TRUE = ('1', 'true', 'yes')


def nova_version():
    """The installed nova's version as a tuple of ints (no nova import)."""
    from importlib import metadata
    try:
        text = metadata.version('nova')
    except metadata.PackageNotFoundError:
        raise ImportError('nova is not installed: the simulated cloud and '
                          'the functional tests run a real nova (make venv, '
                          'or make matrix for another release)') from None
    parts = []
    for piece in text.split('.'):
        digits = ''.join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def threading_mode(environ=None):
    """'eventlet' or 'threading': what nova runs on in this process."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(THREADING_ENV, '').strip().lower()
    if explicit:
        if explicit not in MODES:
            raise ValueError('%s=%r: must be one of %s' % (
                THREADING_ENV, environ.get(THREADING_ENV), ', '.join(MODES)))
        return explicit
    flag = environ.get(NOVA_ENV, '').strip().lower()
    if flag:
        return 'threading' if flag in _TRUE else 'eventlet'
    if nova_version()[:1] >= (FIRST_THREADING_NOVA,):
        return 'threading'
    return 'eventlet'


def select_threading_mode(environ=None):
    """Decide the mode and write it where nova (and children) read it."""
    environ = os.environ if environ is None else environ
    mode = threading_mode(environ)
    environ[THREADING_ENV] = mode
    environ[NOVA_ENV] = '1' if mode == 'threading' else '0'
    return mode


_patched = None


def monkey_patch():
    """Monkey patch (or not) as this nova release needs; idempotent.

    Must run before anything imports nova (or eventlet-sensitive modules).
    Returns the mode.
    """
    global _patched
    if _patched:
        return _patched
    mode = select_threading_mode()
    # nova 31: the import itself patches (eventlet) unless NOVA_ENV is true.
    from nova import monkey_patch as nova_monkey_patch
    patch = getattr(nova_monkey_patch, 'patch', None)
    if patch is not None:
        # nova >= 32 (2025.2): patch() reads NOVA_ENV, initialises
        # oslo.service's backend to match.
        patch()
    _patched = mode
    return mode


def eventlet_mode():
    return (_patched or threading_mode()) == 'eventlet'


# -- accessors: each private use, with why --------------------------------
#
# nova.tests.fixtures (the package) -- used by novastack:
#   * CellDatabases._wrap_target_cell / _wrap_get_context_manager /
#     _real_target_cell / _ctxt_mgrs / _default_ctxt_mgr: replaced in
#     threading mode to keep the targeted cell per thread (novastack,
#     workaround 5: the fixture's global lock deadlocks with async casts);
#   * HostNameWeigherFixture: deterministic host choice (HOST_WEIGHTS);
#   * OSAPIFixture._stub_keystone: the multi-process sim's API process uses
#     nova's own keystone stand-in (novaproc);
#   * fixtures.MonkeyPatch of nova.servicegroup.api.INITIAL_REPORTING_DELAY
#     (a module constant): a simulated host reports "up" at once.
# nova.tests.fixtures.glance.GlanceFixture / .neutron.NeutronFixture: the
#   image and network stand-ins in each nova process of the multi-process
#   sim (novaproc), and the sim's image list (novaprocs).
# nova.tests.functional.integrated_helpers._IntegratedTestBase: the base
#   class of the stack. Its hooks _setup_services, _setup_scheduler_service,
#   _setup_compute_service and nova.test.TestCase._clear_attrs are
#   overridden (novastack); _start_compute (novastack, sim/cloud.py) and the
#   attributes computes, api, admin_api, api_fixture (.base_url,
#   .project_id) are used; tests call its helpers _build_server,
#   _create_flavor, _create_server, _evacuate_server, _live_migrate,
#   _wait_for_state_change and flags().
# nova.tests.functional.api.client: TestOpenStackClient (the multi-process
#   sim's API client, novaprocs) and OpenStackApiException (tests).
# nova.api.openstack.wsgi_app._setup_service: registers the API service
#   record before serving, as nova's WSGI entry point does (novaproc).
# nova.virt.fake: the fake hypervisor drivers (compute_driver
#   'fake.MediumFakeDriver', 'fake.FakeLiveMigrateDriver'); tests patch
#   FakeDriver.live_migration / migrate_disk_and_power_off /
#   confirm_migration (tests/functional/maintenance/recorder.py) and
#   FakeLiveMigrateDriver.live_migration (test_concurrent_moves.py).
# nova.tests.unit.scheduler.fakes.FakeHostState: host states for the filter
#   unit tests (tests/unit/scheduler/conftest.py) and benchmarks/
#   bench_filters.py, which run nova's filter code without a stack.
# Not nova's, but private all the same (novastack's SimTuning):
#   oslo_db.sqlalchemy.engines._init_connection_args / _init_events and
#   oslo_messaging._drivers.impl_fake (FakeExchange.deliver_message,
#   FakeListener.poll/stop and its _targets, _exchange_manager, _pool,
#   _stopped; base.batch_poll_helper).

def fixtures():
    """nova.tests.fixtures (see the list above)."""
    return importlib.import_module('nova.tests.fixtures')


def integrated_helpers():
    """nova.tests.functional.integrated_helpers."""
    return importlib.import_module(
        'nova.tests.functional.integrated_helpers')


def integrated_test_base():
    """_IntegratedTestBase, the stack's base class."""
    return integrated_helpers()._IntegratedTestBase


def api_client():
    """nova.tests.functional.api.client."""
    return importlib.import_module('nova.tests.functional.api.client')


def glance_fixture():
    return importlib.import_module('nova.tests.fixtures.glance').GlanceFixture


def neutron_fixture():
    return importlib.import_module(
        'nova.tests.fixtures.neutron').NeutronFixture


def stub_keystone(host):
    """OSAPIFixture._stub_keystone, run on ``host`` (anything with
    useFixture): no token middleware, context from X-Auth-* headers."""
    return fixtures().OSAPIFixture._stub_keystone(host)


def setup_api_service(host, binary='osapi_compute'):
    """nova.api.openstack.wsgi_app._setup_service."""
    wsgi_app = importlib.import_module('nova.api.openstack.wsgi_app')
    return wsgi_app._setup_service(host, binary)


INITIAL_REPORTING_DELAY = 'nova.servicegroup.api.INITIAL_REPORTING_DELAY'

# (module, dotted attribute) of everything above, for check().
USED = (
    ('nova.tests.fixtures', 'CellDatabases._wrap_target_cell'),
    ('nova.tests.fixtures', 'CellDatabases._wrap_get_context_manager'),
    ('nova.tests.fixtures', 'HostNameWeigherFixture'),
    ('nova.tests.fixtures', 'OSAPIFixture._stub_keystone'),
    ('nova.tests.fixtures', 'fixtures.MonkeyPatch'),
    ('nova.servicegroup.api', 'INITIAL_REPORTING_DELAY'),
    ('nova.tests.fixtures.glance', 'GlanceFixture'),
    ('nova.tests.fixtures.neutron', 'NeutronFixture'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._setup_services'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._setup_scheduler_service'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._setup_compute_service'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._start_compute'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._clear_attrs'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._build_server'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._create_flavor'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._create_server'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._evacuate_server'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._live_migrate'),
    ('nova.tests.functional.integrated_helpers',
     '_IntegratedTestBase._wait_for_state_change'),
    ('nova.tests.functional.integrated_helpers', '_IntegratedTestBase.flags'),
    ('nova.tests.functional.api.client', 'TestOpenStackClient'),
    ('nova.tests.functional.api.client', 'OpenStackApiException'),
    ('nova.api.openstack.wsgi_app', '_setup_service'),
    ('nova.virt.fake', 'MediumFakeDriver'),
    ('nova.virt.fake', 'FakeLiveMigrateDriver.live_migration'),
    ('nova.virt.fake', 'FakeDriver.live_migration'),
    ('nova.virt.fake', 'FakeDriver.migrate_disk_and_power_off'),
    ('nova.virt.fake', 'FakeDriver.confirm_migration'),
    ('nova.tests.unit.scheduler.fakes', 'FakeHostState'),
    ('oslo_db.sqlalchemy.engines', '_init_connection_args'),
    ('oslo_db.sqlalchemy.engines', '_init_events'),
    ('oslo_messaging._drivers.impl_fake', 'FakeExchange.deliver_message'),
    ('oslo_messaging._drivers.impl_fake', 'FakeListener.poll'),
    ('oslo_messaging._drivers.impl_fake', 'FakeListener.stop'),
    ('oslo_messaging._drivers.base', 'batch_poll_helper'),
)


def check():
    """Look up every USED internal; return the missing ones (strings)."""
    missing = []
    for module, dotted in USED:
        try:
            obj = importlib.import_module(module)
            for name in dotted.split('.'):
                obj = getattr(obj, name)
        except (ImportError, AttributeError) as exc:
            missing.append('%s.%s (%s)' % (module, dotted, exc))
    return missing


def node_uuid(nodename):
    """A simulated compute node's UUID, the same in every process and
    every start: the multi-process sim writes it as each host's
    ``compute_id`` (novaprocs) and its driver reports it
    (nova_ha.sim.fake_driver)."""
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_DNS,
                          'node.%s.nova-ha-sim' % nodename))
