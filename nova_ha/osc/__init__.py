"""OpenStackClient plugin: ``openstack ha ...`` (see doc/cli.md)."""
