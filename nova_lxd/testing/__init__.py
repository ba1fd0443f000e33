"""Helpers for tests, benchmarks and demos: not used by the engine.

``nova_lxd.testing.busybox`` builds a tiny bootable image from Debian's
busybox-static, with no download.
"""
