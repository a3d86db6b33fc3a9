"""Instance HA: act on the instance failures the agents report (issue 17).

The agents report crashed, unexpectedly stopped and paused-on-error
libvirt domains (:mod:`nova_ha.heartbeat.instances`); the heartbeat
receiver keeps them (``receiver.instances``). Once per reconcile pass of
the evacuator (:meth:`InstanceHA.reconcile`, called at the end of
``Evacuator.reconcile``), each new failure -- an *outage*, keyed by
(instance, time of the libvirt event) -- is handed to a worker pool, so
fifty instances failing at once never delay the host path:

1. **Is it Nova's?** The instance must exist and Nova must place it on
   the reporting host (a host speaks only for its own instances).
2. **On purpose?** Nothing is done when Nova or a user stopped it:
   ``vm_state`` not ``active``, a ``task_state`` set (Nova is working on
   it), or a disruptive instance action (stop, reboot, migrate, ...: see
   DISRUPTIVE_ACTIONS) in Nova's action log started ``action_grace``
   seconds before the failure or later (except this evacuator's own). A
   guest that shut itself down is reported and journalled, and recovered
   only with ``restart_guest_shutdown``.
3. **Policy**: the flavor's extra spec ``ha:instance_recovery``, else the
   image property of that name, else ``[instance_ha] default_recovery``:

   * ``restart`` -- hard reboot through the Nova API. Budget:
     ``restart_max`` restarts within ``restart_window`` seconds; one more
     failure is escalated to rebuild-elsewhere with an INSTANCE_ESCALATED
     alarm;
   * ``rebuild-elsewhere`` -- cold migration to a host the scheduler picks
     (Nova stops the instance first), confirmed when it reaches
     VERIFY_RESIZE;
   * ``none`` -- journalled and alarmed, nothing else.

4. **Journal**: every outage is an INSTANCE_FAILED alarm (time, host and
   location, type, severity, instance), keyed per outage, cleared when the
   instance is ACTIVE again and its host no longer reports it failed:
   ``cleared_at - created_at`` is the outage (``nova-ha report`` counts
   them). A recovery that does not finish within ``recovery_timeout``
   raises INSTANCE_RECOVERY_FAILED.

Correlation: ``suspect_failures`` outages on one host within
``suspect_window``, or any outage while the host has a degraded plane
(PARTITION), a dead or restarted watched process (SERVICE_DOWN, a
PROCESS_RESTARTED alarm, a process reported not running), raise a
HOST_SUSPECT alarm naming the evidence; with ``suspect_action = drain``
the host is drained (nova_ha.maintenance) before it fails hard.

Idempotence: the outage alarm is written before the Nova call, under the
evacuator's leadership epoch. A new leader that hears of an outage whose
alarm is open takes it over: if Nova's action log shows the earlier
leader's reboot (or migration) since the failure, it follows that one
instead of judging it an operator's; if not (the leader died before its
call), it acts. An open outage alarm whose instance no longer fails (it
came back before the new leader heard of it) is cleared by a sweep once
Nova shows the instance ACTIVE and idle. So one outage gets one reboot and
its alarm is always closed.
"""

import collections
import concurrent.futures
import datetime
import logging
import threading
import time

import sqlalchemy as sa

from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb
from nova_ha.journal import models

LOG = logging.getLogger(__name__)

SPEC = 'ha:instance_recovery'
# An image's ha:instance_recovery is reused this long (image properties
# rarely change, and an outage should not wait for the Image service).
IMAGE_POLICY_TTL = 300.0
# After the Image service could not be read, it is asked again after this.
IMAGE_RETRY_AFTER = 60.0
RESTART = 'restart'
REBUILD = 'rebuild-elsewhere'
NONE = 'none'
POLICIES = (RESTART, REBUILD, NONE)
# Instance actions (Nova's action log) that stop, pause or move an instance
# on purpose. Others (create, start, attach_volume, ...) do not explain a
# failure.
DISRUPTIVE_ACTIONS = frozenset((
    'stop', 'reboot', 'migrate', 'resize', 'confirmResize', 'revertResize',
    'live-migration', 'live_migration', 'evacuate', 'shelve',
    'shelveOffload', 'suspend', 'pause', 'rescue', 'unrescue', 'delete',
    'forceDelete', 'rebuild', 'restore', 'softDelete', 'trigger_crash_dump',
    'createImage', 'createBackup', 'extend_volume', 'swap_volume'))
FOLLOW_INTERVAL = 0.25     # seconds between two checks of a recovery
RETRY_AFTER = 2.0          # seconds before a failed Nova call is retried
PRUNE_AFTER = 600.0        # forget a finished outage this long after
SWEEP_INTERVAL = 5.0       # seconds between two looks at orphan alarms


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _ts(wall):
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)


def _parse(value):
    if not value:
        return None
    dt = datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt


def _alarm_action(message):
    """The policy an outage alarm's message names ('[action=...]')."""
    for policy in POLICIES:
        if '[action=%s]' % policy in (message or ''):
            return policy
    return None


class Outage:
    """One instance failure being handled (memory only: the journal alarm
    is the record)."""

    __slots__ = ('uuid', 'host', 'kind', 'reason', 'since', 'heard_wall',
                 'key', 'state', 'policy', 'why', 'acted_at', 'next_poll',
                 'finished_at', 'name', 'detected_mono')

    def __init__(self, failure):
        self.uuid = failure.uuid
        self.host = failure.host
        self.kind = failure.kind
        self.reason = failure.reason
        self.since = failure.since
        self.heard_wall = failure.heard_wall
        self.detected_mono = failure.heard_at
        self.key = 'INSTANCE_FAILED|%s|%s|%d' % (
            failure.host, failure.uuid, int(failure.since * 1e6))
        self.state = 'checking'   # -> ignored | none | restarting | moving
        #                            -> recovered | failed
        self.policy = None
        self.why = None
        self.acted_at = None
        self.next_poll = 0.0
        self.finished_at = None
        self.name = None

    def __repr__(self):
        return '<Outage %s on %s %s/%s: %s>' % (self.uuid, self.host,
                                                self.kind, self.reason,
                                                self.state)


class InstanceHA:
    """The evacuator's instance-failure handling. See the module doc."""

    def __init__(self, evacuator, clock=time.monotonic):
        self.ev = evacuator
        self.opts = evacuator.conf.instance_ha
        self.ops = evacuator.ops
        self.journal = evacuator.journal
        self.receiver = evacuator.receiver
        self.clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.opts.workers, thread_name_prefix='instance-ha')
        self._lock = threading.Lock()
        self._outages = {}         # key -> Outage
        self._inflight = {}        # uuid -> Future
        self._our_requests = collections.deque(maxlen=4096)
        self._our_actions = collections.deque(maxlen=4096)
        self._host_failures = collections.defaultdict(collections.deque)
        self._suspect = {}         # host -> evidence text last raised
        self._evidence_memo = {}   # host -> (signature, evidence)
        self._drained = set()
        self._image_policy = {}    # image id -> (property or None, read at)
        self._image_retry_at = float('-inf')   # Image service unreadable
        self._next_sweep = float('-inf')       # first pass: sweep at once
        self._sweep = None                     # its Future
        # (uuid, kind, crash wall time, heard wall, acted wall, recovered
        # wall): the benchmark's and tests' record of what happened.
        self.history = collections.deque(maxlen=100000)

    def stop(self):
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the pass -------------------------------------------------------------
    def reconcile(self, now=None, seen=None):
        """Start handling new outages, follow recoveries, correlate."""
        now = self.clock() if now is None else now
        for uuid, fut in list(self._inflight.items()):
            if fut.done():
                del self._inflight[uuid]
        failures = self.receiver.instances.failures(now=now)
        for uuid, f in failures.items():
            key = 'INSTANCE_FAILED|%s|%s|%d' % (f.host, uuid,
                                               int(f.since * 1e6))
            if key in self._outages or uuid in self._inflight:
                continue
            o = Outage(f)
            self._outages[key] = o
            self._submit(uuid, self._handle, o)
        for key, o in list(self._outages.items()):
            if o.state == 'retry':
                if now >= o.next_poll and o.uuid not in self._inflight:
                    o.state = 'checking'
                    self._submit(o.uuid, self._handle, o)
            elif o.state in ('restarting', 'moving'):
                if now >= o.next_poll and o.uuid not in self._inflight:
                    o.next_poll = now + FOLLOW_INTERVAL
                    self._submit(o.uuid, self._follow, o,
                                 failures.get(o.uuid))
            elif o.finished_at is not None and \
                    now - o.finished_at > PRUNE_AFTER and \
                    (failures.get(o.uuid) is None or
                     failures[o.uuid].since != o.since):
                del self._outages[key]
        if now >= self._next_sweep and (self._sweep is None or
                                        self._sweep.done()):
            self._next_sweep = now + SWEEP_INTERVAL
            self._sweep = self._pool.submit(self._sweep_orphans)
        self._correlate(now, seen or {})

    def _submit(self, uuid, fn, *args):
        def run():
            try:
                fn(*args)
            except Exception:   # noqa: BLE001 -- retried later
                LOG.exception('instance HA: %s of %s failed; retrying in '
                              '%.0f s', fn.__name__, uuid, RETRY_AFTER)
                o = args[0]
                o.next_poll = self.clock() + RETRY_AFTER
                if fn == self._handle and o.state == 'checking':
                    o.state = 'retry'    # the whole check again, later
        self._inflight[uuid] = self._pool.submit(run)

    def outages(self):
        """[Outage] known to this evacuator (tests, benchmark)."""
        return list(self._outages.values())

    # -- one outage -----------------------------------------------------------
    def _ignore(self, o, why, level=logging.INFO):
        o.state = 'ignored'
        o.why = why
        o.finished_at = self.clock()
        LOG.log(level, 'instance %s on %s %s (%s): no action: %s', o.uuid,
                o.host, o.kind, o.reason, why)

    def _handle(self, o):
        server = self._server(o.uuid)
        if server is None:
            return self._ignore(o, 'Nova does not know the instance '
                                '(deleted?)')
        o.name = getattr(server, 'name', None)
        host = getattr(server, 'OS-EXT-SRV-ATTR:host', None)
        if host != o.host:
            return self._ignore(o, 'Nova places it on %s, not on the '
                                'reporting host' % host, logging.WARNING)
        if self._taken_over(o):
            return
        why = self.on_purpose(o, server)
        if why:
            return self._ignore(o, why)
        policy, source = self.policy(server)
        o.policy = policy
        if o.kind == protocol.INSTANCE_STOPPED and o.reason == 'shutdown' \
                and not self.opts.restart_guest_shutdown:
            policy, source = NONE, '[instance_ha] restart_guest_shutdown'
        escalated = None
        if policy == RESTART:
            used = self.restarts_since(
                o.uuid, utcnow() - datetime.timedelta(
                    seconds=self.opts.restart_window))
            if used >= self.opts.restart_max:
                escalated = used
                policy = REBUILD
        o.policy = policy
        action = {RESTART: 'hard reboot', REBUILD: 'rebuild elsewhere '
                  '(cold migration)', NONE: 'no action'}[policy]
        alarm = self._outage_alarm(o, '%s (policy %s from %s) [action=%s]'
                                   % (action, policy, source, policy))
        with self._lock:
            self._host_failures[o.host].append((time.time(), o.uuid, o.kind))
        if escalated is not None:
            self.ev.alarm(
                'INSTANCE_ESCALATED', 'CRITICAL',
                'instance %s (%s) on %s failed again after %d restart(s) '
                'within %.0f s: escalated to rebuild-elsewhere'
                % (o.uuid, o.name, o.host, escalated,
                   self.opts.restart_window),
                host=o.host, instance_uuid=o.uuid,
                key='INSTANCE_ESCALATED|%s|%s' % (o.host, o.uuid))
        if policy == NONE:
            o.state = 'none'
            o.why = source
            o.finished_at = self.clock()
            return
        if not alarm[1] and self._already_acted(o):
            # A previous leader wrote the record and acted: follow it.
            o.state = 'restarting' if policy == RESTART else 'moving'
            o.acted_at = self.clock()
            return
        self.ev._assert_leader()
        called = time.time()
        if policy == RESTART:
            request_ids = self.ops.hard_reboot(o.uuid)
            o.state = 'restarting'
        else:
            request_ids = self.ops.cold_migrate(o.uuid)
            o.state = 'moving'
        self._our_requests.extend(request_ids)
        # Also by instance, action and time: a response need not carry the
        # request id (then our own reboot would read as an operator's and
        # the next crash of a crash-looping instance would be ignored).
        self._our_actions.append((o.uuid, 'reboot' if policy == RESTART
                                   else 'migrate', called, time.time()))
        o.acted_at = self.clock()
        self.history.append(dict(uuid=o.uuid, host=o.host, kind=o.kind,
                                 since=o.since, heard=o.heard_wall,
                                 acted=time.time(), policy=policy))
        LOG.warning('instance %s (%s) on %s %s (%s): %s', o.uuid, o.name,
                    o.host, o.kind, o.reason, action)

    def _server(self, uuid):
        return self.ev.ops.server(uuid)

    def on_purpose(self, o, server):
        """Why the failure was Nova's or a user's doing, or None."""
        vm_state = getattr(server, 'OS-EXT-STS:vm_state', None)
        task = getattr(server, 'OS-EXT-STS:task_state', None)
        if task:
            return 'task_state %s: Nova is working on it' % task
        if vm_state != 'active':
            return 'vm_state %s: stopped on purpose' % vm_state
        cutoff = _ts(o.since - self.opts.action_grace)
        ours = set(self._our_requests)
        for action in self.ops.instance_actions(o.uuid):
            start = _parse(getattr(action, 'start_time', None))
            if start is None or start < cutoff or \
                    action.action not in DISRUPTIVE_ACTIONS:
                continue
            if getattr(action, 'request_id', None) in ours or \
                    self._ours(o.uuid, action.action, start):
                continue
            return ('instance action %s (request %s) at %s'
                    % (action.action, getattr(action, 'request_id', '?'),
                       start.isoformat()))
        return None

    def _taken_over(self, o):
        """Follow an earlier leader's action on this outage; True if so.

        Its alarm (keyed by host, instance and failure time) is open and
        names the action; Nova's log shows that action since the failure.
        Without this the dead leader's reboot -- in the action log, or as
        the task state it set -- would read as an operator's doing and the
        outage, alarm and all, would be left open for ever."""
        alarm = self.journal.get_active_alarm(o.key)
        if alarm is None:
            return False
        policy = _alarm_action(alarm.message)
        if policy is None:
            return False
        if policy == NONE:
            o.policy = policy
            o.state = 'none'
            o.why = 'journalled by an earlier leader'
            o.finished_at = self.clock()
            return True
        if not self._already_acted(o, actions=(
                'reboot' if policy == RESTART else 'migrate',)):
            return False      # it died before its call: this one acts
        o.policy = policy
        o.state = 'restarting' if policy == RESTART else 'moving'
        o.acted_at = self.clock()
        LOG.warning('instance %s on %s: following the %s an earlier leader '
                    'ordered (alarm %d)', o.uuid, o.host, policy, alarm.id)
        return True

    def _sweep_orphans(self):
        """Close the open outage alarms no outage here stands for: an
        earlier leader's whose instance came back before this leader heard
        of it. Cleared when Nova shows the instance ACTIVE and idle (or
        gone) and its host no longer reports it failed; an ERROR instance
        or an outage with policy none keeps its alarm for the operator.
        A failed sweep is logged and done again next interval."""
        try:
            self._sweep_orphan_alarms()
        except Exception:   # noqa: BLE001 -- again in SWEEP_INTERVAL
            LOG.exception('instance HA: sweep of outage alarms failed; '
                          'again in %.0f s', SWEEP_INTERVAL)

    def _sweep_orphan_alarms(self):
        known = {o.key for o in list(self._outages.values())}
        failing = self.receiver.instances.failures()
        for alarm in self.journal.list_alarms(
                status='active', types=['INSTANCE_FAILED']):
            uuid = alarm.instance_uuid
            if alarm.key in known or not uuid or uuid in failing or \
                    _alarm_action(alarm.message) in (None, NONE):
                continue
            server = self._server(uuid)
            if server is not None and (
                    getattr(server, 'status', None) != 'ACTIVE' or
                    getattr(server, 'OS-EXT-STS:task_state', None)):
                continue
            why = ('instance deleted' if server is None else
                   'ACTIVE on %s' % getattr(server, 'OS-EXT-SRV-ATTR:host',
                                            None))
            self.journal.clear_alarms(key=alarm.key,
                                      by='nova-ha instance-ha',
                                      epoch=self.ev.epoch)
            LOG.warning('instance %s on %s: outage of an earlier leader '
                        'closed (%s)', uuid, alarm.host, why)

    def _already_acted(self, o, actions=('reboot', 'migrate')):
        ours = set(self._our_requests)
        cutoff = _ts(o.since - self.opts.action_grace)
        for action in self.ops.instance_actions(o.uuid):
            start = _parse(getattr(action, 'start_time', None))
            if start is not None and start >= cutoff and \
                    action.action in actions and \
                    getattr(action, 'request_id', None) not in ours and \
                    not self._ours(o.uuid, action.action, start):
                return True
        return False

    # Nova stamps an action's start inside the API call; allow for the
    # two clocks (evacuator, Nova) differing by this much.
    OWN_ACTION_SLACK = 2.0

    def _ours(self, uuid, action, start):
        """Did this evacuator issue `action` on `uuid` at `start`?"""
        at = start.timestamp()
        return any(u == uuid and a == action and
                   t0 - self.OWN_ACTION_SLACK <= at <= t1 + self.OWN_ACTION_SLACK
                   for u, a, t0, t1 in self._our_actions)

    def policy(self, server):
        """(policy, where it came from) for a server."""
        specs = (getattr(server, 'flavor', None) or {}).get(
            'extra_specs') or {}
        value = specs.get(SPEC)
        if value in POLICIES:
            return value, 'flavor'
        if value is not None:
            LOG.warning('instance %s: flavor extra spec %s=%r is not one '
                        'of %s; using the default', server.id, SPEC, value,
                        ', '.join(POLICIES))
        image_id, value = self._image_value(server)
        if value in POLICIES:
            return value, 'image'
        if value is not None:
            LOG.warning('instance %s: image %s property %s=%r is not one of '
                        '%s; using the default', server.id, image_id, SPEC,
                        value, ', '.join(POLICIES))
        return self.opts.default_recovery, '[instance_ha] default_recovery'

    def _image_value(self, server):
        """(image id, its ha:instance_recovery property or None), read from
        the Image service and reused for IMAGE_POLICY_TTL seconds. When the
        Image service cannot be read, the last value read (or None: the
        flavor and the default rule) stands, and it is asked again after
        IMAGE_RETRY_AFTER seconds -- an outage is never held up by it."""
        image = getattr(server, 'image', None)
        image_id = image.get('id') if isinstance(image, dict) else None
        if not image_id:
            return None, None     # booted from a volume
        now = self.clock()
        cached = self._image_policy.get(image_id)
        if cached is not None and (now - cached[1] < IMAGE_POLICY_TTL
                                   or now < self._image_retry_at):
            return image_id, cached[0]
        if now < self._image_retry_at:
            return image_id, None
        problem = None
        try:
            # Deleted since (None): the flavor and default rule.
            value = self.ops.image_property(image_id, SPEC)
        except Exception as exc:   # noqa: BLE001 -- the flavor still rules
            problem = str(exc) or type(exc).__name__
        if problem is not None:
            LOG.warning('instance HA: cannot read image %s from the Image '
                        'service (%s); the flavor extra spec %s and the '
                        'default apply until it is asked again in %.0f s',
                        image_id, problem, SPEC, IMAGE_RETRY_AFTER)
            self._image_retry_at = now + IMAGE_RETRY_AFTER
            return image_id, cached[0] if cached is not None else None
        self._image_policy[image_id] = (value, now)
        return image_id, value

    def restarts_since(self, uuid, since):
        """Restarts nova-ha ordered for `uuid` since `since` (journal)."""
        t = models.Alarm.__table__
        with self.journal.transaction(write=False) as conn:
            return conn.execute(sa.select(sa.func.count()).where(
                t.c.type == 'INSTANCE_FAILED', t.c.instance_uuid == uuid,
                t.c.created_at >= since,
                t.c.message.like('%[action=restart]%'))).scalar()

    def _outage_alarm(self, o, action):
        msg = ('instance %s (%s) on %s %s (%s) at %s; %s'
               % (o.uuid, o.name, o.host, o.kind, o.reason,
                  _ts(o.since).isoformat(), action))
        alarm = self.journal.raise_alarm(
            'INSTANCE_FAILED', 'MAJOR', msg, host=o.host,
            instance_uuid=o.uuid, key=o.key, epoch=self.ev.epoch,
            **self.ev.location(o.host))
        if alarm[1]:
            LOG.warning('alarm MAJOR INSTANCE_FAILED: %s', msg)
            if self.ev.metrics is not None:
                self.ev.metrics.observe_alarm('INSTANCE_FAILED', 'MAJOR')
            self.ev.notify('nova_ha.alarm.instance_failed', 'MAJOR', {
                'alarm_id': alarm[0].id, 'type': 'INSTANCE_FAILED',
                'severity': 'MAJOR', 'host': o.host,
                'location': self.ev.location(o.host), 'message': msg,
                'instance_uuid': o.uuid, 'kind': o.kind,
                'reason': o.reason, 'time': alarm[0].created_at.isoformat()})
        return alarm

    # -- following a recovery -------------------------------------------------
    def _follow(self, o, failure):
        server = self._server(o.uuid)
        now = self.clock()
        if server is None:
            return self._finish(o, 'recovered', 'instance deleted')
        status = getattr(server, 'status', None)
        task = getattr(server, 'OS-EXT-STS:task_state', None)
        host = getattr(server, 'OS-EXT-SRV-ATTR:host', None)
        if o.state == 'moving' and status == 'VERIFY_RESIZE':
            self.ev._assert_leader()
            self.ops.confirm_resize(o.uuid)
            return
        still_failed = failure is not None and failure.since == o.since
        if status == 'ACTIVE' and not task and not still_failed and (
                o.state == 'restarting' or host != o.host):
            return self._finish(o, 'recovered', 'ACTIVE on %s' % host)
        if status == 'ERROR' or now - o.acted_at > \
                self.opts.recovery_timeout:
            why = ('server ERROR: %s' % ((getattr(server, 'fault', None)
                                          or {}).get('message', '?'))
                   if status == 'ERROR' else 'not ACTIVE after %.0f s '
                   '(status %s, task %s)' % (now - o.acted_at, status, task))
            self.ev.alarm('INSTANCE_RECOVERY_FAILED', 'CRITICAL',
                          'instance %s (%s) on %s: %s failed: %s'
                          % (o.uuid, o.name, o.host, o.policy, why),
                          host=o.host, instance_uuid=o.uuid)
            return self._finish(o, 'failed', why)

    def _finish(self, o, state, why):
        if state == 'recovered':
            at = time.time()
            for rec in reversed(self.history):
                if rec['uuid'] == o.uuid and rec['since'] == o.since:
                    rec['recovered'] = at
                    break
            self.journal.clear_alarms(key=o.key, by='nova-ha instance-ha',
                                      epoch=self.ev.epoch)
        o.why = why
        o.finished_at = self.clock()
        o.state = state
        LOG.warning('instance %s on %s: %s (%s)', o.uuid, o.host, state,
                    why)

    # -- correlation ----------------------------------------------------------
    def _correlate(self, now, seen):
        horizon = time.time() - self.opts.suspect_window
        with self._lock:
            hosts = {}
            for host, dq in list(self._host_failures.items()):
                while dq and dq[0][0] < horizon:
                    dq.popleft()
                if dq:
                    hosts[host] = list(dq)
                else:
                    del self._host_failures[host]
        for host in list(self._suspect):
            if host not in hosts:
                self.journal.clear_alarms(key='HOST_SUSPECT|%s|' % host,
                                          by='nova-ha instance-ha',
                                          epoch=self.ev.epoch)
                del self._suspect[host]
        for host in list(self._evidence_memo):
            if host not in hosts:
                del self._evidence_memo[host]
        for host, failures in hosts.items():
            # Evidence is looked for when something changed, not every
            # pass (it may read the journal).
            view = self.receiver.host_view(host)
            sig = (len(failures), (seen.get(host) or (None,))[0],
                   tuple(sorted(view.processes.items())) if view else ())
            memo = self._evidence_memo.get(host)
            if memo is not None and memo[0] == sig:
                continue
            evidence = self._evidence(host, failures, seen.get(host), view)
            self._evidence_memo[host] = (sig, evidence)
            if evidence is None or self._suspect.get(host) == evidence:
                continue
            self._suspect[host] = evidence
            alarm = self.ev.alarm(
                'HOST_SUSPECT', 'MAJOR', 'host %s suspect: %s' % (host,
                                                                  evidence),
                host=host, extra={'evidence': evidence,
                                  'instances': [u for _, u, _ in failures]})
            if self.opts.suspect_action == 'drain' and \
                    host not in self._drained:
                self._drained.add(host)
                self._pool.submit(self._drain, host, alarm, evidence)

    def _evidence(self, host, failures, seen, view):
        n = len(failures)
        why = []
        if n >= self.opts.suspect_failures:
            why.append('%d instance failures within %.0f s (%s)'
                       % (n, self.opts.suspect_window,
                          ', '.join(u for _, u, _ in failures)))
        state = seen[0] if seen else None
        if state == hb.PARTITION:
            why.append('%d instance failure(s) and planes %s silent'
                       % (n, ', '.join(seen[1])))
        elif state == hb.SERVICE_DOWN:
            why.append('%d instance failure(s) and nova-compute down' % n)
        if view is not None:
            bad = sorted(p for p, s in view.processes.items()
                         if s not in (protocol.RUNNING, protocol.UNKNOWN))
            if bad:
                why.append('%d instance failure(s) and watched process(es) '
                           '%s not running' % (n, ', '.join(bad)))
        if not why and self._restarted_recently(host):
            why.append('%d instance failure(s) and a watchdog restart '
                       'within %.0f s' % (n, self.opts.suspect_window))
        return '; '.join(why) or None

    def _restarted_recently(self, host):
        since = utcnow() - datetime.timedelta(
            seconds=self.opts.suspect_window)
        return bool(self.journal.list_alarms(
            status='all', host=host, types=['PROCESS_RESTARTED'],
            since=since, limit=1))

    def _drain(self, host, alarm, evidence):
        from nova_ha.maintenance import engine as drain_engine
        eng = drain_engine.Engine(self.ops,
                                  self.journal, actor='nova-ha instance-ha')
        try:
            drain = eng.start(host, reason='HOST_SUSPECT: %s' % evidence,
                              by='nova-ha instance-ha')
            LOG.warning('host %s suspect: drain #%d started', host, drain.id)
        except drain_engine.DrainError as exc:
            LOG.warning('host %s suspect: no drain: %s', host, exc)
        except Exception:   # noqa: BLE001
            LOG.exception('host %s suspect: drain failed to start', host)
