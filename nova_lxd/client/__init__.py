"""Clients of the daemon shared by nlxc, the Nova driver and tests."""
