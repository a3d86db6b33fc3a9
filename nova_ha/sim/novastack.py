"""A real Nova in process: API, conductor, scheduler, placement, computes.

Built from nova's own functional-test fixtures, which the ``nova`` wheel
ships. Both the functional tests (``tests/functional/base.py``) and the
simulated cloud (``nova_ha.sim.cloud``) start Nova through
:class:`NovaStackMixin`, so the workarounds it needs live here and only here:

1. the wheel installs ``api-paste.ini`` under ``<sys.prefix>/etc/nova``, not
   where nova's ConfFixture looks for it;
2. SQLAlchemy 2.1 deprecates ``orm.noload`` and nova's WarningsFixture makes
   that an error: requirements.txt pins ``SQLAlchemy<2.1`` (checked below);
3. under pytest, ``nova.test.TestCase._clear_attrs`` deletes the bound test
   method pytest keeps on the instance: keep attributes named ``test*``;
4. monkey patching must come before any other nova import: importing this
   module patches as the installed nova release needs
   (:func:`nova_ha.sim.nova_internals.monkey_patch`: native threads on nova
   34, eventlet on nova 31 and 33, ``NOVA_HA_NOVA_THREADING`` to choose);
5. with asynchronous casts (no CastAsCall) under native threads, nova's
   CellDatabases fixture deadlocks: the conductor holds the global cell
   read lock while it RPC-calls the scheduler, which needs the write lock
   to switch cells (seen as soon as a failed build goes to cell0). The
   cell a thread targets is kept per thread instead (see
   :func:`_per_thread_cell_targeting`; threading mode only, eventlet keeps
   nova's own).

Every private nova internal used here is listed, with why, in
:mod:`nova_ha.sim.nova_internals`, and imported through it.

Speed (``SIM_TUNING``, used by the simulated cloud): the test harness is
built to catch bugs, not to be fast, and on a small machine a sim that
evacuates 100 instances spends its time in that harness rather than in
Nova. :class:`SimTuning` keeps every Nova service real and changes only the
harness around them and options an operator could set:

- oslo.messaging's fake transport (nova's RPC in process) looks for a
  message every 50 ms per listener; a listener is woken when a message for
  its topic is delivered instead (each RPC hop was 25 ms on average, and
  dozens of idle listeners woke 20 times a second);
- oslo.db opens a new SQLite connection for every transaction of a file
  database (NullPool, with its connect-time PRAGMAs); connections are
  pooled instead (WAL mode, nova's per-database write lock kept), and a
  commit does not wait for the disk (``PRAGMA synchronous = OFF``, oslo.db's
  ``sqlite_synchronous = False``: the sim's databases are thrown away when
  it stops);
- the root logger at INFO (nova's harness formats every DEBUG message to
  catch format errors, then drops it);
- ``[api] response_validation = ignore`` (the harness validates every
  response body against its JSON schema, nova's default only warns) and
  ``[notifications] notification_format = unversioned`` (nova's harness
  builds and validates every versioned notification payload though nothing
  in the sim reads them).
"""

import logging
import os
import sys
import threading
import time

from nova_ha.sim import nova_internals

THREADING_MODE = nova_internals.monkey_patch()

import sqlalchemy  # noqa: E402

nova_fixtures = nova_internals.fixtures()
integrated_helpers = nova_internals.integrated_helpers()

if sqlalchemy.__version__.startswith('2.1'):  # workaround 2
    raise ImportError('nova 34 functional fixtures need SQLAlchemy<2.1, '
                      'found %s' % sqlalchemy.__version__)


def _per_thread_cell_targeting():
    """Workaround 5: keep CellDatabases' "last targeted cell" per thread.

    Code that targets a cell gets a context carrying its db_connection; the
    fallback for untargeted access is the cell this thread targeted last,
    else the default cell -- no lock held while the caller runs.
    """
    import contextlib
    import threading

    local = threading.local()
    cls = nova_fixtures.CellDatabases

    @contextlib.contextmanager
    def _wrap_target_cell(self, context, cell_mapping):
        if cell_mapping:
            desired = self._ctxt_mgrs[cell_mapping.database_connection]
        else:
            desired = self._default_ctxt_mgr
        previous = getattr(local, 'ctxt_mgr', None)
        local.ctxt_mgr = desired
        try:
            with self._real_target_cell(context, cell_mapping) as cctxt:
                yield cctxt
        finally:
            local.ctxt_mgr = previous

    def _wrap_get_context_manager(self, context):
        connection = getattr(context, 'db_connection', None)
        if connection:
            return connection
        return getattr(local, 'ctxt_mgr', None) or self._default_ctxt_mgr

    cls._wrap_target_cell = _wrap_target_cell
    cls._wrap_get_context_manager = _wrap_get_context_manager


if THREADING_MODE == 'threading':
    _per_thread_cell_targeting()

class SimTuning:
    """Install/remove the harness speed-ups listed in the module docstring.

    Engines are created as soon as nova's Database fixtures start, so
    :meth:`install` must run before the stack's ``setUp``; :meth:`remove`
    puts the originals back (the process may start another stack).
    """

    POLL_WAIT = 0.25   # a listener re-checks its queues at least this often

    def __init__(self):
        self._undo = []

    def install(self):
        self._pool_sqlite()
        self._event_driven_fake_rpc()
        return self

    def remove(self):
        while self._undo:
            obj, name, value = self._undo.pop()
            setattr(obj, name, value)

    def _patch(self, obj, name, value):
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def _pool_sqlite(self):
        from oslo_db.sqlalchemy import engines
        from sqlalchemy import pool

        original = engines._init_connection_args

        def init_connection_args(url, engine_args, kw):
            original(url, engine_args, kw)
            if (url.get_backend_name() == 'sqlite'
                    and engine_args.get('poolclass') is pool.NullPool):
                engine_args['poolclass'] = pool.QueuePool
                engine_args['pool_size'] = 5
                engine_args['max_overflow'] = 50
                engine_args.setdefault('connect_args', {})[
                    'check_same_thread'] = False
        self._patch(engines, '_init_connection_args', init_connection_args)

        init_events = engines._init_events

        def init_events_async_commit(engine, **kw):
            if getattr(getattr(engine, 'dialect', None), 'name',
                       None) == 'sqlite':
                kw['sqlite_synchronous'] = False
            return init_events(engine, **kw)
        self._patch(engines, '_init_events', init_events_async_commit)

    def _event_driven_fake_rpc(self):
        from oslo_messaging._drivers import base as drv_base
        from oslo_messaging._drivers import impl_fake

        waiters = {}            # (exchange name, topic) -> {Event}
        guard = threading.Lock()
        deliver = impl_fake.FakeExchange.deliver_message

        def deliver_message(exchange, topic, *args, **kwargs):
            deliver(exchange, topic, *args, **kwargs)
            with guard:
                events = list(waiters.get((exchange.name, topic), ()))
            for event in events:
                event.set()

        poll_wait = self.POLL_WAIT

        @drv_base.batch_poll_helper
        def poll(listener, timeout=None):
            deadline = None if timeout is None else time.time() + timeout
            event = listener.__dict__.get('_ha_event')
            if event is None:
                event = listener._ha_event = threading.Event()
                with guard:
                    for target in listener._targets:
                        exchange = listener._exchange_manager.get_exchange(
                            target.exchange)
                        waiters.setdefault((exchange.name, target.topic),
                                           set()).add(event)
            while not listener._stopped.is_set():
                event.clear()
                for target in listener._targets:
                    exchange = listener._exchange_manager.get_exchange(
                        target.exchange)
                    ctxt, message, reply_q, requeue = exchange.poll(
                        target, listener._pool)
                    if message is not None:
                        return impl_fake.FakeIncomingMessage(
                            ctxt, message, reply_q, requeue)
                pause = poll_wait
                if deadline is not None:
                    pause = min(pause, deadline - time.time())
                    if pause < 0:
                        break
                event.wait(pause)
            return None

        stop = impl_fake.FakeListener.stop

        def listener_stop(listener):
            stop(listener)
            event = listener.__dict__.get('_ha_event')
            if event is not None:
                event.set()
                with guard:
                    for events in waiters.values():
                        events.discard(event)

        self._patch(impl_fake.FakeExchange, 'deliver_message',
                    deliver_message)
        self._patch(impl_fake.FakeListener, 'poll', poll)
        self._patch(impl_fake.FakeListener, 'stop', listener_stop)


# nova 34's default [filter_scheduler] enabled_filters (availability zones
# are enforced by placement, not by a filter).
NOVA_DEFAULT_FILTERS = (
    'ComputeFilter',
    'ComputeCapabilitiesFilter',
    'ImagePropertiesFilter',
    'ServerGroupAntiAffinityFilter',
    'ServerGroupAffinityFilter',
)
AVAILABLE_FILTERS = (
    'nova.scheduler.filters.all_filters',
    'nova_ha.scheduler.filters.all_filters',
)


def api_paste_config(hint_filter=True):
    """nova's api-paste.ini (workaround 1: where the nova wheel put it),
    with nova-ha's hint-validating filter added as an operator adds it
    (nova_ha/scheduler/api_filter.py) unless ``hint_filter`` is False."""
    if not hint_filter:
        return _wheel_api_paste_config()
    from nova_ha.scheduler import api_filter
    return api_filter.paste_config_with_filter(_wheel_api_paste_config())


def _wheel_api_paste_config():
    """Where the nova wheel put api-paste.ini (workaround 1)."""
    candidates = [os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
                  os.path.join(sys.base_prefix, 'etc', 'nova',
                               'api-paste.ini')]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise RuntimeError('api-paste.ini not found in %s; is the nova wheel '
                       'installed in this environment?' % candidates)


class NovaStackMixin:
    """Start a real Nova with fake-virt computes and nova-ha's filters.

    Class attributes a subclass may set:

    - ``COMPUTE_HOSTS``: host names of the compute services to start;
    - ``compute_driver``: nova fake virt driver (``fake.MediumFakeDriver``
      has room for move operations; ``fake.FakeLiveMigrateDriver`` keeps a
      live migration in progress until released);
    - ``ENABLED_FILTERS``: ``[filter_scheduler] enabled_filters``;
    - ``WEIGHT_CLASSES``: ``[filter_scheduler] weight_classes`` (None keeps
      nova's default);
    - ``HOST_WEIGHTS``: a {host: weight} dict makes the scheduler choose
      deterministically (nova's HostNameWeigher; replaces WEIGHT_CLASSES);
    - ``CAST_AS_CALL``: nova's shortcut that makes RPC casts synchronous.
      Keep it for simple placement tests; set False when an operation must
      return before it completes, as in a real cloud;
    - ``SERVICE_REPORT_INTERVAL`` / ``SERVICE_DOWN_TIME``: seconds; when set,
      computes report their state periodically and Nova marks a silent
      service down after SERVICE_DOWN_TIME, as in a real cloud.
    """

    COMPUTE_HOSTS = ('host1', 'host2', 'host3')
    compute_driver = 'fake.MediumFakeDriver'
    ENABLED_FILTERS = NOVA_DEFAULT_FILTERS
    WEIGHT_CLASSES = None
    HOST_WEIGHTS = None
    ADMIN_API = True
    microversion = 'latest'
    CAST_AS_CALL = True
    SERVICE_REPORT_INTERVAL = None
    SERVICE_DOWN_TIME = None
    SIM_TUNING = False
    #: nova-api refuses bad nova-ha hints (nova_ha/scheduler/api_filter.py);
    #: False: nova's own api-paste.ini, bad hints reach the scheduler
    API_HINT_FILTER = True

    def setUp(self):
        if self.SIM_TUNING:
            tuning = SimTuning().install()
            # Cleanups run last-in first-out: this one after the stack's.
            self.addCleanup(tuning.remove)
        super().setUp()
        if self.SIM_TUNING:
            # nova's StandardLogging fixture sets the root logger to DEBUG
            # so that every debug message is formatted (into a NullHandler)
            # and keeps INFO and above; format only what is kept.
            logging.getLogger().setLevel(logging.INFO)

    def _setup_services(self):
        self.flags(api_paste_config=api_paste_config(self.API_HINT_FILTER),
                   group='wsgi')
        if self.SIM_TUNING:
            self.flags(response_validation='ignore', group='api')
            self.flags(notification_format='unversioned',
                       group='notifications')
        self.flags(compute_driver=self.compute_driver)
        if self.SERVICE_REPORT_INTERVAL:
            self.flags(report_interval=self.SERVICE_REPORT_INTERVAL)
            # The first report normally waits 5 s; a simulated host that
            # has just booted should be "up" at once.
            self.useFixture(nova_fixtures.fixtures.MonkeyPatch(
                nova_internals.INITIAL_REPORTING_DELAY, 0))
        if self.SERVICE_DOWN_TIME:
            self.flags(service_down_time=self.SERVICE_DOWN_TIME)
        super()._setup_services()

    def _setup_scheduler_service(self):
        self.flags(available_filters=list(AVAILABLE_FILTERS),
                   enabled_filters=list(self.ENABLED_FILTERS),
                   group='filter_scheduler')
        if self.HOST_WEIGHTS:
            self.useFixture(
                nova_fixtures.HostNameWeigherFixture(dict(self.HOST_WEIGHTS)))
        elif self.WEIGHT_CLASSES:
            self.flags(weight_classes=list(self.WEIGHT_CLASSES),
                       group='filter_scheduler')
        return super()._setup_scheduler_service()

    def _setup_compute_service(self):
        for host in self.COMPUTE_HOSTS:
            self._start_compute(host)
        return self.computes[self.COMPUTE_HOSTS[0]] if self.COMPUTE_HOSTS \
            else None

    def _clear_attrs(self):
        # Workaround 3: pytest keeps the bound test method on the instance.
        keep = {k: v for k, v in self.__dict__.items()
                if k.startswith('test')}
        super()._clear_attrs()
        self.__dict__.update(keep)


class NovaStack(NovaStackMixin, nova_internals.integrated_test_base()):
    """The stack as a test case class (subclass it in tests)."""
