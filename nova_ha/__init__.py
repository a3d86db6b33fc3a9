"""nova-ha: telecom-grade high availability for OpenStack Nova."""
