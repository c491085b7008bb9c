"""Fault-injection suite: a hostile server and the bounded outcome of each fault."""
