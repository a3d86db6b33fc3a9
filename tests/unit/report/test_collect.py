"""nova_ha.report.collect: exact figures from a journal written through
the Journal API (tests/unit/report/conftest.py describes the recoveries)."""

import datetime

import pytest

from nova_ha.report import collect
from tests.unit.report.conftest import (A1, A2, A3, B1, C1, G1, G2, NAMES,
                                        T0, at)

UTC = datetime.timezone.utc
NOW = at(86400)


def approx(x):
    return pytest.approx(x, abs=1e-6)


def by(outages, uuid, recovery_id=None):
    return [o for o in outages if o.instance_uuid == uuid
            and (recovery_id is None or o.recovery_id == recovery_id)]


class TestParseTime:

    def test_relative(self):
        now = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        assert collect.parse_time('1h', now) == now.replace(hour=11)
        assert collect.parse_time('30m', now) == now.replace(hour=11,
                                                            minute=30)
        assert collect.parse_time('2d', now) == now.replace(day=19)
        assert collect.parse_time('90s', now) == datetime.datetime(
            2026, 11, 21, 11, 58, 30, tzinfo=UTC)
        assert collect.parse_time('1w', now) == now.replace(day=14)
        assert collect.parse_time(' 1.5H ', now) == now.replace(
            hour=10, minute=30)

    def test_iso(self):
        assert collect.parse_time('2026-11-21T07:00:00Z') == \
            datetime.datetime(2026, 11, 21, 7, tzinfo=UTC)
        assert collect.parse_time('2026-11-21') == \
            datetime.datetime(2026, 11, 21, tzinfo=UTC)
        # no offset = UTC; an offset is converted
        assert collect.parse_time('2026-11-21T07:00:00') == \
            datetime.datetime(2026, 11, 21, 7, tzinfo=UTC)
        got = collect.parse_time('2026-11-21T09:30:00+02:00')
        assert got == datetime.datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
        assert got.utcoffset() == datetime.timedelta(0)

    @pytest.mark.parametrize('bad', ['yesterday', '', '1y', '-1h',
                                     '2026-13-01', 'h1'])
    def test_bad_names_option_and_value(self, bad):
        with pytest.raises(collect.ReportError) as e:
            collect.parse_time(bad, option='--since')
        assert str(e.value).startswith('--since %r: not a time' % bad)


class TestCollect:

    def test_outages_exact(self, jrnl):
        r = collect.collect(jrnl, group_names=NAMES, now=NOW)
        assert r.recoveries == 3
        assert [(o.recovery_id, o.name) for o in r.outages] == [
            (jrnl.r1.id, 'batch-1'), (jrnl.r1.id, 'vnf-a-1'),
            (jrnl.r1.id, 'vnf-b-1'), (jrnl.r2.id, 'vnf-a-2'),
            (jrnl.r2.id, 'vnf-a-3'), (jrnl.r3.id, 'vnf-a-1')]
        # recovery 1: no last heartbeat -> failure = detection
        a1, = by(r.outages, A1, jrnl.r1.id)
        assert (a1.failure_source, a1.failure_at) == ('detected', T0)
        assert a1.detection is None
        assert a1.fencing == approx(1.5)
        assert a1.evacuation == approx(3.5)
        assert a1.time_to_recover == approx(5.6)
        assert a1.downtime == approx(5.6)
        assert (a1.state, a1.dest_host, a1.group_name, a1.sal_met) == (
            'done', 'compute05', 'vnf-a', True)
        b1, = by(r.outages, B1)
        assert (b1.downtime, b1.sal, b1.sal_met) == (approx(9.1), 2, True)
        c1, = by(r.outages, C1)
        assert (c1.state, c1.recovered, c1.downtime, c1.time_to_recover,
                c1.server_group, c1.fencing) == (
            'skipped', False, None, None, None, approx(1.5))
        # recovery 2: last heartbeat 0.8 s before detection
        a2, = by(r.outages, A2)
        assert a2.failure_source == 'last_heartbeat'
        assert a2.failure_at == at(3600 - 0.8)
        assert a2.detection == approx(0.8)
        assert a2.fencing == approx(2.0)
        assert a2.time_to_recover == approx(4.0)
        assert a2.downtime == approx(4.8)
        a3, = by(r.outages, A3)
        assert (a3.state, a3.recovered, a3.downtime, a3.evacuation,
                a3.error) == ('error', False, None, None, 'boom')
        # recovery 3: the same instance again, over SAL1's 6 s
        a1b, = by(r.outages, A1, jrnl.r3.id)
        assert (a1b.downtime, a1b.fencing, a1b.sal_met) == (
            approx(7.0), approx(3.0), False)
        assert not r.failure_known

    def test_group_and_overall_aggregates(self, jrnl):
        r = collect.collect(jrnl, group_names=NAMES, now=NOW)
        assert [g.label for g in r.groups] == ['vnf-a', 'vnf-b',
                                               '(no group)']
        ga = r.groups[0]
        assert (ga.server_group, ga.instances, ga.outages, ga.recovered,
                ga.unrecovered, ga.sal_missed) == (G1, 3, 4, 3, 1, 1)
        # downtimes 4.8, 5.6, 7.0
        assert ga.downtime.count == 3
        assert ga.downtime.total == approx(17.4)
        assert ga.downtime.mean == approx(5.8)
        assert (ga.downtime.p50, ga.downtime.p95, ga.downtime.max) == (
            approx(5.6), approx(7.0), approx(7.0))
        # time to recover 4.0, 5.6, 7.0
        assert (ga.time_to_recover.p50, ga.time_to_recover.max) == (
            approx(5.6), approx(7.0))
        # fencing over every outage, recovered or not: 1.5, 2, 2, 3
        assert ga.fencing.count == 4
        assert (ga.fencing.p50, ga.fencing.p95, ga.fencing.max) == (
            approx(2.0), approx(3.0), approx(3.0))
        # detection known only for recovery 2 (a2, a3)
        assert (ga.detection.count, ga.detection.max) == (2, approx(0.8))
        gb = r.groups[1]
        assert (gb.outages, gb.downtime.total) == (1, approx(9.1))
        none = r.groups[2]
        assert (none.server_group, none.outages, none.recovered,
                none.downtime.count) == (None, 1, 0, 0)
        o = r.overall
        assert (o.instances, o.outages, o.recovered, o.unrecovered) == (
            5, 6, 4, 2)
        # downtimes 4.8, 5.6, 7.0, 9.1
        assert o.downtime.total == approx(26.5)
        assert (o.downtime.p50, o.downtime.p95, o.downtime.max) == (
            approx(5.6), approx(9.1), approx(9.1))

    def test_instances(self, jrnl):
        r = collect.collect(jrnl, group_names=NAMES, now=NOW)
        assert [(i.group_name, i.label) for i in r.instances] == [
            ('vnf-a', 'vnf-a-1'), ('vnf-a', 'vnf-a-2'), ('vnf-a', 'vnf-a-3'),
            ('vnf-b', 'vnf-b-1'), (None, 'batch-1')]
        a1 = r.instances[0]
        assert (a1.key, a1.outages, a1.recovered) == (A1, 2, 2)
        assert (a1.downtime.total, a1.downtime.max,
                a1.time_to_recover.max, a1.fencing.max) == (
            approx(12.6), approx(7.0), approx(7.0), approx(3.0))

    def test_period_is_detection_in_since_until(self, jrnl):
        r = collect.collect(jrnl, since=at(1800), now=NOW)
        assert r.recoveries == 2
        assert {o.recovery_id for o in r.outages} == {jrnl.r2.id,
                                                      jrnl.r3.id}
        # until is exclusive: recovery 2 is detected exactly at T0+3600
        r = collect.collect(jrnl, until=at(3600), now=NOW)
        assert {o.recovery_id for o in r.outages} == {jrnl.r1.id}
        r = collect.collect(jrnl, since=at(3600), until=at(3601), now=NOW)
        assert {o.recovery_id for o in r.outages} == {jrnl.r2.id}
        r = collect.collect(jrnl, since=at(7201), now=NOW)
        assert (r.recoveries, r.outages, r.overall.outages) == (0, (), 0)
        with pytest.raises(collect.ReportError, match='--since .* is not '
                                                      'before --until'):
            collect.collect(jrnl, since=at(10), until=at(10), now=NOW)

    def test_until_defaults_to_now(self, jrnl):
        r = collect.collect(jrnl, now=at(3599))
        assert r.until == at(3599)
        assert {o.recovery_id for o in r.outages} == {jrnl.r1.id}

    def test_host_and_group_filters(self, jrnl):
        r = collect.collect(jrnl, host='compute02', now=NOW)
        assert (r.recoveries, [o.name for o in r.outages]) == (
            1, ['vnf-a-2', 'vnf-a-3'])
        r = collect.collect(jrnl, groups=[G2], now=NOW)
        assert r.recoveries == 1
        assert [o.name for o in r.outages] == ['vnf-b-1']
        assert [g.server_group for g in r.groups] == [G2]
        # the drain moved a member of G2
        assert [m.name for m in r.drains] == ['vnf-b-1']
        r = collect.collect(jrnl, groups=[G1], now=NOW)
        assert r.recoveries == 3 and r.overall.outages == 4
        assert r.drains == ()

    def test_drain_moves(self, jrnl):
        r = collect.collect(jrnl, group_names=NAMES, now=NOW)
        m, = r.drains
        assert (m.host, m.name, m.method, m.state, m.dest_host,
                m.group_name) == ('compute07', 'vnf-b-1', 'live', 'moved',
                                  'compute08', 'vnf-b')
        assert m.move_time == approx(3.25)
        assert collect.collect(jrnl, until=at(10800), now=NOW).drains == ()

    def test_open_recovery_counts_unrecovered(self, jrnl):
        from tests.unit.report.conftest import recover
        rec = recover(jrnl, 'compute06', at(9000), 1.0, [
            dict(uuid='dddddddd-0000-0000-0000-000000000001', name='vnf-d-1',
                 group=G2, sal=1, start=1.5)], finished=None)
        r = collect.collect(jrnl, since=at(8000), now=at(9010))
        o, = r.outages
        assert (o.recovery_id, o.recovery_state, o.state, o.recovered,
                o.downtime, o.fencing) == (rec.id, 'open', 'evacuating',
                                           False, None, approx(1.0))
        assert r.overall.unrecovered == 1

    def test_percentile_nearest_rank(self):
        assert collect.percentile([3, 1, 2], 50) == 2
        assert collect.percentile([1, 2, 3, 4], 50) == 2
        assert collect.percentile([1, 2, 3, 4], 95) == 4
        assert collect.percentile([7], 95) == 7
        assert collect.percentile([], 50) is None
        with pytest.raises(ValueError):
            collect.percentile([1], 0)


class TestGroups:

    def test_journal_groups(self, jrnl):
        assert collect.journal_groups(jrnl) == {G1, G2}

    def test_resolve(self):
        known = {G1}
        assert collect.resolve_groups([G1], known) == {G1}
        assert collect.resolve_groups(['vnf-b'], known, NAMES) == {G2}
        # a UUID only Nova knows (no outage yet) is a valid group
        assert collect.resolve_groups([G2], known, NAMES) == {G2}

    def test_unknown(self):
        with pytest.raises(collect.ReportError) as e:
            collect.resolve_groups(['vnf-x'], {G1}, NAMES)
        assert str(e.value) == (
            "--group 'vnf-x': no server group with this UUID in the journal "
            "(1 known) and Nova does not know it either")
        with pytest.raises(collect.ReportError) as e:
            collect.resolve_groups(['vnf-a'], {G1}, None,
                                   nova_error='[nova] auth_type is not set')
        assert "--group 'vnf-a'" in str(e.value)
        assert 'names cannot be resolved without Nova ([nova] auth_type' \
            in str(e.value)

    def test_ambiguous_name(self):
        with pytest.raises(collect.ReportError, match="--group 'vnf': 2 "
                                                      "server groups"):
            collect.resolve_groups(['vnf'], set(), {G1: 'vnf', G2: 'vnf'})
