"""Leader election among evacuators: a tooz lock plus the journal's
fencing token.

One evacuator of a group leads (reconciles, fences, evacuates); the others
stand by, receiving heartbeats, and try the lock every ``renew_interval``.

Safety -- a deposed leader stops acting before a new one can start:

- the tooz lock expires ``lock_ttl`` after the leader's last renewal
  (redis, etcd; with the ``file://`` backend a dead process's lock is freed
  by the kernel at once, and a live one never loses it);
- the leader acts only while ``clock() < valid_until``, where valid_until
  is ``lease`` (< lock_ttl) after the *start* of its last successful
  renewal: a leader paused or cut off from the coordinator has stopped
  acting before its lock can expire;
- a new leader claims a new journal epoch (``Journal.claim_leadership``)
  before acting; every journal write of the old leader carries the old
  epoch and is refused with ``StaleEpoch``, which makes it stand down. The
  engine writes to the journal before each outside action (fencing attempt,
  item -> evacuating), and checks ``is_leader`` right before it.

Usage::

    el = LeaderElector(backend_url, member_id, journal).start()
    if el.is_leader: use el.epoch for every journal write
    el.step_down()    # on StaleEpoch; stays a candidate
    el.stop()         # releases the lock
"""

import logging
import math
import threading
import time
import urllib.parse

from tooz import coordination

from nova_ha.urls import redact  # noqa: F401 (leader.redact, used by cmd)

LOG = logging.getLogger(__name__)


def backend_url_with_defaults(url, lock_ttl):
    """``url`` with the lock TTL filled in for drivers that take one."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.split('+')[0]
    query = urllib.parse.parse_qs(parts.query)
    extra = {}
    ttl = str(int(math.ceil(lock_ttl)))
    if scheme in ('redis', 'rediss'):
        extra = {'lock_timeout': ttl, 'timeout': ttl}
    elif scheme in ('etcd3', 'etcd3gw'):
        extra = {'lock_timeout': ttl, 'timeout': ttl}
    elif scheme in ('zookeeper', 'kazoo'):
        extra = {'timeout': ttl}
    added = {k: v for k, v in extra.items() if k not in query}
    if not added:
        return url
    q = parts.query + ('&' if parts.query else '') + \
        urllib.parse.urlencode(added)
    return urllib.parse.urlunsplit(parts._replace(query=q))




class LeaderElector:
    """Elects, renews, reports ``is_leader``; see the module docstring."""

    def __init__(self, backend_url, member_id, journal,
                 name='nova-ha-evacuator-leader', lease=0.8,
                 renew_interval=0.2, lock_ttl=1, clock=time.monotonic,
                 on_change=None):
        self.url = backend_url_with_defaults(backend_url, lock_ttl)
        self.member_id = member_id
        self.journal = journal
        self.name = name
        self.lease = lease
        self.renew_interval = renew_interval
        self.clock = clock
        self.on_change = on_change
        self._coord = None
        self._lock = None
        self._epoch = None
        self._valid_until = 0.0
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.coordinator_ok = False
        self.elected_at = None      # monotonic time of the last election
        self.elections = 0

    def __repr__(self):
        return '<LeaderElector %s on %s%s>' % (
            self.member_id, redact(self.url),
            ' leader epoch %s' % self._epoch.epoch if self._epoch else '')

    # -- life cycle ------------------------------------------------------
    def connect(self):
        self._coord = coordination.get_coordinator(
            self.url, self.member_id.encode())
        self._coord.start(start_heart=False)
        self._lock = self._coord.get_lock(self.name.encode())
        self.coordinator_ok = True

    def start(self):
        if self._coord is None:
            self.connect()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='leader-election')
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._lose('stopping', release=True)
        if self._coord is not None:
            try:
                self._coord.stop()
            except Exception:
                LOG.debug('coordinator stop failed', exc_info=True)

    # -- state -----------------------------------------------------------
    @property
    def is_leader(self):
        with self._state_lock:
            return self._epoch is not None and \
                self.clock() < self._valid_until

    @property
    def epoch(self):
        """The Epoch while leading (even past the lease), else None."""
        with self._state_lock:
            return self._epoch

    def remaining(self):
        """Seconds of lease left (<= 0: not acting)."""
        with self._state_lock:
            if self._epoch is None:
                return 0.0
            return self._valid_until - self.clock()

    def step_down(self, reason='stepping down'):
        """Stop leading now (e.g. a journal write raised StaleEpoch); stay a
        candidate for a later election."""
        self._lose(reason, release=True)

    # -- the election thread ---------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                LOG.exception('leader election pass failed')
            self._stop.wait(self.renew_interval)

    def tick(self):
        """One pass: try to become leader, or renew. Public for tests."""
        t0 = self.clock()
        epoch = self.epoch
        if epoch is None:
            self._try_acquire(t0)
            return
        try:
            ok = self._renew(epoch)
            self.coordinator_ok = True
        except Exception as exc:
            self.coordinator_ok = False
            LOG.warning('leader %s: cannot renew (%s); %.2f s of lease left',
                        self.member_id, exc, self.remaining())
            if self.remaining() <= 0:
                self._lose('lease expired without renewal', release=True)
            return
        if not ok:
            self._lose('lock or journal leadership lost', release=True)
            return
        with self._state_lock:
            if self._epoch == epoch:
                self._valid_until = t0 + self.lease

    def _renew(self, epoch):
        """True while we still own the lock and the journal epoch."""
        heartbeat = getattr(self._lock, 'heartbeat', None)
        if heartbeat is not None:
            if not heartbeat():
                return False
        if not self._lock.is_still_owner():
            return False
        try:
            self._coord.heartbeat()
        except Exception:
            LOG.debug('coordinator heartbeat failed', exc_info=True)
        return self.journal.renew_leadership(epoch)

    def _try_acquire(self, t0):
        try:
            got = self._lock.acquire(blocking=False)
            self.coordinator_ok = True
        except Exception as exc:
            self.coordinator_ok = False
            LOG.warning('standby %s: coordinator unreachable: %s',
                        self.member_id, exc)
            return
        if not got:
            return
        try:
            epoch = self.journal.claim_leadership(self.name,
                                                  holder=self.member_id)
        except Exception:
            LOG.exception('won the lock but could not claim the journal '
                          'leadership; releasing')
            self._release()
            return
        with self._state_lock:
            self._epoch = epoch
            self._valid_until = t0 + self.lease
            self.elected_at = self.clock()
            self.elections += 1
        LOG.warning('evacuator %s is now the leader (journal epoch %s)',
                    self.member_id, epoch.epoch)
        self._changed(True)

    def _lose(self, reason, release):
        with self._state_lock:
            was = self._epoch
            self._epoch = None
            self._valid_until = 0.0
        if release:
            self._release()
        if was is not None:
            LOG.warning('evacuator %s is no longer the leader (epoch %s): %s',
                        self.member_id, was.epoch, reason)
            self._changed(False)

    def _release(self):
        if self._lock is None:
            return
        try:
            if getattr(self._lock, 'acquired', True):
                self._lock.release()
        except Exception:
            LOG.debug('lock release failed', exc_info=True)

    def _changed(self, leading):
        if self.on_change is not None:
            try:
                self.on_change(leading)
            except Exception:
                LOG.exception('leadership change callback failed')
