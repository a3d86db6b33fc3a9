"""The evacuator's Prometheus metrics (prometheus-client, own registry).

``Metrics.observe_step(kind, duration)`` and ``observe_alarm(type,
severity)`` are called by the engine for each new journal step and alarm;
leadership and heartbeat counters are read at scrape time.
Names and labels: doc/evacuator-ha.md.
"""

import prometheus_client as prom
from prometheus_client import core

_LATENCY = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
            20.0, 30.0, 60.0, 120.0, 300.0)


class _Live:
    """Gauges and counters read from the evacuator at scrape time."""

    def __init__(self, metrics):
        self.m = metrics

    def collect(self):
        ev = self.m.evacuator
        leader = getattr(ev, 'leader', None) if ev else None
        g = core.GaugeMetricFamily('nova_ha_is_leader',
                                   '1 if this evacuator leads and acts')
        acting = 1 if ev is not None and (
            leader is None or leader.is_leader) else 0
        g.add_metric([], acting)
        yield g
        c = core.CounterMetricFamily('nova_ha_leader_elections',
                                     'Times this evacuator became leader')
        c.add_metric([], getattr(leader, 'elections', 0) if leader else 0)
        yield c
        receiver = getattr(ev, 'receiver', None) if ev else None
        if receiver is not None:
            counts = receiver.counters()
            a = core.CounterMetricFamily('nova_ha_heartbeats_accepted',
                                         'Authentic heartbeats accepted')
            a.add_metric([], counts['accepted'])
            yield a
            r = core.CounterMetricFamily(
                'nova_ha_heartbeats_rejected',
                'Heartbeats rejected (forged, replayed, malformed)',
                labels=['reason'])
            for reason, n in sorted(counts['rejected'].items()):
                r.add_metric([str(reason)], n)
            yield r


class Metrics:
    def __init__(self, evacuator=None):
        self.evacuator = evacuator
        self.registry = prom.CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.detection = prom.Histogram(
            'nova_ha_detection_seconds',
            'Last heartbeat of a failed host to HOST_DOWN',
            buckets=_LATENCY, registry=reg)
        self.fencing = prom.Histogram(
            'nova_ha_fencing_seconds', 'Power-off command to confirmed off',
            buckets=_LATENCY, registry=reg)
        self.fencing_total = prom.Counter(
            'nova_ha_fencing', 'Fencing outcomes', ['outcome'],
            registry=reg)
        self.evacuation = prom.Histogram(
            'nova_ha_evacuation_seconds',
            'Evacuate call to instance ACTIVE on another host',
            buckets=_LATENCY, registry=reg)
        self.evacuations = prom.Counter(
            'nova_ha_evacuations', 'Evacuations issued and finished',
            ['result'], registry=reg)
        self.recovery = prom.Histogram(
            'nova_ha_recovery_seconds', 'Detection to recovery closed',
            buckets=_LATENCY, registry=reg)
        self.recoveries = prom.Counter(
            'nova_ha_recoveries', 'Recoveries closed', ['state'],
            registry=reg)
        self.alarms = prom.Counter(
            'nova_ha_alarms', 'Alarms raised', ['type', 'severity'],
            registry=reg)
        reg.register(_Live(self))
        self.server = None

    def serve(self, port, address='127.0.0.1'):
        self.server, _thread = prom.start_http_server(
            port, addr=address, registry=self.registry)
        return self.server.server_address[1]

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def text(self):
        return prom.generate_latest(self.registry).decode()

    # -- hooks ---------------------------------------------------------------
    def observe_step(self, kind, duration=None, detail=None):
        if kind == 'detected':
            if duration is not None:
                self.detection.observe(duration)
        elif kind == 'fenced':
            self.fencing_total.labels('FENCED').inc()
            if duration is not None:
                self.fencing.observe(duration)
        elif kind == 'evacuate':
            self.evacuations.labels('issued').inc()
        elif kind == 'active':
            self.evacuations.labels('active').inc()
            if duration is not None:
                self.evacuation.observe(duration)
        elif kind == 'finished':
            self.recoveries.labels(detail or 'done').inc()
            if duration is not None:
                self.recovery.observe(duration)

    def observe_alarm(self, type_, severity):
        self.alarms.labels(type_, severity).inc()
        if type_ == 'FENCE_FAILED':
            self.fencing_total.labels('FAILED').inc()
