"""The evacuator's reconcile loop.

Level-triggered, like a Kubernetes controller: every pass looks at what is
true now -- heartbeats per plane, the journal, Nova's migration records --
and takes the next step for each host. Every step is idempotent and its
result lives in the journal, so a pass re-run after a crash (kill -9, or a
standby taking over) continues where the last one stopped and repeats
nothing that already happened.

Per host, from the heartbeats (nova_ha.heartbeat.receiver) and the host's
SAL confirmation window:

- every plane silent past the window  -> HOST_DOWN: open a recovery;
- some planes silent                  -> PARTITION: alarm, no evacuation
  (unless ``[evacuator] partition_recovery`` and both management and
  storage are silent);
- planes fine, nova-compute dead      -> SERVICE_DOWN: alarm (the agent's
  watchdog restarts it), no evacuation;
- otherwise OK (alarms of the episode are cleared).

Per open recovery:

1. fence: power off through the BMC and read it off. Not confirmed ->
   never evacuate; CRITICAL alarm; retry every fence_retry_interval; the
   only other way on is an operator's confirmation (journalled);
2. force nova-compute down and disable it with a reason naming nova-ha and
   the time;
3. evacuate every instance with no target host (scheduler re-applies hints
   and server-group policy): SAL1 first, then ``ha:recovery_priority``
   (higher first); ``ha:recovery=none`` instances are skipped and listed;
   at most ``max_concurrent_evacuations`` at once and never two members of
   one server group at once;
4. follow each evacuation by its migration record to done or error; retry
   an error up to max_evacuation_attempts; no valid host -> alarm naming
   the instance and the scheduler's reason;
5. close the recovery; the host stays forced down and disabled until an
   operator runs ``nova-ha host enable HOST``.

High availability (nova_ha.evacuator.leader): with a LeaderElector, only
the leader reconciles; ``self.epoch`` is its journal Epoch, carried by
every journal write. A standby keeps receiving heartbeats and does nothing
else. On StaleEpoch (a newer leader claimed) or a lapsed lease the
evacuator stops at once, forgets its in-memory state and stands by; the
next leader resumes every open recovery from the journal and Nova's
migration records. Right before each outside action (BMC power-off, force
down, evacuate) the evacuator checks it still leads (``_assert_leader``);
each is preceded by a journal write under the epoch (fencing attempt, item
-> evacuating), so an action of a deposed leader is refused by the journal
or, for a call already in flight, repeated idempotently (power-off) or
refused by Nova (a second evacuate of a rebuilding instance).
"""

import concurrent.futures
import datetime
import logging
import threading
import time

from nova_ha.evacuator import nova_ops
from nova_ha.heartbeat import receiver as hb
from nova_ha.journal import api as journal_api
from nova_ha import topology as topology_mod

LOG = logging.getLogger(__name__)

OK = 'OK'
HOST_DOWN = 'HOST_DOWN'
SERVICE_DOWN = 'SERVICE_DOWN'
PARTITION = 'PARTITION'
SUSPECT = 'SUSPECT'

# An 'evacuating' item inherited from a previous leader with neither a
# migration record nor a task state this long after the takeover: that
# leader's evacuate call never reached Nova (Nova records the migration and
# sets task_state inside the API call), so re-issue it.
INHERITED_REISSUE_AFTER = 3.0
# Same for an item this leader started itself (its call may be slow).
REISSUE_AFTER = 10.0
# An unchanged PARTITION or SERVICE_DOWN is written to the journal (host
# state, alarm refreshed) on entry and then at most this often: a
# level-triggered loop must not write every host every pass. A new term
# writes at once (its memory of what it wrote starts empty).
ALARM_REFRESH = 30.0

_UNSET = object()

# Journal host states that belong to a recovery in progress.
RECOVERY_HOST_STATES = ('HOST_DOWN', 'FENCING', 'FENCED', 'FENCE_FAILED',
                        'GUARDED', 'FORCED_DOWN', 'EVACUATING')


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class Evacuator:
    """One evacuator. ``reconcile()`` is one pass; ``run()`` loops."""

    def __init__(self, conf, nova, fencer, journal, receiver,
                 notifier=None, clock=time.monotonic, leader=None,
                 metrics=None):
        self.conf = conf
        self.opts = conf.evacuator
        self.ops = nova_ops.NovaOps(nova)
        self.fencer = fencer
        self.journal = journal
        self.receiver = receiver
        self.notifier = notifier
        self.clock = clock
        self.started_at = None
        self.topology = None
        self.services = {}
        self._hosts_read_at = None
        self._refresh = None          # Future of a background host read
        self._refresh_started = None
        self._refresh_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix='nova-hosts')
        self._fencing = {}            # host -> Future
        self._listed = set()          # recovery ids whose items are listed
        self._last_nova_poll = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix='fence')
        self._api_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.evacuator.max_concurrent_evacuations,
            thread_name_prefix='nova-api')
        self._lock = threading.Lock()
        self.epoch = None
        self.leader = leader
        self.metrics = metrics        # nova_ha.evacuator.metrics.Metrics
        self.term_started = None      # wall time this evacuator took over
        self.takeovers = 0
        self._conditions = {}          # host -> condition, this pass
        self._rec_host = {}            # recovery id -> host (notifications)
        self._guard_reason = None      # why fencing is held back, or None
        self._pass = {}                # memo of one reconcile pass
        self._steady = {}              # host -> ((condition, detail), at)
        self._unknown = set()          # heard from, not in Nova's list
        self._domains = None           # {level: {domain: [hosts]}}
        self._domains_of = None        # the hosts _domains was made of
        self._windows = {}             # host -> confirmation window
        # Issue 17: nova_ha.evacuator.instance_ha.InstanceHA, or None.
        self.instance_ha = None

    # -- set-up ------------------------------------------------------------
    def check_config(self):
        """Refuse to start with a configuration that cannot work."""
        self.refresh_hosts(force=True)
        missing = self.fencer.inventory.missing(sorted(self.services))
        if missing:
            raise ConfigError(
                'fencing inventory %s has no entry for compute host(s) %s: '
                'nova-ha never evacuates a host it cannot fence'
                % (getattr(self.fencer.inventory, 'source', '?'),
                   ', '.join(missing)))

    def start(self):
        if self._hosts_read_at is None:
            self.check_config()
        self.started_at = self.clock()
        return self

    def stop(self):
        if self.instance_ha is not None:     # issue 17
            self.instance_ha.stop()
        self._refresh_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._api_pool.shutdown(wait=True, cancel_futures=True)

    # -- hosts and topology ------------------------------------------------
    def refresh_hosts(self, force=False):
        """Nova's compute services and aggregates (the topology).

        ``force`` (start-up, the self-check before fencing): read now.
        Otherwise every ``host_refresh_interval``, in the background: a
        slow Nova API must never delay detection, so the reconcile pass
        keeps the last view until the new one has arrived.
        """
        now = self.clock()
        pending = self._refresh
        if pending is not None and pending.done():
            self._refresh = None
            try:
                self._apply_hosts(*pending.result())
            except Exception as exc:   # noqa: BLE001 -- keep the last view
                LOG.warning('cannot refresh the compute hosts from Nova '
                            '(%s); keeping the view of %.0f s ago', exc,
                            now - self._hosts_read_at)
        if force or self._hosts_read_at is None:
            self._apply_hosts(*self._read_hosts())
            return
        last = max(self._hosts_read_at, self._refresh_started or 0.0)
        if self._refresh is None and \
                now - last >= self.opts.host_refresh_interval:
            self._refresh_started = now
            self._refresh = self._refresh_pool.submit(self._read_hosts)

    def _read_hosts(self):
        at = self.clock()
        return self.ops.compute_services(), self.ops.aggregates(), at

    def _apply_hosts(self, services, aggregates, at):
        self.services = services
        self.topology = topology_mod.Topology.from_aggregates(
            aggregates, hosts=sorted(services),
            levels=topology_mod.configured_levels(self.conf))
        self._domains = None
        self._windows = {}
        self._hosts_read_at = at

    def sal_of(self, host):
        info = self.topology.host(host) if self.topology else None
        return getattr(info, 'sal', None)

    def window_for(self, host):
        """The host's confirmation window (its SAL's), kept until the
        next topology read: asked for every host twice a pass."""
        window = self._windows.get(host)
        if window is None:
            sal = self.sal_of(host)
            window = self._windows[host] = {
                1: self.opts.sal1_confirmation_window,
                2: self.opts.sal2_confirmation_window}.get(
                    sal, self.opts.sal3_confirmation_window)
        return window

    # The location keys alarms and notifications carry.
    LOCATION_KEYS = ('rack', 'power_domain', 'availability_zone')

    def location(self, host):
        loc = self.topology.location(host) if self.topology else {}
        return {k: loc.get(k) for k in self.LOCATION_KEYS}

    # -- detection ---------------------------------------------------------
    def classify(self, host, now=None, seen=None):
        """The host's condition; ``seen`` is its (heartbeat state, silent
        planes) from a receiver snapshot of this pass, or None to ask."""
        now = self.clock() if now is None else now
        window = self.window_for(host)
        if seen is None:
            state = self.receiver.heartbeat_state(host, now=now,
                                                  window=window)
            silent = None
        else:
            state, silent = seen
        if state in (hb.UNKNOWN, hb.SILENT, hb.PARTITION) and (
                now - self.started_at < max(self.opts.startup_grace, window)):
            # Just started: agents' planes may not all have reached us yet.
            return SUSPECT
        if state == hb.UNKNOWN:
            return HOST_DOWN
        if state == hb.SILENT:
            return HOST_DOWN
        if state == hb.PARTITION:
            if silent is None:
                silent = self.receiver.silent_planes(host, now=now,
                                                     window=window)
            if (self.opts.partition_recovery
                    and {'management', 'storage'} <= set(silent)):
                return HOST_DOWN
            return PARTITION
        if state == hb.SERVICE_DOWN:
            return SERVICE_DOWN
        return OK

    def failure_time(self, host, now):
        """Wall-clock time of the host's last heartbeat on any plane."""
        seen = [self.receiver.last_seen(host, p)
                for p in self.receiver.planes]
        seen = [s for s in seen if s is not None]
        if not seen:
            return utcnow()
        return utcnow() - datetime.timedelta(seconds=now - max(seen))

    # -- alarms --------------------------------------------------------------
    def alarm(self, type_, severity, message, host=None, extra=None, **kw):
        """Raise (or refresh) an alarm; ``extra``: more payload keys of
        its notification."""
        loc = self.location(host) if host else {}
        alarm, created = self.journal.raise_alarm(
            type_, severity, message, host=host, epoch=self.epoch,
            **loc, **kw)
        if created and self.metrics is not None:
            self.metrics.observe_alarm(type_, severity)
        if created:
            LOG.log(logging.CRITICAL if severity == 'CRITICAL'
                    else logging.WARNING, 'alarm %s %s: %s', severity,
                    type_, message)
            self.notify('nova_ha.alarm.%s' % type_.lower(), severity, {
                'alarm_id': alarm.id, 'type': type_, 'severity': severity,
                'host': host, 'location': loc, 'message': message,
                'time': alarm.created_at.isoformat(),
                **{k: v for k, v in kw.items() if v is not None},
                **(extra or {})})
        return alarm

    def notify(self, event_type, severity, payload):
        if self.notifier is not None:
            try:
                self.notifier.emit(event_type, severity, payload)
            except Exception:
                LOG.exception('could not emit %s', event_type)

    def step(self, recovery_id, step, detail=None, duration=None):
        if self.journal.record_step(recovery_id, step, detail=detail,
                                    duration=duration, epoch=self.epoch):
            self.notify_step(recovery_id, step, detail, duration)

    def notify_step(self, recovery_id, step, detail=None, duration=None,
                    host=None):
        """``nova_ha.recovery.<step>`` (doc/notifications.md)."""
        kind = step.split(':')[0]
        if self.metrics is not None:
            self.metrics.observe_step(kind, duration, detail)
        if self.notifier is None:
            return
        if host is None:
            host = self._rec_host.get(recovery_id)
        if host is None:
            rec = self.journal.get_recovery(recovery_id)
            host = rec.host if rec else None
            self._rec_host[recovery_id] = host
        instance = step.split(':', 1)[1].split('#')[0] if ':' in step \
            else None
        self.notify('nova_ha.recovery.%s' % kind, 'INFO', {
            'recovery_id': recovery_id, 'step': step, 'type': kind,
            'severity': 'INFO', 'host': host,
            'location': self.location(host) if host else {},
            'instance_uuid': instance, 'detail': detail,
            'duration': duration, 'time': utcnow().isoformat()})

    # -- the loop ------------------------------------------------------------
    def run(self, stop_event):
        gen = self.receiver.generation
        while not stop_event.is_set():
            if self.acting():
                try:
                    self.reconcile()
                except (journal_api.StaleEpoch, NotLeader) as exc:
                    self.stand_down(str(exc))
                except Exception:
                    LOG.exception('reconcile pass failed; retrying')
                    stop_event.wait(1.0)
            gen = self.receiver.wait_for_change(gen, timeout=self.opts.tick)

    # -- leadership ----------------------------------------------------------
    def acting(self):
        """True if this evacuator may act now (leader, or no election)."""
        if self.leader is None:
            return True
        epoch = self.leader.epoch if self.leader.is_leader else None
        if epoch is None:
            if self.epoch is not None:
                self._forget('leadership lost (lease expired or lock lost)')
            return False
        if epoch != self.epoch:
            self._forget(None)
            self.epoch = epoch
            self.term_started = utcnow()
            self.takeovers += 1
            LOG.warning('leading with journal epoch %s: resuming open '
                        'recoveries', epoch.epoch)
        return True

    def stand_down(self, reason):
        """Stop acting now (StaleEpoch, lost lease) and stand by."""
        LOG.warning('standing down: %s', reason)
        self._forget(reason)
        if self.leader is not None:
            self.leader.step_down(reason)

    def _forget(self, reason):
        if reason:
            LOG.warning('no longer acting (epoch %s): %s',
                        getattr(self.epoch, 'epoch', None), reason)
        self.epoch = None
        self.term_started = None
        self._fencing = {}     # futures of the old term finish on their own
        self._listed = set()
        self._last_nova_poll = 0.0
        self._steady = {}
        self._pass = {}

    def _assert_leader(self, epoch=None):
        """Raise NotLeader unless we still lead with ``epoch``."""
        if self.leader is None:
            return
        epoch = self.epoch if epoch is None else epoch
        if not self.leader.is_leader or self.leader.epoch != epoch \
                or epoch is None:
            raise NotLeader('not the leader with epoch %s any more'
                            % getattr(epoch, 'epoch', epoch))

    def reconcile(self):
        """One pass. Its cost per compute host is one receiver lookup
        (a single snapshot for all hosts) and no journal or Nova call while
        the host is well: the host states come in one journal read, Nova's
        service list and aggregates every host_refresh_interval, the
        migration records of every evacuation in flight in one call per
        nova_poll_interval. Journal writes happen on changes only (an
        unchanged PARTITION / SERVICE_DOWN re-raises its alarm every
        ALARM_REFRESH seconds)."""
        now = self.clock()
        self.refresh_hosts()
        self._pass = {}
        self._conditions = {}
        hosts = sorted(self.services)
        self._note_unknown()
        states = self.journal.host_state_map()
        seen = self.receiver.snapshot(hosts, now=now,
                                      window_for=self.window_for)
        for host in hosts:
            self.observe(host, now, current=states.get(host),
                         seen=seen.get(host))
        self._guard_reason = self.mass_failure(states)
        recs = self.journal.list_recoveries(states=['open'])
        self._poll_evacuations(recs, now)
        self.advance(*recs)
        self.watch_recovered(states, now)
        if self.instance_ha is not None:     # issue 17: instance failures
            self.instance_ha.reconcile(now, seen)

    def _note_unknown(self):
        """Hosts that send valid heartbeats but have no nova-compute
        service in Nova (not yet registered, or deleted with their agent
        still running) are not nova-ha's to recover: nothing is fenced or
        evacuated for them, and they count in no guard. Logged once per
        appearance."""
        unknown = set(self.receiver.hosts()) - set(self.services)
        for host in sorted(unknown - self._unknown):
            LOG.warning('heartbeats from %s, which Nova does not list as a '
                        'nova-compute host: not monitored (recovered only '
                        'once Nova lists it)', host)
        self._unknown = unknown

    # -- guards --------------------------------------------------------------
    def mass_failure(self, states=None):
        """Why fencing must be held back now, or None.

        More than [guard] max_failed_fraction of all hosts, or of one rack
        or AZ (with at least domain_min_hosts hosts), look failed at once,
        or more than max_failures_in_window distinct hosts failed within
        failure_window: this evacuator is more likely cut off than that
        much of the cloud dead. ``states``: {host: HostStateBrief} of this
        pass (read from the journal when not given).
        """
        g = self.conf.guard
        conds = self._conditions
        hosts = sorted(self.services) or sorted(conds)
        if not hosts:
            return None
        failed = {h for h in hosts if conds.get(h) == HOST_DOWN}
        if not failed:
            return None
        if states is None:
            states = self.journal.host_state_map(states=['RECOVERED'])
        failed = {h for h in failed if getattr(states.get(h), 'state', None)
                  != 'RECOVERED'}
        if not failed:
            return None
        if len(failed) > g.max_failed_fraction * len(hosts):
            return ('%d of %d compute hosts (%.0f%%) look failed at once '
                    '(guard: more than %.0f%%)' % (
                        len(failed), len(hosts),
                        100.0 * len(failed) / len(hosts),
                        100.0 * g.max_failed_fraction))
        domains = self._domains
        if domains is None or set(hosts) != self._domains_of:
            domains = {}
            for level in ('rack', 'availability_zone'):
                members = domains[level] = {}
                for h in hosts:
                    dom = self.location(h).get(level)
                    if dom is not None:
                        members.setdefault(dom, []).append(h)
            self._domains, self._domains_of = domains, set(hosts)
        for level in ('rack', 'availability_zone'):
            for dom, hs in sorted(domains[level].items()):
                if len(hs) < g.domain_min_hosts:
                    continue
                down = [h for h in hs if h in failed]
                if len(down) > g.max_failed_fraction_per_domain * len(hs):
                    return ('%d of %d hosts of %s %s look failed at once '
                            '(guard: more than %.0f%%)' % (
                                len(down), len(hs), level, dom,
                                100.0 * g.max_failed_fraction_per_domain))
        since = utcnow() - datetime.timedelta(seconds=g.failure_window)
        recent = {r.host for r in self.journal.list_recoveries(since=since)
                  if r.reason == HOST_DOWN} | failed
        if len(recent) > g.max_failures_in_window:
            return ('%d hosts failed within %.0f s (guard: more than %d)'
                    % (len(recent), g.failure_window,
                       g.max_failures_in_window))
        return None

    def self_check(self):
        """Why this evacuator must not fence now, or None (asked once per
        pass, however many hosts are about to be fenced)."""
        if not self.conf.guard.self_check:
            return None
        if 'self_check' not in self._pass:
            self._pass['self_check'] = self._self_check()
        return self._pass['self_check']

    def _self_check(self):
        if self.leader is not None and not self.leader.coordinator_ok:
            return 'coordinator unreachable'
        if not self.receiver.healthy():
            return 'heartbeat receiver not running'
        status = self.receiver.plane_status()
        if status and not any(alive for _, alive in status.values()):
            return ('no heartbeat plane receives from any host: this '
                    'evacuator is likely cut off')
        try:
            self.refresh_hosts(force=True)
        except Exception as exc:
            return 'Nova API unreachable: %s' % exc
        return None

    def _held_back(self, rec):
        """True (with alarm, state GUARDED) if fencing must wait."""
        host = rec.host
        reason = self.self_check()
        if reason:
            self.alarm('SELF_CHECK', 'CRITICAL',
                       'not fencing %s: self-check failed: %s'
                       % (host, reason), host=None, recovery_id=rec.id,
                       key='SELF_CHECK')
            return True
        self.journal.clear_alarms(key='SELF_CHECK', by=self.opts.name,
                                  epoch=self.epoch)
        state = self.journal.get_host_state(host)
        if state is not None and state.guard_lifted_at is not None:
            # Lifted by an operator (until this recovery closes).
            return False
        if state is not None and state.state == 'GUARDED':
            # Once held back, held until an operator lifts the guard or the
            # host answers again (the recovery then closes as flapping),
            # even if fewer hosts look failed now.
            return True
        reason = self._guard_reason
        if not reason:
            return False
        self.journal.set_host_state(host, 'GUARDED', detail=reason,
                                    recovery_id=rec.id, epoch=self.epoch)
        self.alarm('MASS_FAILURE_GUARD', 'CRITICAL',
                   'not fencing %s: %s; this evacuator is more likely cut '
                   'off than those hosts dead. After checking, an operator '
                   'can run: nova-ha host lift-guard %s --operator NAME'
                   % (host, reason, host), host=host, recovery_id=rec.id)
        return True

    def _unchanged(self, host, condition, detail, current, now):
        """True if this term already wrote ``condition`` (and its alarm)
        for ``host`` less than ALARM_REFRESH seconds ago and the journal
        still says so: nothing to write this pass."""
        last = self._steady.get(host)
        if (current == condition and last is not None
                and last[0] == (condition, detail)
                and now - last[1] < ALARM_REFRESH):
            return True
        self._steady[host] = ((condition, detail), now)
        return False

    def observe(self, host, now, current=_UNSET, seen=None):
        """Turn what the heartbeats say into host state, alarms, recovery.

        ``current``: the host's HostState or HostStateBrief (None: no row)
        and ``seen`` its
        receiver snapshot, both read once per pass for every host; either
        is looked up when not given."""
        condition = self.classify(host, now, seen)
        self._conditions[host] = condition
        if current is _UNSET:
            current = self.journal.get_host_state(host)
        current = current.state if current else None
        if current in RECOVERY_HOST_STATES or current in ('RECOVERED',
                                                          'MAINTENANCE'):
            # A recovery owns the host, it awaits `host enable`, or a
            # maintenance drain owns it (and may have powered it off).
            return
        if condition == HOST_DOWN:
            rec, created = self.journal.open_recovery(
                host, reason=HOST_DOWN, detected_at=utcnow(),
                detail='every heartbeat plane silent for more than %.2f s'
                % self.window_for(host), epoch=self.epoch)
            self.journal.set_host_state(host, 'HOST_DOWN',
                                        recovery_id=rec.id, epoch=self.epoch)
            if created:
                # open_recovery recorded the 'detected' step itself; the
                # last heartbeat is when the host failed, what downtime
                # (nova-ha report) is measured from.
                last = self.failure_time(host, now)
                self.journal.record_step(rec.id, 'last_heartbeat', at=last,
                                         epoch=self.epoch)
                self.notify_step(rec.id, 'detected', host=host,
                                 detail='last heartbeat %s' % last.isoformat(),
                                 duration=max(0.0, (
                                     utcnow() - last).total_seconds()))
            # Raised even when a previous leader opened the recovery and
            # died before its alarm (raise_alarm is idempotent per key).
            self.alarm('HOST_DOWN', 'CRITICAL',
                       'compute host %s is down (all heartbeat planes '
                       'silent); recovering' % host, host=host,
                       recovery_id=rec.id)
        elif condition == PARTITION:
            silent = seen[1] if seen is not None else \
                self.receiver.silent_planes(host, now=now,
                                            window=self.window_for(host))
            if self._unchanged(host, PARTITION, tuple(silent), current,
                               now):
                return
            self.journal.set_host_state(host, 'PARTITION',
                                        detail='silent: %s' % ','.join(silent),
                                        epoch=self.epoch)
            self.alarm('PARTITION', 'MAJOR',
                       'compute host %s unreachable on plane(s) %s but alive '
                       'on others; not evacuating' % (host, ', '.join(silent)),
                       host=host)
        elif condition == SERVICE_DOWN:
            if self._unchanged(host, SERVICE_DOWN, None, current, now):
                return
            self.journal.set_host_state(host, 'SERVICE_DOWN',
                                        epoch=self.epoch)
            self.alarm('SERVICE_DOWN', 'MAJOR',
                       'nova-compute on %s is not running; the host is alive '
                       '(the agent restarts it); not evacuating' % host,
                       host=host)
        elif condition == OK:
            if current not in (None, 'OK', 'MAINTENANCE', 'DISABLED'):
                self.journal.set_host_state(host, 'OK', epoch=self.epoch)
                self.journal.clear_alarms(host=host, type='PARTITION',
                                          by=self.opts.name, epoch=self.epoch)
                self.journal.clear_alarms(host=host, type='SERVICE_DOWN',
                                          by=self.opts.name, epoch=self.epoch)
                if current == 'SERVICE_DOWN':
                    self.alarm('PROCESS_RESTARTED', 'INFO',
                               'nova-compute on %s runs again (restarted by '
                               'the agent\'s watchdog)' % host, host=host)
            elif current is None:
                self.journal.set_host_state(host, 'OK', epoch=self.epoch)

    # -- recovery ------------------------------------------------------------
    def advance(self, *recs):
        """Move open recoveries on: fence, then force down and list, then
        evacuate and follow. The Nova calls that prepare a host (force
        down, list its instances) are made for all fenced hosts side by
        side: when a rack fails, one host's slow Nova round trips must not
        hold back the next host's evacuations."""
        fenced = [r for r in (self._fenced(rec) for rec in recs) if r]
        todo = [r for r in fenced
                if r.forced_down_at is None or r.id not in self._listed]
        if todo:
            self._assert_leader()
        prepared = [(r, self._api_pool.submit(self._prepare_in_nova, r))
                    for r in todo]
        failed = set()
        for rec, call in prepared:
            try:
                self._record_prepared(rec, *call.result())
            except (journal_api.StaleEpoch, NotLeader):
                raise
            except Exception:
                LOG.exception('preparing %s for evacuation failed; '
                              'retrying', rec.host)
                failed.add(rec.id)
        for rec in fenced:
            if rec.id not in failed:
                self._evacuate(rec)

    def _fenced(self, rec):
        """The recovery, re-read once its host is fenced; else None."""
        if rec.fenced_at is None:
            if not self._fence_step(rec):
                return None
            rec = self.journal.get_recovery(rec.id) or rec
        if self._answers(rec.host, since=rec.fenced_at):
            # Powered off (confirmed) and running again: powered on by
            # someone, or the BMC misread. Never a second fence; the
            # recovery goes on (nova-compute forced down keeps it out).
            self.returned(rec.host, rec.id, self._phase(rec))
        return rec

    def _prepare_in_nova(self, rec):
        """Nova calls only (run in the API pool): force the host's
        nova-compute down if not yet, list its instances if not yet."""
        forced = None
        if rec.forced_down_at is None:
            reason = 'nova-ha: host failed, fenced and evacuated (%s)' % (
                utcnow().strftime('%Y-%m-%dT%H:%M:%SZ'))
            t0 = time.monotonic()
            self.ops.fence_service(rec.host, reason,
                                   service=self.services.get(rec.host))
            forced = (reason, time.monotonic() - t0)
        items = None
        if rec.id not in self._listed:
            items = self.ops.instances_on(rec.host)
        return forced, items

    def _record_prepared(self, rec, forced, items):
        host = rec.host
        if forced is not None:
            reason, took = forced
            self.step(rec.id, 'forced_down', duration=took, detail=reason)
            self.journal.set_host_state(host, 'FORCED_DOWN',
                                        recovery_id=rec.id, epoch=self.epoch)
        if items is not None:
            self.journal.add_recovery_items(rec.id, items, epoch=self.epoch)
            self._listed.add(rec.id)
            if self.journal.record_step(rec.id, 'listed', epoch=self.epoch,
                                        detail='%d instance(s)' % len(items)):
                self.notify_step(rec.id, 'listed', host=host,
                                 detail='%d instance(s)' % len(items))
                skipped = [i['name'] for i in items
                           if i['state'] == 'skipped']
                if skipped:
                    self.alarm('EVACUATION_FAILED', 'INFO',
                               'not recovering %s on %s (ha:recovery=none)'
                               % (', '.join(skipped), host), host=host,
                               recovery_id=rec.id)
            self.journal.set_host_state(host, 'EVACUATING',
                                        recovery_id=rec.id, epoch=self.epoch)

    def _evacuate(self, rec):
        host = rec.host
        self._follow(rec)
        self._start_evacuations(rec)
        remaining = self.journal.list_recovery_items(
            rec.id, states=['pending', 'evacuating'])
        if not remaining:
            bad = self.journal.list_recovery_items(
                rec.id, states=['error', 'no_valid_host'])
            state = 'incomplete' if bad else 'done'
            if self.journal.close_recovery(rec.id, state, epoch=self.epoch,
                                           detail='%d instance(s) not '
                                           'recovered' % len(bad)
                                           if bad else None):
                self.journal.reset_guard(host, epoch=self.epoch)
                self.journal.clear_alarms(host=host,
                                          type='MASS_FAILURE_GUARD',
                                          by=self.opts.name, epoch=self.epoch)
                self.step(rec.id, 'finished', detail=state,
                          duration=(utcnow() - rec.detected_at)
                          .total_seconds())
                self.journal.set_host_state(host, 'RECOVERED',
                                            recovery_id=rec.id,
                                            epoch=self.epoch)
                LOG.info('recovery %s of %s %s', rec.id, host, state)

    def _fence_step(self, rec):
        """True once the host is fenced (or confirmed by an operator)."""
        host = rec.host
        confirmed = [a for a in self.journal.list_fencing_attempts(host=host)
                     if a.outcome == 'CONFIRMED_BY_OPERATOR'
                     and a.started_at >= rec.detected_at]
        if confirmed:
            self.step(rec.id, 'fenced', detail='confirmed by operator %s'
                      % confirmed[0].operator)
            self.journal.set_host_state(host, 'FENCED', recovery_id=rec.id,
                                        epoch=self.epoch)
            return True
        last = self.journal.last_fencing_attempt(host)
        future = self._fencing.get(host)
        if (future is None and last is not None
                and last.outcome == 'FENCED'
                and last.started_at >= rec.detected_at):
            # Fenced by a previous leader (or term) that died before it
            # recorded the step: carry on, no second power-off.
            self.step(rec.id, 'fenced', duration=last.duration,
                      detail='%s: %s' % (last.driver, last.reason))
            self.journal.set_host_state(host, 'FENCED', recovery_id=rec.id,
                                        epoch=self.epoch)
            return True
        answers = self._answers(host)
        if future is not None:
            if not future.done():
                if answers:
                    # The power-off call cannot be taken back: let it
                    # finish; its outcome decides.
                    self.returned(host, rec.id, 'fencing')
                return False
            del self._fencing[host]
            result = future.result()
            if not result.fenced and answers:
                self._close_returned(rec, 'fence not confirmed (%s: %s)'
                                     % (result.outcome, result.reason))
                return False
            if result.fenced and answers:
                self.returned(host, rec.id, 'fencing')
            if result.fenced:
                self.step(rec.id, 'fenced', duration=result.elapsed,
                          detail='%s: %s' % (result.driver, result.reason))
                self.journal.set_host_state(host, 'FENCED',
                                            recovery_id=rec.id,
                                            epoch=self.epoch)
                self.journal.clear_alarms(host=host, type='FENCE_FAILED',
                                          by=self.opts.name, epoch=self.epoch)
                return True
            self.journal.set_host_state(host, 'FENCE_FAILED',
                                        detail=result.reason,
                                        recovery_id=rec.id, epoch=self.epoch)
            self.alarm('FENCE_FAILED', 'CRITICAL',
                       'cannot confirm %s is powered off (%s: %s); NOT '
                       'evacuating. Retrying; an operator who has checked '
                       'the host by hand can run: nova-ha fence confirm %s '
                       '--operator NAME' % (host, result.outcome,
                                            result.reason, host),
                       host=host, recovery_id=rec.id)
            return False
        # Flapping: the host answers again before anything was fenced.
        if last is None or last.started_at < rec.detected_at:
            if answers:
                self.journal.close_recovery(
                    rec.id, 'failed', epoch=self.epoch,
                    detail='host came back before fencing; nothing done')
                self.journal.set_host_state(host, 'OK', epoch=self.epoch)
                self.alarm('FLAPPING', 'WARNING',
                           'compute host %s looked down, then answered '
                           'again before fencing; not recovering' % host,
                           host=host, recovery_id=rec.id,
                           extra={'phase': 'detected'})
                return False
        elif answers and last.outcome != 'FENCED':
            # A fence of this recovery failed (FENCE_FAILED, retrying) or
            # was left unfinished by a leader that died, and the host is
            # running: do not fence it again.
            if last.outcome is None:
                self.journal.finish_fencing(
                    last.id, 'INTERRUPTED', epoch=self.epoch,
                    reason='host answered again on every plane')
            self._close_returned(rec, 'fence %s' % (
                'not finished' if last.outcome is None else
                'not confirmed (%s: %s)' % (last.outcome, last.reason)))
            return False
        if (last is not None and last.finished_at is not None
                and last.started_at >= rec.detected_at
                and (utcnow() - last.finished_at).total_seconds()
                < self.opts.fence_retry_interval):
            return False
        if (last is None or last.finished_at is not None) \
                and self._held_back(rec):
            return False
        self.journal.set_host_state(host, 'FENCING', recovery_id=rec.id,
                                    epoch=self.epoch)
        self._fencing[host] = self._pool.submit(self._fence, host, rec.id,
                                                self.epoch)
        return False

    def _fence(self, host, recovery_id, epoch=None):
        entry = self.fencer.inventory.lookup(host)
        # At most one attempt in flight per host: one left by a leader that
        # died mid-fence is returned here and carried on (power-off is
        # idempotent); finish_fencing's first outcome wins.
        attempt = self.journal.start_fencing(host, entry.driver,
                                             recovery_id=recovery_id,
                                             epoch=epoch)
        self._assert_leader(epoch)
        try:
            result = self.fencer.fence(host)
        except Exception as exc:       # a driver bug must not kill the loop
            LOG.exception('fencing %s raised', host)
            self.journal.finish_fencing(attempt.id, 'FAILED',
                                        reason=str(exc), epoch=epoch)
            raise
        self.journal.finish_fencing(attempt.id, str(result.outcome),
                                    reason=result.reason, epoch=epoch)
        return result

    def _start_evacuations(self, rec):
        pending = self.journal.list_recovery_items(rec.id, states=['pending'])
        if not pending:
            return
        # Read once per pass, then kept up to date by this pass's starts
        # (items other recoveries finish in this pass free their slots
        # from the next pass on: never more than the limit in flight).
        if 'in_flight' not in self._pass:
            evacuating = self.journal.list_recovery_items(
                states=['evacuating'])
            self._pass['in_flight'] = [len(evacuating)]
            self._pass['busy_groups'] = {i.server_group for i in evacuating
                                         if i.server_group}
        in_flight = self._pass['in_flight'][0]
        busy_groups = self._pass['busy_groups']
        started = []
        for item in pending:
            if in_flight >= self.opts.max_concurrent_evacuations:
                break
            if item.server_group and item.server_group in busy_groups:
                continue
            if not self.journal.transition_item(
                    rec.id, item.instance_uuid, ('pending',), 'evacuating',
                    epoch=self.epoch):
                continue
            in_flight += 1
            if item.server_group:
                busy_groups.add(item.server_group)
            started.append(item)
        self._pass['in_flight'][0] = in_flight
        # The API calls return at once (nova casts the rebuild): issue them
        # side by side rather than one round trip after another.
        if started:
            self._assert_leader()
        calls = [(item, self._api_pool.submit(self.ops.evacuate,
                                              item.instance_uuid))
                 for item in started]
        for item, call in calls:
            attempt = item.attempts + 1
            try:
                call.result()
            except Exception as exc:
                LOG.warning('evacuate %s (%s) refused: %s', item.name,
                            item.instance_uuid, exc)
                if not self._already_moved(rec, item):
                    self._retry_or_fail(rec, item, attempt, str(exc))
                continue
            self.step(rec.id, 'evacuate:%s%s' % (
                item.instance_uuid, '#%d' % attempt if attempt > 1 else ''),
                detail=item.name)

    def _already_moved(self, rec, item):
        """Nova refused an evacuation: if the instance runs elsewhere
        already (an earlier attempt that finished after we gave up on it
        -- Nova refuses with "Compute service of DEST is still in use"),
        the item is done, not failed."""
        try:
            server = self.ops.server(item.instance_uuid)
        except Exception:    # noqa: BLE001 -- judged on the next attempt
            return False
        host_now = getattr(server, 'OS-EXT-SRV-ATTR:host', None) \
            if server is not None else None
        if (host_now is None or host_now == rec.host
                or server.status == 'ERROR'
                or getattr(server, 'OS-EXT-STS:task_state', None)):
            return False
        if self.journal.transition_item(
                rec.id, item.instance_uuid, ('evacuating',), 'done',
                dest_host=host_now, epoch=self.epoch):
            self.step(rec.id, 'active:%s' % item.instance_uuid,
                      detail='%s on %s (%s; moved by an earlier attempt)'
                      % (item.name, host_now, server.status))
        return True

    def _retry_or_fail(self, rec, item, attempt, error):
        if attempt < self.opts.max_evacuation_attempts:
            self.journal.transition_item(rec.id, item.instance_uuid,
                                         ('evacuating',), 'pending',
                                         last_error=error, epoch=self.epoch)
            return
        self.journal.transition_item(rec.id, item.instance_uuid,
                                     ('evacuating',), 'error',
                                     last_error=error, epoch=self.epoch)
        self.alarm('EVACUATION_FAILED', 'CRITICAL',
                   'instance %s (%s) from %s not recovered after %d '
                   'attempt(s): %s' % (item.name, item.instance_uuid,
                                       rec.host, attempt, error),
                   host=rec.host, instance_uuid=item.instance_uuid,
                   recovery_id=rec.id)

    def _poll_evacuations(self, recs, now):
        """Every nova_poll_interval, the items in flight of every open
        recovery and the migration records of all of them: one journal
        read and ONE Nova call however many hosts are being recovered (a
        server is fetched only when its evacuation has ended or looks
        stuck; polling Nova harder slows the evacuations themselves)."""
        self._pass['migrations'] = None
        if not recs or now - self._last_nova_poll \
                < self.opts.nova_poll_interval:
            return
        by_rec = {}
        for item in self.journal.list_recovery_items(states=['evacuating']):
            by_rec.setdefault(item.recovery_id, []).append(item)
        recs = [r for r in recs if r.id in by_rec]
        if not recs:
            return
        self._last_nova_poll = now
        since = min(r.detected_at for r in recs) - datetime.timedelta(
            seconds=2)
        migrations = self.ops.evacuations_since(since,
                                                {r.host for r in recs})
        self._pass['migrations'] = {
            r.id: (by_rec[r.id], migrations.get(r.host, {}), r.detected_at
                   - datetime.timedelta(seconds=2)) for r in recs}

    def _follow(self, rec):
        polled = (self._pass.get('migrations') or {}).get(rec.id)
        if polled is None:
            return
        items, migrations, since = polled
        for item in items:
            mig = migrations.get(item.instance_uuid)
            if mig is not None and nova_ops.created_before(mig, since):
                mig = None      # an earlier recovery's evacuation
            age = ((utcnow() - item.started_at).total_seconds()
                   if item.started_at else 0.0)
            if (mig is not None and age <= self.opts.evacuation_timeout
                    and mig.status not in nova_ops.MIGRATION_DONE
                    and mig.status not in nova_ops.MIGRATION_FAILED):
                continue
            if self._evacuated(rec, item, mig, age):
                continue
            self._follow_one(rec, item, mig,
                             self.ops.server(item.instance_uuid))

    def _evacuated(self, rec, item, mig, age):
        """Nova marks an evacuation's migration "done" only once the
        destination has rebuilt the instance and saved it as its own
        (ResourceTracker.finish_evacuation): its record is enough. No GET
        of the server: a burst of evacuations ends together, and a GET
        each, one after another, put seconds between Nova finishing and
        the journal saying so (and loaded the API Nova was busy with)."""
        dest = getattr(mig, 'dest_compute', None) if mig is not None \
            else None
        if (mig is None or mig.status not in nova_ops.MIGRATION_DONE
                or not dest or dest == rec.host):
            return False
        if self.journal.transition_item(
                rec.id, item.instance_uuid, ('evacuating',), 'done',
                migration_id=int(mig.id), dest_host=dest, epoch=self.epoch):
            self.step(rec.id, 'active:%s' % item.instance_uuid,
                      detail='%s on %s (migration %s done)' % (
                          item.name, dest, mig.id),
                      duration=age)
        return True

    def _follow_one(self, rec, item, mig, server):
        started = item.started_at
        if server is None:
            self.journal.transition_item(
                rec.id, item.instance_uuid, ('evacuating',), 'skipped',
                last_error='instance deleted during recovery',
                epoch=self.epoch)
            return
        host_now = getattr(server, 'OS-EXT-SRV-ATTR:host', None)
        age = (utcnow() - started).total_seconds() if started else 0.0
        if mig is None:
            # The evacuate call may never have reached nova (crash between
            # the journal write and the API call): re-issue it.
            wait = REISSUE_AFTER
            if (self.term_started is not None and started is not None
                    and started < self.term_started):
                wait = min(wait, INHERITED_REISSUE_AFTER + (
                    self.term_started - started).total_seconds())
            if host_now == rec.host and age > wait and not getattr(
                    server, 'OS-EXT-STS:task_state', None):
                self.journal.transition_item(
                    rec.id, item.instance_uuid, ('evacuating',), 'pending',
                    last_error='no evacuation record; retrying',
                    epoch=self.epoch)
            return
        if mig.status in nova_ops.MIGRATION_DONE:
            if host_now and host_now != rec.host and server.status != 'ERROR':
                if self.journal.transition_item(
                        rec.id, item.instance_uuid, ('evacuating',), 'done',
                        migration_id=int(mig.id), dest_host=host_now,
                        epoch=self.epoch):
                    self.step(rec.id, 'active:%s' % item.instance_uuid,
                              detail='%s on %s (%s)' % (
                                  item.name, host_now, server.status),
                              duration=age)
            return
        if mig.status in nova_ops.MIGRATION_FAILED or \
                server.status == 'ERROR':
            fault = nova_ops.server_fault(server)
            if 'No valid host' in fault:
                self.journal.transition_item(
                    rec.id, item.instance_uuid, ('evacuating',),
                    'no_valid_host', last_error=fault,
                    migration_id=int(mig.id), epoch=self.epoch)
                self.alarm('NO_VALID_HOST', 'CRITICAL',
                           'instance %s (%s) from %s has no valid host: the '
                           'scheduler\'s placement rules (server group, '
                           'anti-affinity level, SAL) admit no healthy host. '
                           '%s' % (item.name, item.instance_uuid, rec.host,
                                   fault),
                           host=rec.host, instance_uuid=item.instance_uuid,
                           recovery_id=rec.id)
                return
            self._retry_or_fail(rec, item, item.attempts,
                                fault or 'migration %s' % mig.status)
            return
        if age > self.opts.evacuation_timeout:
            self._retry_or_fail(rec, item, item.attempts,
                                'evacuation still %s after %.0f s'
                                % (mig.status, age))

    # -- flapping ----------------------------------------------------------------
    def _answers(self, host, since=None):
        """True if every heartbeat plane of ``host`` is heard again (the
        host runs; its nova-compute may be down) -- and, with ``since`` (a
        wall-clock time), each plane delivered a heartbeat after it."""
        cond = self._conditions.get(host)
        if cond is None:
            cond = self.classify(host)
        if cond not in (OK, SERVICE_DOWN):
            return False
        if since is None:
            return True
        after = self.clock() - (utcnow() - since).total_seconds()
        for plane in self.receiver.planes:
            seen = self.receiver.last_seen(host, plane)
            if seen is None or seen <= after:
                return False
        return True

    @staticmethod
    def _phase(rec):
        if rec.fenced_at is None:
            return 'fencing'
        if rec.forced_down_at is None:
            return 'fenced'
        return 'evacuating'

    def returned(self, host, recovery_id, phase):
        """MAJOR ``FLAPPING`` alarm: ``host`` answers again on every plane
        during (or after) its recovery ``recovery_id``. One alarm per
        recovery, worded for the phase it was first seen in (a later phase,
        or a new leader, does not rewrite it); nothing is fenced again."""
        now = self.clock()
        last = self._steady.get(('returned', host))
        if last is not None and last[0] == recovery_id \
                and now - last[1] < ALARM_REFRESH:
            return
        self._steady[('returned', host)] = (recovery_id, now)
        key = 'FLAPPING|%s|recovery-%s' % (host, recovery_id)
        if any(a.key == key for a in self.journal.list_alarms(
                host=host, types=['FLAPPING'])):
            return
        if phase == 'fencing':
            what = ('while it was being fenced; the power-off in flight '
                    'decides: confirmed -> the recovery goes on, not '
                    'confirmed -> the recovery stops. No second fence')
        elif phase == 'recovered':
            what = ('after it was fenced and its instances recovered: it '
                    'was powered on (by someone, or its BMC misread the '
                    'power state). Not fencing it again; its nova-compute '
                    'stays forced down and disabled until an operator runs '
                    'nova-ha host enable %s' % host)
        else:
            what = ('after it was powered off (confirmed), during the '
                    '%s phase: powered on by someone, or its BMC misread '
                    'the power state. Not fencing it again; the recovery '
                    'goes on (nova-compute forced down and disabled)'
                    % phase)
        self.alarm('FLAPPING', 'MAJOR',
                   'compute host %s answers again on every heartbeat plane '
                   '%s' % (host, what), host=host, recovery_id=recovery_id,
                   key=key, extra={'phase': phase})

    def _close_returned(self, rec, why):
        """The host answers again and was never fenced in this recovery:
        stop it (nothing was forced down or evacuated), no further fence."""
        host = rec.host
        if not self.journal.close_recovery(
                rec.id, 'failed', epoch=self.epoch,
                detail='host answered again during fencing (%s); not '
                       'fencing it again, nothing evacuated' % why):
            return
        self.journal.set_host_state(host, 'OK', epoch=self.epoch,
                                    detail='answered again during fencing')
        self.journal.clear_alarms(host=host, type='FENCE_FAILED',
                                  by=self.opts.name, epoch=self.epoch)
        self.returned(host, rec.id, 'fencing')
        LOG.warning('recovery %s of %s stopped: the host answers again and '
                    'its %s', rec.id, host, why)

    def watch_recovered(self, states, now):
        """A RECOVERED host (fenced, instances evacuated, awaiting `host
        enable`) heard again on every plane since it was fenced: alarm,
        no fence; it stays forced down and disabled."""
        for host, st in states.items():
            if st.state != 'RECOVERED' or \
                    self._conditions.get(host) not in (OK, SERVICE_DOWN):
                continue
            last = self._steady.get(('returned', host))
            if last is not None and last[0] == st.recovery_id \
                    and now - last[1] < ALARM_REFRESH:
                continue
            rec = self.journal.get_recovery(st.recovery_id) \
                if st.recovery_id is not None else None
            since = (rec.fenced_at or rec.finished_at) if rec else None
            if self._answers(host, since=since):
                self.returned(host, st.recovery_id, 'recovered')

    # -- operator actions ------------------------------------------------------
    def enable_host(self, host):
        return enable_host(self.ops, self.journal, host, epoch=self.epoch)


def enable_host(ops, journal, host, epoch=None):
    """Return a recovered host to service (``nova-ha host enable``)."""
    open_rec = journal.get_open_recovery(host)
    if open_rec is not None:
        raise HostBusy('host %s has recovery %s in progress; wait for it to '
                       'finish' % (host, open_rec.id))
    try:
        ops.enable_service(host)
    except Exception as exc:
        if 'evacuation migration records remain' in str(exc):
            # Nova refuses to force a host up until its restarted
            # nova-compute has cleaned up the instances evacuated from it.
            raise HostBusy('nova-compute on %s has not yet cleaned up the '
                           'instances evacuated from it (Nova keeps it '
                           'forced down until then): start nova-compute, '
                           'wait until it reports, and retry' % host)
        raise
    journal.set_host_state(host, 'OK', detail='enabled by operator',
                           epoch=epoch)
    journal.reset_guard(host, epoch=epoch)
    journal.clear_alarms(host=host, by='operator', epoch=epoch)


class ConfigError(Exception):
    pass


class NotLeader(Exception):
    """This evacuator no longer leads: stop acting."""


class HostBusy(Exception):
    pass
