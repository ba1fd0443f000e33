"""nova-lxd: system containers for OpenStack, on liblxc."""
