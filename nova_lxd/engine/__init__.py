"""The container engine: images and system containers on liblxc.

A library of its own: it never imports nova, HTTP or a global CONF, so the
Nova driver, the daemon and the tools all build on the same code.
"""
