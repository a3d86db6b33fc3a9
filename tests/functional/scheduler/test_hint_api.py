"""Bad nova-ha scheduler hints refused by the Nova API itself (issue 15):
nova-api runs nova's api-paste.ini with nova-ha's filter added
(nova_ha/scheduler/api_filter.py), as an operator installs it; every
request here goes through nova's real WSGI pipeline."""

from tests.functional.scheduler import base


class TestHintsAtTheAPI(base.SchedulerTestCase):
    COMPUTE_HOSTS = ('host1', 'host2', 'host3', 'host4')

    def post(self, hints, group=None):
        body = self._build_server(name='vnf', flavor_id='1',
                                  networks='none')
        hints = dict(hints)
        if group is not None:
            hints['group'] = group['id']
        return self.api.post_server({'server': body,
                                     'os:scheduler_hints': hints})

    def test_bad_and_conflicting_hints_refused_with_400_naming_them(self):
        self.rack_layout(racks=2)
        group = self.group()
        cases = [
            ({'ha_anti_affinity_level': 'galaxy'},
             "hint ha_anti_affinity_level='galaxy' is invalid: must be one "
             "of host, rack, power_domain, availability_zone, "
             "failure_domain"),
            ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': '0'},
             "hint ha_max_per_domain='0' is invalid: must be an integer "
             ">= 1"),
            ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': '-1'},
             "hint ha_max_per_domain='-1' is invalid"),
            ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': 'x'},
             "hint ha_max_per_domain='x' is invalid"),
            ({'ha_anti_affinity_level': 'rack', 'ha_anti_affinity': 'maybe'},
             "hint ha_anti_affinity='maybe' is invalid: must be one of "
             "hard, soft"),
            ({'different_failure_domain': 'perhaps'},
             "hint different_failure_domain='perhaps' is invalid: must be "
             "true or false"),
            ({'ha_live_migration': 'sometimes'},
             "hint ha_live_migration='sometimes' is invalid"),
            ({'ha_max_interruption_ms': '-5'},
             "hint ha_max_interruption_ms='-5' is invalid"),
            ({'ha_max_concurrent_moves': 'two'},
             "hint ha_max_concurrent_moves='two' is invalid"),
            ({'ha_max_per_domain': '2'},
             "hint ha_max_per_domain=2 is invalid: needs the hint "
             "ha_anti_affinity_level"),
            # conflicting: refused, naming both
            ({'different_failure_domain': 'true',
              'ha_anti_affinity_level': 'rack'},
             "hint different_failure_domain='true' is invalid: conflicts "
             "with hint ha_anti_affinity_level=rack"),
        ]
        for hints, expected in cases:
            for with_group in (group, None):   # refused with or without
                msg = self.assert_api_error(400, self.post, hints,
                                            with_group)
                self.assertIn('Invalid nova-ha scheduler hint: ' + expected,
                              msg)
        # Nothing was created: no server, no group member.
        self.assertEqual([], self.api.get_servers(detail=False))
        self.assertEqual(
            [], self.api.get_server_group(group['id'])['members'])

        # Good hints go through to the scheduler.
        server = self.post({'ha_anti_affinity_level': 'rack',
                            'ha_max_per_domain': '1'}, group)
        self._wait_for_state_change(server, 'ACTIVE',
                                    max_retries=self.RETRIES)
        # different_failure_domain with the same level is no conflict.
        self.post({'different_failure_domain': 'true',
                   'ha_anti_affinity_level': 'failure_domain'}, group)

    def test_api_filter_in_the_pipeline(self):
        from nova_ha.sim import novastack
        with open(novastack.api_paste_config()) as f:
            text = f.read()
        self.assertIn('keystonecontext nova_ha_hints osapi_compute_app_v21',
                      text)
        self.assertIn('legacy_v2_compatible nova_ha_hints '
                      'osapi_compute_app_v21', text)

    def test_upper_case_extra_spec_refused_by_the_api(self):
        flavor = self.flavor(name='plain')
        msg = self.assert_api_error(
            400, self.admin_api.post_extra_spec, flavor,
            {'extra_specs': {'HA:SAL': '9'}})
        self.assertIn("extra spec HA:SAL='9': nova-ha keys are lower case "
                      "(ha:sal)", msg)
