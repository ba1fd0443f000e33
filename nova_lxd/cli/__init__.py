"""``nlxc``: the command-line client of the nova-lxd daemon (``nlxd``).

It speaks only HTTP (the LXD 1.0 REST API) to the daemon, over its unix
socket or over HTTPS with a pinned server certificate and a client
certificate; it never imports the engine or nova, so it can run on any
machine with ``requests``.
"""
