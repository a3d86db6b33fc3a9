"""``nova-ha report`` counts instance outages (issue 17): INSTANCE_FAILED
alarms raised by instance HA, cleared when the instance ran again."""

import datetime
import json

from nova_ha import journal as journal_mod
from nova_ha.report import collect
from nova_ha.report import render

T0 = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)
U1 = '11111111-1111-1111-1111-111111111111'
U2 = '22222222-2222-2222-2222-222222222222'


def journal(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal_mod.upgrade(url)
    return journal_mod.Journal(url)


def outage(j, uuid, host, kind, action, at, recovered_after=None):
    key = 'INSTANCE_FAILED|%s|%s|%d' % (host, uuid, at.timestamp() * 1e6)
    j.raise_alarm('INSTANCE_FAILED', 'MAJOR',
                  'instance %s (vm) on %s %s (failed) at %s; x [action=%s]'
                  % (uuid, host, kind, at.isoformat(), action),
                  host=host, instance_uuid=uuid, key=key, at=at)
    if recovered_after is not None:
        j.clear_alarms(key=key, at=at + datetime.timedelta(
            seconds=recovered_after))


def test_instance_outages_counted(tmp_path):
    j = journal(tmp_path)
    try:
        outage(j, U1, 'c1', 'crashed', 'restart', T0, 4.5)
        outage(j, U1, 'c1', 'crashed', 'restart',
               T0 + datetime.timedelta(minutes=1), 3.0)
        outage(j, U2, 'c2', 'paused_error', 'none',
               T0 + datetime.timedelta(minutes=2))
        # Another alarm type is not an instance outage.
        j.raise_alarm('HOST_SUSPECT', 'MAJOR', 'x', host='c1', at=T0)
        rep = collect.collect(j, now=T0 + datetime.timedelta(hours=1))
        io = rep.instance_outages
        assert [(o.instance_uuid, o.kind, o.action, o.downtime)
                for o in io] == [(U1, 'crashed', 'restart', 4.5),
                                 (U1, 'crashed', 'restart', 3.0),
                                 (U2, 'paused_error', 'none', None)]
        text = render.render(rep)
        assert 'instance outages' in text and '3, 2 recovered' in text
        data = json.loads(render.render(rep, 'json'))
        assert len(data['instance_outages']) == 3
        # Filters: host and period.
        rep = collect.collect(j, host='c2',
                              now=T0 + datetime.timedelta(hours=1))
        assert [o.instance_uuid for o in rep.instance_outages] == [U2]
        rep = collect.collect(j, since=T0 + datetime.timedelta(seconds=30),
                              until=T0 + datetime.timedelta(seconds=90),
                              now=T0 + datetime.timedelta(hours=1))
        assert len(rep.instance_outages) == 1
    finally:
        j.close()
