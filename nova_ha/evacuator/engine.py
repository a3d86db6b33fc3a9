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
4. follow each evacuation by its migration record and the server to done
   (Nova shows it ACTIVE on another host) or error; retry an error up to
   max_evacuation_attempts; no valid host -> alarm naming the instance and
   the scheduler's reason (nova_ha.evacuator.evacuation: re-issue only on
   evidence, journal audit against Nova, stuck-evacuation alarm);
5. close the recovery (and set the host RECOVERED in the same
   transaction); the host stays forced down and disabled until an
   operator runs ``nova-ha host enable HOST``.

An exception in one recovery's step is recorded on that recovery
(failures, retry_at, last_error) and it backs off; the others go on.

This module is the loop and the per-host glue; each concern has its own
module, composed here with a back-reference to the Evacuator:

- nova_ha.evacuator.detection: a host's condition, this evacuator's stalls;
- nova_ha.evacuator.guard: the mass-failure guard's verdict (pure);
- nova_ha.evacuator.fencing_step: step 1 (``FencingStep``, the last look);
- nova_ha.evacuator.flapping: a host that answers again (``Flapping``);
- nova_ha.evacuator.evacuation: steps 3-5 (``Evacuations``);
- nova_ha.evacuator.notifications: alarms, steps, notifications;
- nova_ha.evacuator.leader: the election (tooz lock); the term's glue
  (``acting``, ``stand_down``, ``_assert_leader``) stays here.

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
never repeated while Nova shows any trace of it (evacuate: see
nova_ha.evacuator.evacuation).
"""

import concurrent.futures
import dataclasses
import datetime
import logging
import threading
import time

from nova_ha.evacuator import detection
from nova_ha.evacuator import evacuation
from nova_ha.evacuator import fencing_step
from nova_ha.evacuator import flapping
from nova_ha.evacuator import guard as guard_mod
from nova_ha.evacuator import notifications
from nova_ha.capacity import recovery as capacity_recovery
from nova_ha import nova_ops
from nova_ha.evacuator.detection import (  # noqa: F401 -- re-exported
    HOST_DOWN, OK, PARTITION, SERVICE_DOWN, SUSPECT)
from nova_ha.heartbeat import receiver as hb
from nova_ha.journal import api as journal_api
from nova_ha import topology as topology_mod

LOG = logging.getLogger(__name__)

# Alarms of one episode of a host (down, partitioned, guarded): cleared
# when the host is OK again without having been fenced.
EPISODE_ALARMS = ('HOST_DOWN', 'PARTITION', 'SERVICE_DOWN',
                  'MASS_FAILURE_GUARD')
# The SELF_CHECK alarm raised while every host is silent at once.
EVERYONE_SILENT_KEY = 'SELF_CHECK|everyone-silent'
# The one cloud-wide MASS_FAILURE_GUARD alarm of a guard episode.
GUARD_ALARM_KEY = 'MASS_FAILURE_GUARD|cloud'
# A host whose every plane is silent for more than this share of its
# window is SUSPECT for the guard (a burst being judged together).
SUSPECT_FRACTION = guard_mod.SUSPECT_FRACTION

# Per-recovery error isolation (a Kubernetes controller's per-key
# requeue): a recovery whose step raised is tried again after
# RETRY_BASE * 2**(failures-1) seconds, at most RETRY_MAX; the others go on.
RETRY_BASE = 0.5
RETRY_MAX = 30.0
# An unchanged PARTITION or SERVICE_DOWN is written to the journal (host
# state, alarm refreshed) on entry and then at most this often
# (nova_ha.evacuator.notifications).
ALARM_REFRESH = notifications.ALARM_REFRESH

_UNSET = object()

# Journal host states that belong to a recovery in progress.
RECOVERY_HOST_STATES = ('HOST_DOWN', 'FENCING', 'FENCED', 'FENCE_FAILED',
                        'GUARDED', 'FORCED_DOWN', 'EVACUATING')


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# PassMemo.self_check before it was asked this pass (None is its answer
# when the self-check passes).
UNREAD = object()


@dataclasses.dataclass
class PassMemo:
    """What one reconcile pass reads once, however many hosts ask."""
    half: dict | None = None        # receiver snapshot at SUSPECT_FRACTION
    self_check: object = UNREAD     # why not to fence now, or None
    in_flight: int | None = None    # evacuations in flight (starts count)
    busy_groups: set = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class TermMemo:
    """What this leadership term has written, so an unchanged condition is
    not written again every pass (reset when the term ends)."""
    # host -> ((condition, detail), monotonic time written)
    written: dict = dataclasses.field(default_factory=dict)
    # The SELF_CHECK alarm: True raised, False cleared, None not known yet
    # (looked up once per term).
    self_check_alarm: bool | None = None
    everyone_silent_since: float | None = None
    everyone_silent_checked: bool = False
    everyone_silent_alarm_at: float | None = None
    # EVACUATION_STUCK alarm key -> monotonic time last raised
    stuck_alarm_at: dict = dataclasses.field(default_factory=dict)


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
        self._listed = set()          # recovery ids whose items are listed
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
        self._pass = PassMemo()        # read once per reconcile pass
        self._steady = TermMemo()      # what this term has written
        self._unknown = set()          # heard from, not in Nova's list
        self._windows = {}             # host -> confirmation window
        self.stall = detection.StallMonitor(
            threshold=conf.guard.stall_threshold, clock=clock)
        self._verdict = guard_mod.Verdict()   # the guard's, this pass
        self._guard_alarm = None       # True/False: the cloud alarm is up
        self._opened = {}              # recovery id -> monotonic open time
        # The steps of a recovery, each in its own module.
        self.notifications = notifications.Notifications(self)
        self.flapping = flapping.Flapping(self)
        self.fencing_step = fencing_step.FencingStep(self)
        self.evacuations = evacuation.Evacuations(self)
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
        if self.clock is time.monotonic:
            # The ticker measures real time only (tests move a clock of
            # their own between passes; the loop's check still applies).
            self.stall.start()
        return self

    def stop(self):
        self.stall.stop()
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
        # Just started (agents' planes may not all have reached us yet), or
        # inside the fresh window after this evacuator's own stall: a host
        # that looks silent is only SUSPECT.
        judging = (now - self.started_at >= max(self.opts.startup_grace,
                                                window)
                   and self.stall.fresh(now, window))
        if state == hb.PARTITION and silent is None and \
                self.opts.partition_recovery:
            silent = self.receiver.silent_planes(host, now=now,
                                                 window=window)
        return detection.classify(state, silent,
                                  self.opts.partition_recovery, judging)

    def failure_time(self, host, now):
        """Wall-clock time of the host's last heartbeat on any plane."""
        seen = [self.receiver.last_seen(host, p)
                for p in self.receiver.planes]
        seen = [s for s in seen if s is not None]
        if not seen:
            return utcnow()
        return utcnow() - datetime.timedelta(seconds=now - max(seen))

    # -- alarms and notifications (nova_ha.evacuator.notifications) ----------
    # Called by the other steps' modules (evacuation, instance_ha,
    # capacity.recovery) as the evacuator's own.
    def alarm(self, type_, severity, message, host=None, extra=None, **kw):
        return self.notifications.alarm(type_, severity, message, host=host,
                                        extra=extra, **kw)

    def notify(self, event_type, severity, payload):
        self.notifications.notify(event_type, severity, payload)

    def step(self, recovery_id, step, detail=None, duration=None):
        self.notifications.step(recovery_id, step, detail=detail,
                                duration=duration)

    # -- the loop ------------------------------------------------------------
    def run(self, stop_event):
        gen = self.receiver.generation
        while not stop_event.is_set():
            if not self.acting():
                self.stall.pass_ended(None)    # a standby has no passes
            else:
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
        # Futures of the old term's power-offs finish on their own.
        self.fencing_step.forget()
        self.flapping.forget()
        self._listed = set()
        self._steady = TermMemo()
        self._pass = PassMemo()
        self._verdict = guard_mod.Verdict()
        self._guard_alarm = None
        self.evacuations.forget()

    def forget_listed(self, recovery_id):
        """List the recovery's instances again (a re-opened recovery)."""
        self._listed.discard(recovery_id)

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
        self.stall.pass_started(now, expected=self.opts.tick)
        try:
            self._reconcile(now)
        finally:
            self.stall.pass_ended(self.clock())

    def _reconcile(self, now):
        self.refresh_hosts()
        self._pass = PassMemo()
        self._conditions = {}
        hosts = sorted(self.services)
        self._note_unknown()
        states = self.journal.host_state_map()
        open_hosts = {r.host for r in
                      self.journal.list_recoveries(states=['open'])}
        states = self.repair_orphans(states, open_hosts)
        catch_up = getattr(self.receiver, 'catch_up', None)
        if catch_up is not None:
            # Judge on every heartbeat that has reached this machine, not
            # on a receiver thread that fell behind.
            catch_up()
            now = self.clock()
        seen = self.receiver.snapshot(hosts, now=now,
                                      window_for=self.window_for)
        self._check_everyone_silent(hosts, states, now)
        for host in hosts:
            try:
                self.observe(host, now, current=states.get(host),
                             seen=seen.get(host))
            except (journal_api.StaleEpoch, NotLeader):
                raise
            except Exception:
                # One host's failure must not blind the evacuator to the
                # others: logged, tried again next pass.
                LOG.exception('observing %s failed; the other hosts go on',
                              host)
        recs = self.journal.list_recoveries(states=['open'])
        self._verdict = self.judge_guard(states, recs, now)
        # Failover capacity: CRITICAL alarm before fencing if the
        # instances cannot all be re-placed; recoveries in priority order
        # (nova_ha/capacity/recovery.py).
        recs = capacity_recovery.before_fencing(self, recs)
        due = self._due(recs)
        self.evacuations.poll(due, now)
        self.advance(*due)
        self.evacuations.audit(states, now)
        self.flapping.watch_recovered(states, now)
        if self.instance_ha is not None:     # issue 17: instance failures
            self.instance_ha.reconcile(now, seen)
        self._clear_guard_alarm(recs)
        if not recs and self._steady.self_check_alarm is not False:
            # No fence waits on a self-check any more (the recoveries it
            # held closed): its alarm clears (looked up once per term).
            self._steady.self_check_alarm = False
            self.journal.clear_alarms(key='SELF_CHECK', by=self.opts.name,
                                      epoch=self.epoch)

    def repair_orphans(self, states, open_hosts):
        """A host in a recovery state with no open recovery (left by a
        crash of a version that closed a recovery and set the host state in
        two transactions) would never be monitored again: derive its state
        from its last recovery -- closed done/incomplete: RECOVERED (fenced,
        awaiting ``host enable``), otherwise OK (monitored again)."""
        for host, st in list(states.items()):
            if st.state not in RECOVERY_HOST_STATES or host in open_hosts:
                continue
            rec = self.journal.get_recovery(st.recovery_id) \
                if st.recovery_id is not None else None
            if rec is not None and rec.state == 'open':
                continue     # opened since we listed: nothing to repair
            state = 'RECOVERED' if rec is not None and rec.state in (
                'done', 'incomplete') else 'OK'
            LOG.warning('host %s is %s with no open recovery (recovery %s '
                        '%s): now %s', host, st.state, st.recovery_id,
                        rec.state if rec else 'unknown', state)
            got = self.journal.set_host_state(
                host, state, expected=[st.state], epoch=self.epoch,
                detail='repaired: %s with no open recovery' % st.state)
            if got is not None:
                states[host] = journal_api.HostStateBrief(
                    got.state, got.recovery_id, got.generation)
        return states

    def _due(self, recs):
        """The open recoveries not waiting out a backoff."""
        now = utcnow()
        return [r for r in recs if r.retry_at is None or r.retry_at <= now]

    def _isolated(self, rec, what, fn, *args):
        """Run one recovery's step; an exception is recorded on that
        recovery (failures, retry_at, last_error: a per-key requeue with
        exponential backoff) and the other recoveries go on. A pass that
        runs through resets the backoff."""
        try:
            result = fn(*args)
        except (journal_api.StaleEpoch, NotLeader):
            raise
        except Exception as exc:
            failures = (rec.failures or 0) + 1
            delay = min(RETRY_MAX, RETRY_BASE * 2 ** (failures - 1))
            LOG.exception('recovery %s of %s: %s failed (%d in a row); '
                          'retrying it in %.1f s, the others go on',
                          rec.id, rec.host, what, failures, delay)
            self.journal.recovery_failed(
                rec.id, '%s: %s: %s' % (what, type(exc).__name__, exc),
                utcnow() + datetime.timedelta(seconds=delay),
                epoch=self.epoch)
            return _FAILED
        return result

    def _succeeded(self, rec):
        """Every step of the recovery ran through this pass: its backoff
        (if any) is reset."""
        if rec.failures:
            self.journal.recovery_succeeded(rec.id, epoch=self.epoch)

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
    # States of a host known to be powered off by nova-ha (or being
    # drained): silent on purpose, counted by the guard as fenced instead.
    FENCED_STATES = ('FENCED', 'FORCED_DOWN', 'EVACUATING', 'RECOVERED')

    def _half_snapshot(self, hosts, now):
        """{host: (state, silent planes)} at SUSPECT_FRACTION of each
        window, once per pass (for the guard's burst rule and the
        everyone-silent check)."""
        if self._pass.half is None:
            self._pass.half = self.receiver.snapshot(
                hosts, now=now,
                window_for=lambda h: self.window_for(h) * SUSPECT_FRACTION)
        return self._pass.half

    def _check_everyone_silent(self, hosts, states, now):
        """Every host expected to beat silent at once (on every plane, for
        more than half its window): far more likely this evacuator (or its
        network) than the cloud -- a stall: nothing is judged until a full
        fresh window has been observed on every host."""
        if now - self.started_at < self.opts.startup_grace:
            return          # not everyone has reached us yet: not a stall
        expected = [h for h in hosts if getattr(states.get(h), 'state', None)
                    not in self.FENCED_STATES + ('MAINTENANCE',)]
        if len(expected) < 2:
            return
        half = self._half_snapshot(hosts, now)
        if not all(half.get(h, (hb.UNKNOWN,))[0] in (hb.SILENT, hb.UNKNOWN)
                   for h in expected):
            memo = self._steady
            if memo.everyone_silent_since is not None \
                    or not memo.everyone_silent_checked:
                memo.everyone_silent_since = None
                memo.everyone_silent_checked = True
                self.journal.clear_alarms(key=EVERYONE_SILENT_KEY,
                                          by=self.opts.name,
                                          epoch=self.epoch)
            return
        self.stall.everyone_silent(now, len(expected))
        # Nothing is judged meanwhile: say so (once per ALARM_REFRESH).
        memo = self._steady
        if memo.everyone_silent_since is None:
            memo.everyone_silent_since = now
        since = memo.everyone_silent_since
        last = memo.everyone_silent_alarm_at
        if last is None or now - last >= ALARM_REFRESH:
            memo.everyone_silent_alarm_at = now
            self.alarm('SELF_CHECK', 'CRITICAL',
                       'every one of %d compute hosts silent at once for '
                       '%.1f s: this evacuator (or its network) is more '
                       'likely cut off than the cloud dead; no host is '
                       'judged or fenced meanwhile' % (len(expected),
                                                       now - since),
                       key=EVERYONE_SILENT_KEY)

    def judge_guard(self, states, recs, now):
        """The mass-failure guard's verdict this pass (guard.judge over
        every compute host); nothing to judge without an open recovery."""
        if not recs:
            return guard_mod.Verdict()
        hosts = sorted(self.services)
        half = self._half_snapshot(hosts, now)
        open_hosts = {r.host for r in recs}
        policy = guard_mod.GuardPolicy.from_conf(self.conf.guard)
        since = utcnow() - datetime.timedelta(seconds=policy.failure_window)
        recent = {r.host for r in self.journal.list_recoveries(since=since)
                  if r.reason == HOST_DOWN and r.fenced_at is not None}
        out = []
        for h in hosts:
            st = getattr(states.get(h), 'state', None)
            if st == 'MAINTENANCE':
                continue
            off = st in self.FENCED_STATES
            cond = self._conditions.get(h)
            state, silent = half.get(h, (hb.UNKNOWN, ()))
            if off:
                silence = guard_mod.HEARD
            elif cond == HOST_DOWN:
                silence = guard_mod.SILENT
            elif cond == SUSPECT or state in (hb.SILENT, hb.UNKNOWN):
                silence = guard_mod.SUSPECT
            else:
                silence = guard_mod.HEARD
            out.append(guard_mod.GuardHost(
                name=h, silence=silence,
                silent_planes=() if off else tuple(silent),
                open_recovery=h in open_hosts,
                fenced_recently=(h in recent and st in self.FENCED_STATES),
                domains=self.location(h)))
        return guard_mod.judge(policy, out, self.receiver.planes)

    def self_check(self):
        """Why this evacuator must not fence now, or None (asked once per
        pass, however many hosts are about to be fenced)."""
        if not self.conf.guard.self_check:
            return None
        if self._pass.self_check is UNREAD:
            self._pass.self_check = self._self_check()
        return self._pass.self_check

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
        """True if fencing must wait: this evacuator stalled (SELF_CHECK
        alarm), its self-check fails (SELF_CHECK alarm), the guard waits
        for a burst to unfold (no alarm) or holds (host GUARDED, one
        cloud-wide MASS_FAILURE_GUARD alarm). When in doubt, do not fence."""
        host = rec.host
        reason = self.stall.suspended(self.clock(), self._longest_window())
        if reason is None:
            reason = self.self_check()
        if reason:
            self._steady.self_check_alarm = True
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
            # host is heard again (the recovery then closes), even if fewer
            # hosts look failed now.
            return True
        verdict = self._verdict
        if verdict.wait:
            LOG.info('not fencing %s yet: %s', host, verdict.wait)
            return True
        if not verdict.reason:
            return False
        self.journal.set_host_state(host, 'GUARDED', detail=verdict.reason,
                                    recovery_id=rec.id, epoch=self.epoch)
        self._raise_guard_alarm(verdict)
        return True

    def _longest_window(self):
        hosts = sorted(self.services)
        return max([self.window_for(h) for h in hosts] or [0.0])

    def _raise_guard_alarm(self, verdict):
        """ONE CRITICAL MASS_FAILURE_GUARD alarm per guard episode, naming
        the hosts and the rule (not one per host)."""
        guarded = sorted(s.host for s in self.journal.list_host_states(
            states=['GUARDED']))
        self._guard_alarm = True
        self.alarm('MASS_FAILURE_GUARD', 'CRITICAL',
                   'not fencing %s: %s; this evacuator is more likely cut '
                   'off than those hosts dead. After checking, an operator '
                   'can run: nova-ha host lift-guard HOST --operator NAME'
                   % (', '.join(guarded), verdict.reason), host=None,
                   key=GUARD_ALARM_KEY, extra={'hosts': guarded,
                                               'rule': verdict.rule})

    def _clear_guard_alarm(self, recs):
        """The cloud-wide guard alarm clears once no host is GUARDED (each
        answered again, or was let through by an operator)."""
        if self._guard_alarm is False:
            return
        if self._guard_alarm is None:      # new term: look once
            self._guard_alarm = bool(self.journal.list_alarms(
                types=['MASS_FAILURE_GUARD']))
            if not self._guard_alarm:
                return
        if self.journal.list_host_states(states=['GUARDED']):
            return
        self.journal.clear_alarms(type='MASS_FAILURE_GUARD',
                                  by=self.opts.name, epoch=self.epoch)
        self._guard_alarm = False

    def _episode_over(self, host):
        """``host`` is OK again without having been fenced: its episode's
        alarms (HOST_DOWN, PARTITION, SERVICE_DOWN, its MASS_FAILURE_GUARD)
        clear."""
        for type_ in EPISODE_ALARMS:
            self.journal.clear_alarms(host=host, type=type_,
                                      by=self.opts.name, epoch=self.epoch)

    def _unchanged(self, host, condition, detail, current, now):
        """True if this term already wrote ``condition`` (and its alarm)
        for ``host`` less than ALARM_REFRESH seconds ago and the journal
        still says so: nothing to write this pass."""
        last = self._steady.written.get(host)
        if (current == condition and last is not None
                and last[0] == (condition, detail)
                and now - last[1] < ALARM_REFRESH):
            return True
        self._steady.written[host] = ((condition, detail), now)
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
                self._opened[rec.id] = now
                # open_recovery recorded the 'detected' step itself; the
                # last heartbeat is when the host failed, what downtime
                # (nova-ha report) is measured from.
                last = self.failure_time(host, now)
                self.journal.record_step(rec.id, 'last_heartbeat', at=last,
                                         epoch=self.epoch)
                self.notifications.notify_step(rec.id, 'detected', host=host,
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
                self._episode_over(host)
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
        fenced = []
        for rec in recs:
            got = self._isolated(rec, 'fencing', self.fencing_step.fenced, rec)
            if got is None:
                self._succeeded(rec)      # not fenced yet: nothing more
            elif got is not _FAILED:
                fenced.append(got)
        todo = [r for r in fenced
                if r.forced_down_at is None or r.id not in self._listed]
        if todo:
            self._assert_leader()
        prepared = [(r, self._api_pool.submit(self._prepare_in_nova, r))
                    for r in todo]
        failed = set()
        for rec, call in prepared:
            if self._isolated(rec, 'preparing the host for evacuation',
                              lambda r, c: self._record_prepared(
                                  r, *c.result()), rec, call) is _FAILED:
                failed.add(rec.id)
        for rec in fenced:
            if rec.id not in failed and self._isolated(
                    rec, 'evacuating', self.evacuations.run, rec) \
                    is not _FAILED:
                self._succeeded(rec)

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
                self.notifications.notify_step(rec.id, 'listed', host=host,
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

    # -- operator actions ----------------------------------------------------
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


_FAILED = object()    # _isolated: the step raised


class ConfigError(Exception):
    pass


class NotLeader(Exception):
    """This evacuator no longer leads: stop acting."""


class HostBusy(Exception):
    pass
