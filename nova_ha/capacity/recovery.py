"""Reserved capacity for the evacuator: check before fencing.

The evacuator calls :meth:`RecoveryCapacity.before_fencing` once per
reconcile pass with its open recoveries (one hook in
nova_ha/evacuator/engine.py). For each recovery whose host is not fenced
yet and was not checked yet, the solver (nova_ha.capacity.solver, the same
as ``nova-ha capacity check`` and FailoverCapacityFilter) re-places every
``ha:recovery=auto`` instance of every host under recovery on the
remaining enabled hosts, in the evacuator's order (SAL1 first, higher
``ha:recovery_priority`` first). If some cannot be placed -- the policy is
already violated, e.g. by a second failure -- a CRITICAL ``CAPACITY``
alarm names them, with the reason (no room, rule, SAL), before the host
is fenced. Nothing is held back: the evacuator fences and recovers what
fits, highest priority first: the stranded instances are the last in its
order, and with several hosts under recovery the hook hands the engine its
open recoveries ordered by their best pending instance (:meth:`order`), so
evacuation slots go by priority across hosts. Evacuations in flight at the
same time are scheduled by nova in parallel: which of two racing instances
gets the last room is then nova's choice (``[evacuator]
max_concurrent_evacuations`` = 1 makes the order strict).

Active only when ``[capacity] tolerate`` has a policy. The cloud is read
from Nova and placement in the background every ``[evacuator]
host_refresh_interval`` (never while a recovery waits), so the check costs
one solve on the last snapshot: a boot of the last seconds may be missing
from it.
"""

import concurrent.futures
import logging

from nova_ha.capacity import collect
from nova_ha.capacity import model
from nova_ha.capacity import solver
from nova_ha.journal import api as journal_api
from nova_ha import topology

LOG = logging.getLogger(__name__)

ALARM = 'CAPACITY'


def api_source(nova, conf):
    """A source reading the Nova API through the evacuator's novaclient
    session (its endpoint; microversion 2.100 for the scheduler hints)
    and placement (``[capacity] placement_endpoint`` or the catalog)."""
    sess = nova.client.session
    compute_get = collect.compute_getter(
        sess, endpoint=nova.client.get_endpoint())
    placement_get = collect.placement_getter(sess, conf, {
        'service_type': 'placement', 'interface': conf.nova.endpoint_type,
        'region_name': conf.nova.region_name})
    levels = topology.configured_levels(conf)
    return lambda: collect.from_api(compute_get, placement_get, levels)


def before_fencing(evacuator, recs):
    """The evacuator's hook (one call per reconcile pass, engine.py):
    returns the open recoveries in the order to advance them."""
    rc = evacuator.__dict__.get('_capacity')
    if rc is None:
        rc = evacuator.__dict__['_capacity'] = RecoveryCapacity(evacuator)
    rc.before_fencing(recs)
    return rc.order(recs)


class RecoveryCapacity:

    def __init__(self, evacuator, source=None):
        self.ev = evacuator
        self.conf = evacuator.conf
        self.source = source
        self.cloud = None
        self.read_at = None
        self._future = None
        self._pool = None
        self._checked = set()
        self._policies = None

    def enabled(self):
        if self._policies is None:
            try:
                self._policies = model.load_policies(self.conf)
            except (model.PolicyError, topology.TopologyError) as exc:
                LOG.error('capacity check before fencing disabled: %s', exc)
                self._policies = []
        return bool(self._policies)

    def refresh(self):
        """Start a background read when due; adopt a finished one."""
        fut = self._future
        if fut is not None and fut.done():
            self._future = None
            try:
                self.cloud = fut.result()
            except Exception as exc:   # noqa: BLE001 -- keep the last one
                LOG.warning('capacity: cannot read the cloud from Nova/'
                            'placement (%s); keeping the last snapshot', exc)
        now = self.ev.clock()
        if self._future is None and (
                self.read_at is None or now - self.read_at
                >= self.conf.evacuator.host_refresh_interval):
            if self.source is None:
                self.source = api_source(self.ev.ops.nova, self.conf)
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix='capacity')
            self.read_at = now
            self._future = self._pool.submit(self.source)

    def before_fencing(self, recs):
        """The hook: alarm for recoveries not fenced yet whose instances
        cannot all be re-placed. Never raises (logged)."""
        try:
            if not self.enabled():
                return
            self.refresh()
            todo = [r for r in recs if r.fenced_at is None
                    and r.id not in self._checked]
            if not todo:
                return
            if self.cloud is None and self._future is not None:
                # First snapshot still on its way: wait for it briefly
                # rather than fence unchecked.
                try:
                    self.cloud = self._future.result(timeout=2.0)
                    self._future = None
                except Exception:   # noqa: BLE001
                    pass
            if self.cloud is None:
                LOG.warning('capacity: no snapshot of the cloud yet; '
                            'recoveries %s not checked before fencing',
                            ', '.join(str(r.id) for r in todo))
                return
            self._check(recs, todo)
        except journal_api.StaleEpoch:
            raise                 # deposed: the evacuator stands down
        except Exception:   # noqa: BLE001 -- never block a recovery
            LOG.exception('capacity check before fencing failed')

    def order(self, recs):
        """Several hosts under recovery: the recovery holding the pending
        instance first in the evacuator's order (SAL1, then higher
        ha:recovery_priority) goes first, so evacuation slots go to the
        highest priority across hosts, not host by host (the instances
        the plan strands are the last). One journal read, only with two
        or more open recoveries and a policy configured."""
        recs = list(recs)
        if len(recs) < 2 or not self.enabled():
            return recs
        try:
            pending = self.ev.journal.list_recovery_items(states=['pending'])
        except journal_api.StaleEpoch:
            raise
        except Exception:   # noqa: BLE001 -- keep the engine's order
            LOG.exception('capacity: cannot read the pending items')
            return recs
        rank = {}
        for n, item in enumerate(pending):
            rank.setdefault(item.recovery_id, n)
        return sorted(recs, key=lambda r: rank.get(r.id, len(pending)))

    def plan(self, hosts):
        """The solver's Result for the failure of ``hosts`` (every
        ha:recovery=auto instance on them)."""
        failed = frozenset(hosts)
        pol = model.Policy(None, len(failed), topology.HOST,
                           text='recovery')
        scen = model.Scenario(pol, failed, 'hosts %s'
                              % ', '.join(sorted(failed)))
        opts = solver.options(self.conf)
        opts.pop('max_scenarios', None)
        return solver.solve(self.cloud, scen, **opts)

    def _check(self, recs, todo):
        result = self.plan({r.host for r in recs})
        for rec in todo:
            self._checked.add(rec.id)
            mine = [s for s in result.stranded if s.instance.host == rec.host]
            total = sum(1 for u, h in result.placed.items()
                        if self.cloud.instances[u].host == rec.host) + \
                len(mine)
            if not mine:
                LOG.info('capacity: the %d instance(s) of %s can be '
                         're-placed', total, rec.host)
                continue
            names = ', '.join('%s (%s)' % (s.instance.name, s.instance.uuid)
                              for s in mine)
            self.ev.alarm(
                ALARM, 'CRITICAL',
                'failover capacity exhausted: %d of the %d instance(s) of '
                '%s cannot be re-placed (hosts under recovery: %s): %s. '
                'Fencing and recovering what fits, highest priority first. '
                'Reasons: %s' % (
                    len(mine), total, rec.host,
                    ', '.join(sorted({r.host for r in recs})), names,
                    '; '.join('%s: %s' % (s.instance.name, s.reason)
                              for s in mine)),
                host=rec.host, recovery_id=rec.id,
                key='%s|%s|recovery-%s' % (ALARM, rec.host, rec.id),
                extra={'stranded': [s.as_dict() for s in mine]})

    def stop(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
