"""Makes the fake hypervisor's moves take time and records them.

nova's ``FakeDriver`` finishes a live migration at once and
``FakeLiveMigrateDriver`` holds every live migration of a compute with one
shared flag (releasing one releases all; each lasts 5 s otherwise), so
neither shows per-instance overlap. :class:`MoveRecorder` patches
``FakeDriver`` (which ``MediumFakeDriver`` extends) so that each live
migration and each cold migration holds for ``hold`` seconds inside the
hypervisor and records when it started and ended there -- the concurrency
Nova really saw, independent of the drain's own bookkeeping:

* live: from the driver's ``live_migration`` to the end of nova's
  post-migration step;
* cold: from ``migrate_disk_and_power_off`` to ``confirm_migration``.
"""

import threading
import time

import fixtures
from nova.virt import fake


class MoveRecorder:

    def __init__(self, hold=0.3):
        self.hold = hold
        self.lock = threading.Lock()
        self.open = {}          # uuid -> (kind, start)
        self.intervals = []     # (uuid, kind, start, end)
        self.started = []       # (uuid, kind) in start order

    def _begin(self, uuid, kind):
        with self.lock:
            self.open[uuid] = (kind, time.monotonic())
            self.started.append((uuid, kind))

    def _end(self, uuid):
        with self.lock:
            kind, start = self.open.pop(uuid, (None, None))
            if kind is not None:
                self.intervals.append((uuid, kind, start, time.monotonic()))

    def patches(self):
        rec = self
        orig_migrate = fake.FakeDriver.migrate_disk_and_power_off
        orig_confirm = fake.FakeDriver.confirm_migration

        def live_migration(drv, context, instance, dest, post_method,
                           recover_method, block_migration=False,
                           migrate_data=None):
            rec._begin(instance.uuid, 'live')
            try:
                time.sleep(rec.hold)
                post_method(context, instance, dest, block_migration,
                            migrate_data)
            finally:
                rec._end(instance.uuid)

        def migrate_disk_and_power_off(drv, context, instance, *a, **kw):
            rec._begin(instance.uuid, 'cold')
            time.sleep(rec.hold)
            return orig_migrate(drv, context, instance, *a, **kw)

        def confirm_migration(drv, context, migration, instance, *a, **kw):
            try:
                return orig_confirm(drv, context, migration, instance, *a,
                                    **kw)
            finally:
                rec._end(instance.uuid)

        return [
            fixtures.MonkeyPatch('nova.virt.fake.FakeDriver.live_migration',
                                 live_migration),
            fixtures.MonkeyPatch(
                'nova.virt.fake.FakeDriver.migrate_disk_and_power_off',
                migrate_disk_and_power_off),
            fixtures.MonkeyPatch('nova.virt.fake.FakeDriver.confirm_migration',
                                 confirm_migration),
        ]

    def moves_of(self, uuid):
        with self.lock:
            return [s for s in self.started if s[0] == uuid]

    def max_concurrency(self, uuids=None):
        """Most of ``uuids`` (default: all) inside the hypervisor at once."""
        with self.lock:
            spans = [(s, e) for u, k, s, e in self.intervals
                     if uuids is None or u in uuids]
            now = time.monotonic()
            spans += [(s, now) for u, (k, s) in self.open.items()
                      if uuids is None or u in uuids]
        events = sorted([(s, 1) for s, e in spans] + [(e, -1) for s, e in
                                                       spans])
        cur = best = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best
