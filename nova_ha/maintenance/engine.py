"""The drain: a level-triggered reconcile loop over the journal and Nova.

One :meth:`Engine.reconcile` pass looks at what *is* (the journal's drain
and items, Nova's service, servers and migration records) and takes the
next idempotent step; running it again, or in a new process after a crash,
never repeats a move:

* the service is disabled with the reason ``maintenance: <reason>
  [nova-ha drain <id>]`` (the marker tells the optional trigger that this
  disable is a drain's own);
* every server on the host becomes a drain item (``waiting`` with a
  method, or ``blocked`` with the reason -- see
  :mod:`nova_ha.maintenance.policy`);
* a ``moving`` item is followed through its Nova migration record (the
  newest one of the instance from this host, created after the item went
  ``moving``): done -> ``moved``; a cold migration in VERIFY_RESIZE is
  confirmed; a failed live migration falls back to cold when the policy
  tolerates it, otherwise the item is ``blocked``. A ``moving`` item of
  which Nova has no trace (no migration record, no task state, still on
  the host) after ``move_start_timeout`` was never sent (crash between the
  journal write and the API call) and is sent again;
* while the drain is ``draining``, waiting items start -- never more than
  the group's limit of one server group's members moving at once, nor
  more than the global limit over every active drain. Claiming an item is
  a compare-and-set in the journal (``waiting`` -> ``moving``) *before*
  the API call, so two processes never send the same move;
* nothing moving and nothing waiting: ``ready`` (no server left), or
  ``incomplete`` (blocked instances, named with their reasons: the host
  stays disabled, nothing is forced); ``aborting`` ends as ``aborted``
  once the moves in flight have finished;
* ``ready`` with ``power_off``: the host is powered off (fencing layer)
  and ``powered_off_by_nova_ha`` recorded, so ``complete`` powers it on.
"""

import datetime
import logging
import time

from nova_ha.journal import api as journal_api
from nova_ha import nova_ops
from nova_ha.maintenance import notify
from nova_ha.maintenance import policy as policy_mod
from nova_ha import topology

LOG = logging.getLogger(__name__)

# Seconds to wait for Nova to record why a move failed before giving the
# bare migration status as the reason.
REASON_WAIT = 10.0

MARKER = '[nova-ha drain %d]'
MARKER_PREFIX = '[nova-ha drain '
TRIGGER_PREFIX = 'maintenance'
#: allowance between our clock and Nova's when matching migration records
CLOCK_SKEW = datetime.timedelta(seconds=60)
MAX_ATTEMPTS = 3

LIVE_DONE = ('completed',)
FAILED = ('error', 'failed', 'cancelled')
ACTIVE_DRAIN = journal_api.DRAIN_ACTIVE
SETTLED = ('ready', 'incomplete', 'aborted', 'completed')


class DrainError(Exception):
    """A command that cannot be done as asked (CLI exit code 2)."""


def _utc(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        dt = datetime.datetime.fromisoformat(str(value).replace('Z', ''))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt


def service_reason(drain):
    text = 'maintenance: %s' % (drain.reason or 'host drain')
    if text.lower().startswith('maintenance: maintenance'):
        text = drain.reason
    marker = ' ' + MARKER % drain.id
    return text[:255 - len(marker)] + marker


class Engine:
    """Drives drains. Holds no drain state itself: everything is read from
    the journal and Nova on each pass.

    :param nova: a :class:`nova_ha.nova_ops.NovaOps`
    :param journal: a :class:`nova_ha.journal.Journal`
    :param limits: :class:`nova_ha.maintenance.policy.Limits`
    :param notifier: an oslo.messaging Notifier (or None)
    :param power: a :class:`nova_ha.maintenance.power.Power` (or None)
    """

    def __init__(self, nova, journal, limits=None, notifier=None,
                 power=None, move_start_timeout=30.0, actor='nova-ha',
                 drain_on_disable=False, refresh_interval=30.0):
        self.nova = nova
        self.journal = journal
        self.limits = limits or policy_mod.Limits()
        self.notes = notify.Notifications(notifier)
        self.power = power
        self.move_start_timeout = move_start_timeout
        self.actor = actor
        self.drain_on_disable = drain_on_disable
        self.refresh_interval = refresh_interval
        # {drain id: (monotonic time, group limits)}: derived from Nova,
        # rebuilt by a new process on its first pass (never state).
        self._cache = {}
        # (monotonic time, Topology): the same model the filters and the
        # evacuator read from the aggregates; derived, never state.
        self._topology = None
        # (drain, instance, migration) -> when its failure was first seen
        # without a reason from Nova yet (a wait, never state).
        self._reason_wait = {}

    # -- commands ------------------------------------------------------------

    def _service(self, host):
        svc = self.nova.compute_service(host)
        if svc is None:
            known = sorted(s['host']
                           for s in self.nova.compute_service_dicts())
            raise DrainError('unknown host %r: no nova-compute service runs '
                             'there (compute hosts: %s)'
                             % (host, ', '.join(known) or 'none'))
        return svc

    def start(self, host, reason=None, power_off=False, by=None):
        """Start draining ``host``; returns the drain after a first pass."""
        if not host or not str(host).strip():
            raise DrainError('host: a compute host name is required')
        self._service(host)
        active = self.journal.get_active_drain(host)
        if active is not None:
            raise DrainError(
                'host %s already has an active drain (#%d, %s, started %s); '
                'see "nova-ha maintenance status %s"%s'
                % (host, active.id, active.state,
                   active.started_at.strftime('%Y-%m-%d %H:%M:%S'), host,
                   '' if active.state in ('draining', 'aborting') else
                   ', or end it with "nova-ha maintenance complete %s"'
                   % host))
        drain, created = self.journal.start_drain(
            host, reason=reason, power_off=power_off, by=by or self.actor)
        if not created:
            raise DrainError('host %s: another drain (#%d) started at the '
                             'same time' % (host, drain.id))
        LOG.info('drain #%d of %s started (%s)', drain.id, host,
                 reason or 'no reason given')
        try:
            self.journal.set_host_state(
                host, 'MAINTENANCE', detail='drain #%d' % drain.id,
                expected=(None, 'OK', 'DISABLED', 'MAINTENANCE'))
        except Exception:   # noqa: BLE001 -- informative only
            LOG.debug('could not record host state', exc_info=True)
        self._drain_pass(drain)          # plan, first moves
        self._send(notify.START, self.journal.get_drain(drain.id))
        drain, _ = self.reconcile(drain.id, notify_progress=False)
        return drain

    def _active(self, host):
        self._service(host) if host else None
        drain = self.journal.get_active_drain(host)
        if drain is None:
            raise DrainError('host %s has no active drain' % host)
        return drain

    def abort(self, host, by=None):
        """Stop starting moves; moves in flight finish. -> drain."""
        drain = self._active(host)
        if drain.state not in ('draining', 'aborting'):
            raise DrainError('drain #%d of %s is %s: nothing to abort; end '
                             'it with "nova-ha maintenance complete %s"'
                             % (drain.id, host, drain.state, host))
        self.journal.transition_drain(drain.id, 'draining', 'aborting',
                                      by=by or self.actor)
        drain, _ = self.reconcile(drain.id)
        return drain

    def complete(self, host, by=None):
        """End maintenance: power on if nova-ha powered the host off,
        re-enable the service, close the drain. -> drain."""
        drain = self.journal.get_active_drain(host)
        if drain is None:
            last = self.journal.list_drains(host=host, limit=1)
            if last and last[0].state == 'aborted':
                drain = last[0]
            else:
                self._service(host)
                raise DrainError('host %s has no drain to complete' % host)
        if drain.state in ('draining', 'aborting'):
            raise DrainError(
                'drain #%d of %s is still %s; wait for it to end, or abort '
                'it first ("nova-ha maintenance abort %s")'
                % (drain.id, host, drain.state, host))
        if drain.powered_off_by_nova_ha:
            ok, why = self._power().power_on(host)
            if not ok:
                raise RuntimeError('host %s: power on failed: %s; the drain '
                                   'stays %s' % (host, why, drain.state))
            self.journal.transition_drain(
                drain.id, drain.state, drain.state,
                powered_off_by_nova_ha=False,
                detail='powered on by nova-ha')
        svc = self._service(host)
        if svc['status'] == 'disabled':
            self.nova.enable_service_id(svc['id'])
        self.journal.transition_drain(drain.id, drain.state, 'completed',
                                      by=by or self.actor)
        try:
            self.journal.set_host_state(host, 'OK', detail='drain #%d '
                                        'completed' % drain.id,
                                        expected='MAINTENANCE')
        except Exception:   # noqa: BLE001
            LOG.debug('could not record host state', exc_info=True)
        drain = self.journal.get_drain(drain.id)
        self._send(notify.END, drain)
        return drain

    def _power(self):
        if self.power is None:
            from nova_ha.maintenance import power
            return power.NoPower('no power control configured')
        return self.power

    # -- the reconcile pass --------------------------------------------------

    def _group_moving(self):
        """({group: moves in flight}, total) over every active drain."""
        by_group, total = {}, 0
        for d in self.journal.list_drains(states=ACTIVE_DRAIN):
            for it in self.journal.list_drain_items(d.id, states='moving'):
                total += 1
                if it.server_group:
                    by_group[it.server_group] = by_group.get(
                        it.server_group, 0) + 1
        return by_group, total

    def reconcile(self, drain_id, notify_progress=True):
        """One pass. Returns (drain, [items that changed state])."""
        drain = self.journal.get_drain(drain_id)
        if drain is None or drain.state not in ACTIVE_DRAIN:
            return drain, []
        before_items = self.journal.list_drain_items(drain.id)
        before = {i.instance_uuid: i.state for i in before_items}
        if drain.state in ('draining', 'aborting', 'incomplete'):
            self._drain_pass(drain, before_items)
        drain = self._settle(self.journal.get_drain(drain.id))
        items = self.journal.list_drain_items(drain.id)
        changed = [i for i in items if before.get(i.instance_uuid)
                   != i.state]
        if changed and notify_progress and drain.state in ('draining',
                                                           'aborting'):
            self._send(notify.PROGRESS, drain, changed)
        return drain, changed

    def _ensure_disabled(self, drain):
        svc = self._service(drain.host)
        want = service_reason(drain)
        if (svc['status'] != 'disabled'
                or MARKER % drain.id not in (svc.get('disabled_reason')
                                             or '')):
            self.nova.disable_service(svc['id'], want)
            LOG.info('drain #%d: nova-compute on %s disabled: %s',
                     drain.id, drain.host, want)

    def _drain_pass(self, drain, items=None):
        # The service state and the instances' policies (metadata, flavor)
        # are re-read in full every refresh_interval, and whenever a new
        # instance shows up; in between a pass lists server ids only.
        now = time.monotonic()
        cache = self._cache.get(drain.id)
        fresh = cache is None or now - cache[0] >= self.refresh_interval
        if items is None:
            items = self.journal.list_drain_items(drain.id)
        items = {i.instance_uuid: i for i in items}
        if fresh:
            self._ensure_disabled(drain)
            servers = None
        else:
            servers = {sid: {'id': sid} for sid in
                       self.nova.server_ids_on(drain.host)}
            if set(servers) - set(items):
                servers = None
        if servers is None:
            servers = {s['id']: s for s in self.nova.servers_on(drain.host)}
            detailed = True
        else:
            detailed = False
        groups = {}
        if set(servers) - set(items):
            # only new instances need their server group looked up; the
            # others have it in the journal
            groups = self.nova.server_group_dicts()
        group_of = {sid: g['id'] for sid, g in groups.items()
                    if sid in servers}
        group_of.update({sid: i.server_group for sid, i in items.items()
                         if i.server_group})
        if detailed:
            glimits = policy_mod.group_limits(servers.values(), group_of,
                                              self.limits)
            self._cache[drain.id] = (now, glimits)
        else:
            glimits = cache[1]

        new = []
        for sid, s in servers.items():
            if sid in items:
                continue
            method, why = policy_mod.choose_method(s, self.limits)
            g = group_of.get(sid)
            if method and g and glimits[g][0] == 0:
                method, why = None, ('server group %s allows no move (%s)'
                                     % ((groups.get(sid) or {}).get(
                                         'name') or g,
                                        glimits[g][1]))
            new.append(dict(instance_uuid=sid, name=s.get('name'),
                            server_group=g, method=method,
                            state='waiting' if method else 'blocked',
                            reason=why, source_host=drain.host))
            if not method:
                LOG.warning('drain #%d: %s (%s) blocked: %s', drain.id,
                            s.get('name'), sid, why)
        if new:
            self.journal.add_drain_items(drain.id, new)
        if detailed and self._retighten(drain, items, servers, new):
            new = True
        if new:
            items = {i.instance_uuid: i for i in
                     self.journal.list_drain_items(drain.id)}

        migs = None
        for item in items.values():
            if item.state == 'moving':
                on_host = servers.get(item.instance_uuid)
                if on_host is not None and on_host.get(
                        'OS-EXT-STS:task_state'):
                    continue    # still on its way (nothing to do yet)
                if migs is None:
                    # one call for every move of this drain
                    migs = {}
                    for m in self.nova.migrations_from(
                            drain.host, since=_utc(drain.started_at)
                            - CLOCK_SKEW):
                        migs.setdefault(m.get('instance_uuid'), []).append(m)
                self._follow(drain, item, migs.get(item.instance_uuid, []))
            elif item.state in ('waiting', 'blocked') and \
                    item.instance_uuid not in servers:
                srv = self.nova.server_dict(item.instance_uuid)
                if srv is None:
                    why = 'deleted during the drain'
                elif srv.get('OS-EXT-SRV-ATTR:host') != drain.host:
                    why = 'moved off the host outside the drain'
                else:
                    continue
                self.journal.transition_drain_item(
                    drain.id, item.instance_uuid, item.state, 'moved',
                    reason=why, dest_host=(srv or {}).get(
                        'OS-EXT-SRV-ATTR:host'))

        if self.journal.get_drain(drain.id).state != 'draining':
            return
        current = self.journal.list_drain_items(drain.id)
        waiting = [i for i in current if i.state == 'waiting'
                   and i.instance_uuid in servers]
        if not waiting:
            return
        moving_by_group, total = self._group_moving()
        remaining = {}
        for i in current:
            if i.state in ('waiting', 'moving') and i.server_group:
                remaining[i.server_group] = remaining.get(
                    i.server_group, 0) + 1
        by_uuid = {i.instance_uuid: i for i in waiting}
        cands = policy_mod.order_waiting(
            [policy_mod.Candidate(i.instance_uuid, i.server_group)
             for i in waiting], remaining)
        limit_of = {i.server_group: self.limits.
                    default_max_concurrent_moves_per_group
                    for i in waiting if i.server_group}
        limit_of.update({g: n for g, (n, _) in glimits.items()})
        for c in policy_mod.pick(cands, moving_by_group, total, limit_of,
                                 self.limits.max_concurrent_moves):
            self._start_move(drain, by_uuid[c.instance_uuid],
                             servers[c.instance_uuid])

    def _retighten(self, drain, items, servers, new):
        """Apply policy changes (a VNFM set ha_pinned, forbade live
        migration...) to instances still waiting. Only ever tightens: a
        waiting instance may become blocked or go from live to cold, never
        the other way (a live->cold fallback stays cold)."""
        changed = False
        for sid, item in items.items():
            if item.state != 'waiting' or sid not in servers:
                continue
            method, why = policy_mod.choose_method(servers[sid], self.limits)
            if method is None:
                changed |= self.journal.transition_drain_item(
                    drain.id, sid, 'waiting', 'blocked', reason=why)
                LOG.warning('drain #%d: %s (%s) blocked: %s', drain.id,
                            item.name, sid, why)
            elif method == policy_mod.COLD and \
                    item.method == policy_mod.LIVE:
                changed |= self.journal.update_drain_item(
                    drain.id, sid, 'waiting', method=method, reason=why)
        return changed

    # -- moves ---------------------------------------------------------------

    def _start_move(self, drain, item, server):
        if not self.journal.transition_drain_item(
                drain.id, item.instance_uuid, 'waiting', 'moving'):
            return   # someone else took it
        LOG.info('drain #%d: %s migration of %s (%s) from %s', drain.id,
                 item.method, item.name, item.instance_uuid, drain.host)
        try:
            if item.method == policy_mod.LIVE:
                self.nova.live_migrate(item.instance_uuid)
            else:
                self.nova.cold_migrate(item.instance_uuid)
        except nova_ops.NotFound:
            self._item(drain, item, 'moved', reason='deleted during the '
                       'drain')
        except nova_ops.Conflict as exc:
            # busy (another task in progress, locked...): try later
            if item.attempts + 1 >= MAX_ATTEMPTS:
                self._item(drain, item, 'blocked', reason='Nova refused '
                           'the %s migration %d times: %s' % (
                               item.method, item.attempts + 1, _msg(exc)))
            else:
                self._item(drain, item, 'waiting', reason='Nova refused '
                           'the %s migration (%s); will retry'
                           % (item.method, _msg(exc)))
        except nova_ops.ClientException as exc:
            self._failed(drain, item, server, _msg(exc), None)

    def _item(self, drain, item, state, **fields):
        # every caller holds a 'moving' item
        ok = self.journal.transition_drain_item(
            drain.id, item.instance_uuid, 'moving', state, **fields)
        if ok and state == 'blocked':
            LOG.warning('drain #%d: %s (%s) blocked: %s', drain.id,
                        item.name, item.instance_uuid, fields.get('reason'))
        return ok

    def _failed(self, drain, item, server, error, migration_id):
        """A move Nova refused or that ended in error."""
        fields = {}
        if migration_id is not None:
            fields['migration_id'] = migration_id
        if item.method == policy_mod.LIVE:
            server = self.nova.server_dict(item.instance_uuid) or server
            method, why = policy_mod.fallback_after_live_failure(
                server, self.limits)
            if method == policy_mod.COLD:
                self.journal.transition_drain_item(
                    drain.id, item.instance_uuid, 'moving', 'waiting',
                    method=policy_mod.COLD,
                    reason='live migration failed (%s); its policy '
                           'tolerates a cold migration' % error, **fields)
                return
            self._item(drain, item, 'blocked',
                       reason='live migration failed (%s); not '
                              'cold-migrated: %s' % (error, why), **fields)
            return
        self._item(drain, item, 'blocked',
                   reason='cold migration failed: %s' % error, **fields)

    def _current_migration(self, drain, item, migrations):
        since = _utc(item.updated_at) - CLOCK_SKEW
        want = ('live-migration' if item.method == policy_mod.LIVE
                else 'migration')
        for m in migrations:
            if m.get('source_compute') != drain.host:
                continue
            if m.get('migration_type') != want:
                continue
            if item.migration_id is not None and m['id'] <= item.migration_id:
                continue
            created = _utc(m.get('created_at'))
            if created is not None and created < since:
                continue
            return m
        return None

    def _follow(self, drain, item, migrations):
        """Follow one moving item. ``migrations``: the instance's migration
        records from the drained host, newest first.

        Decided from the migration record alone where it is final (nova
        sets ``completed``/``confirmed`` after the instance's host has
        changed); the server is read only when a move failed or when no
        record has appeared after ``move_start_timeout``.
        """
        mig = self._current_migration(drain, item, migrations)
        if mig is None:
            age = (journal_api.utcnow()
                   - _utc(item.updated_at)).total_seconds()
            if age < self.move_start_timeout:
                return          # sent; nova has not recorded it yet
            srv = self.nova.server_dict(item.instance_uuid)
            if srv is None:
                self._item(drain, item, 'moved', reason='deleted during '
                           'the drain')
                return
            host = srv.get('OS-EXT-SRV-ATTR:host')
            if srv.get('OS-EXT-STS:task_state'):
                return          # nova is working on it
            if host != drain.host and srv['status'] != 'VERIFY_RESIZE':
                self._item(drain, item, 'moved', dest_host=host)
            elif host == drain.host:
                LOG.warning('drain #%d: %s: no trace in Nova of the %s '
                            'migration started %.0f s ago: sending it '
                            'again', drain.id, item.name, item.method, age)
                self._item(drain, item, 'waiting',
                           reason='the move never reached Nova (drain '
                                  'interrupted); sent again')
            return
        status = mig['status']
        if item.method == policy_mod.LIVE and status in LIVE_DONE:
            self._item(drain, item, 'moved', migration_id=mig['id'],
                       dest_host=mig.get('dest_compute'))
        elif item.method == policy_mod.COLD and status == 'finished':
            try:
                self.nova.confirm_resize(item.instance_uuid)
                LOG.info('drain #%d: cold migration of %s confirmed',
                         drain.id, item.name)
            except (nova_ops.Conflict, nova_ops.BadRequest) as exc:
                # not in VERIFY_RESIZE yet, or confirming: next pass
                LOG.debug('confirm %s: %s', item.name, exc)
        elif item.method == policy_mod.COLD and status == 'confirmed':
            self._item(drain, item, 'moved', migration_id=mig['id'],
                       dest_host=mig.get('dest_compute'))
        elif status == 'reverted':
            self._item(drain, item, 'blocked', migration_id=mig['id'],
                       reason='the cold migration was reverted (by '
                              'someone else)')
        elif status in FAILED:
            srv = self.nova.server_dict(item.instance_uuid)
            if srv is None:
                self._item(drain, item, 'moved', reason='deleted during '
                           'the drain')
            elif not srv.get('OS-EXT-STS:task_state'):
                err = self.nova.action_error(item.instance_uuid, mig)
                if err is None:
                    # Nova marks the migration failed before it finishes
                    # the action event that holds the reason (e.g. "No
                    # valid host"): give it a few passes to record it.
                    key = (drain.id, item.instance_uuid, mig['id'])
                    first = self._reason_wait.setdefault(key,
                                                         time.monotonic())
                    if time.monotonic() - first < REASON_WAIT:
                        return
                    err = 'migration %s %s' % (mig['id'], status)
                self._failed(drain, item, srv, err, mig['id'])

    # -- end of a drain ------------------------------------------------------

    def _settle(self, drain):
        counts = self.journal.drain_progress(drain.id)
        if drain.state in ('draining', 'aborting', 'incomplete') and \
                counts['moving'] == 0:
            if drain.state == 'aborting':
                if self.journal.transition_drain(
                        drain.id, 'aborting', 'aborted',
                        detail=self._detail(drain, counts)):
                    drain = self.journal.get_drain(drain.id)
                    LOG.info('drain #%d of %s aborted', drain.id, drain.host)
                    self._send(notify.END, drain)
                return self.journal.get_drain(drain.id)
            if counts['waiting'] == 0:
                target = 'incomplete' if counts['blocked'] else 'ready'
                if target == 'ready' and self.nova.servers_on(drain.host):
                    return drain   # something new: next pass plans it
                if target != drain.state and self.journal.transition_drain(
                        drain.id, drain.state, target,
                        detail=self._detail(drain, counts)):
                    drain = self.journal.get_drain(drain.id)
                    LOG.info('drain #%d of %s %s: %s', drain.id, drain.host,
                             target, drain.detail)
                    self._send(notify.END, drain)
        drain = self.journal.get_drain(drain.id)
        if drain.state == 'ready' and drain.power_off and \
                not drain.powered_off_by_nova_ha:
            ok, why = self._power().power_off(drain.host)
            if ok:
                self.journal.transition_drain(
                    drain.id, 'ready', 'ready', powered_off_by_nova_ha=True,
                    detail='host empty; powered off by nova-ha')
                LOG.info('drain #%d: %s powered off', drain.id, drain.host)
            else:
                self.journal.transition_drain(
                    drain.id, 'ready', 'ready',
                    detail='host empty; power off FAILED: %s' % why)
                LOG.error('drain #%d: power off of %s failed: %s',
                          drain.id, drain.host, why)
            drain = self.journal.get_drain(drain.id)
        return drain

    def _detail(self, drain, counts):
        blocked = self.journal.list_drain_items(drain.id, states='blocked')
        text = 'moved %d, waiting %d, blocked %d' % (
            counts['moved'], counts['waiting'], counts['blocked'])
        if blocked:
            text += '; blocked: ' + '; '.join(
                '%s (%s): %s' % (i.name, i.instance_uuid, i.reason)
                for i in blocked)
        return text

    def location(self, host):
        """The host's rack, power domain, zone and SAL (topology model),
        or None if Nova's aggregates cannot be read now."""
        now = time.monotonic()
        if self._topology is None or \
                now - self._topology[0] > self.refresh_interval:
            try:
                topo = topology.Topology.from_aggregates(
                    self.nova.aggregate_dicts(),
                    hosts=[s['host']
                           for s in self.nova.compute_service_dicts()],
                    levels=topology.configured_levels())
            except Exception as exc:   # noqa: BLE001 -- informative only
                LOG.warning('maintenance: cannot read the topology (%s)', exc)
                return None
            self._topology = (now, topo)
        return self._topology[1].location(host)

    def _send(self, event_type, drain, items=None):
        if items is None:
            items = self.journal.list_drain_items(drain.id)
        self.notes.send(event_type, notify.payload(
            drain, self.journal.drain_progress(drain.id), items,
            location=self.location(drain.host)))

    # -- loops ---------------------------------------------------------------

    def wait(self, drain_id, interval=2.0, timeout=3600.0, on_pass=None,
             until=SETTLED, sleep=time.sleep):
        """Reconcile until the drain reaches a state in ``until``.

        ``on_pass(drain, changed)`` is called after every pass.
        """
        deadline = time.monotonic() + timeout
        while True:
            drain, changed = self.reconcile(drain_id)
            if on_pass is not None:
                on_pass(drain, changed)
            if drain is None or drain.state in until:
                if drain is not None and drain.state == 'ready' and \
                        drain.power_off and not drain.powered_off_by_nova_ha:
                    return drain   # power step failed; reported in detail
                return drain
            if time.monotonic() >= deadline:
                return drain
            sleep(interval)

    def reconcile_all(self):
        """One pass over every active drain (daemon mode), after starting
        the drains the service-disable trigger asks for."""
        if self.drain_on_disable:
            self.trigger()
        out = []
        for d in self.journal.list_drains(states=ACTIVE_DRAIN):
            out.append(self.reconcile(d.id))
        return out

    def trigger(self):
        """Start a drain for each nova-compute service an operator disabled
        with a reason beginning "maintenance" (and not by a drain)."""
        started = []
        for svc in self.nova.compute_service_dicts():
            reason = (svc.get('disabled_reason') or '').strip()
            if svc.get('status') != 'disabled' or \
                    not reason.lower().startswith(TRIGGER_PREFIX) or \
                    MARKER_PREFIX in reason:
                continue
            if self.journal.get_active_drain(svc['host']) is not None:
                continue
            try:
                started.append(self.start(svc['host'], reason=reason,
                                          by='service-disable'))
            except DrainError as exc:
                LOG.warning('maintenance trigger: %s', exc)
        return started


def _msg(exc):
    return getattr(exc, 'message', None) or str(exc)
