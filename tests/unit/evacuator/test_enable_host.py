"""``nova-ha host enable`` while Nova still refuses to force the host up."""

import pytest
from novaclient import exceptions as nova_exc

from nova_ha.evacuator import engine
from nova_ha import journal


class Ops:
    def __init__(self, error=None):
        self.error = error
        self.enabled = []

    def enable_service(self, host):
        if self.error is not None:
            raise self.error
        self.enabled.append(host)


@pytest.fixture
def jrnl(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal.upgrade(url)
    j = journal.Journal(url)
    j.set_host_state('c1', 'RECOVERED')
    yield j
    j.close()


def test_not_cleaned_up_yet_is_busy_and_changes_nothing(jrnl):
    refused = nova_exc.BadRequest(
        400, 'Unable to force up host c1 as `done` evacuation migration '
        'records remain associated with the host.')
    with pytest.raises(engine.HostBusy, match='not yet cleaned up'):
        engine.enable_host(Ops(refused), jrnl, 'c1')
    assert jrnl.get_host_state('c1').state == 'RECOVERED'


def test_other_errors_are_not_hidden(jrnl):
    with pytest.raises(nova_exc.BadRequest):
        engine.enable_host(Ops(nova_exc.BadRequest(400, 'other')), jrnl,
                           'c1')
    assert jrnl.get_host_state('c1').state == 'RECOVERED'


def test_enable(jrnl):
    ops = Ops()
    engine.enable_host(ops, jrnl, 'c1')
    assert ops.enabled == ['c1']
    assert jrnl.get_host_state('c1').state == 'OK'
