"""The simulated cloud: a real Nova in process, virtual BMCs, fault injection."""
