"""An operator's confirmation (``nova-ha fence confirm --reason``) shows in
the recovery's ``fenced`` step: who confirmed and why, in their words."""

import pytest

from nova_ha.fencing import base as fencing_base
from nova_ha.fencing import fencer as fencer_mod
from tests.unit.evacuator import test_flapping as harness
from tests.unit.evacuator.test_flapping import others


@pytest.fixture
def cloud(tmp_path):
    c = harness.Cloud(tmp_path)
    yield c
    c.close()


def fenced_steps(cloud, rec):
    return [e for e in cloud.journal.timeline(rec.id) if e.step == 'fenced']


@pytest.mark.parametrize('reason, detail', [
    ('PDU outlet 7 off', 'confirmed by operator alice: PDU outlet 7 off'),
    (None, 'confirmed by operator alice'),
])
def test_fenced_step_carries_the_operators_reason(cloud, reason, detail):
    cloud.fencer.outcome = fencing_base.Outcome.UNREACHABLE  # dead BMC
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert not fenced_steps(cloud, rec)
    fencer_mod.confirm('c1', 'alice', fencer_mod.JournalRecorder(
        cloud.journal, recovery_id=rec.id), reason=reason)
    cloud.tick(0.1, beat=others('c1'))
    (step,) = fenced_steps(cloud, rec)
    assert step.detail == detail


def test_detail_of_a_confirmation_journalled_with_a_bare_reason():
    assert fencer_mod.confirmed_detail('bob', 'pulled the plug') == \
        'confirmed by operator bob: pulled the plug'
    assert fencer_mod.confirmed_detail('bob', None) == \
        'confirmed by operator bob'
