"""The Nova virt driver: a thin translation from Nova objects to engine
calls (nova_lxd.engine never imports nova; this package does)."""
