"""What every command needs: the configuration, one client per remote,
and whether progress may be drawn."""

from __future__ import annotations

from nova_lxd.cli import address, progress
from nova_lxd.cli.client import Client
from nova_lxd.cli.config import Config


class Context:
    def __init__(self, config: Config, quiet: bool = False) -> None:
        self.config = config
        self.quiet = quiet
        self._clients: dict[str, Client] = {}

    def client(self, remote: str | None = None) -> Client:
        """The client of a remote, made once per run."""
        remote_obj = self.config.remote(remote)
        if remote_obj.name not in self._clients:
            self._clients[remote_obj.name] = Client(remote_obj, self.config)
        return self._clients[remote_obj.name]

    def instance(self, text: str) -> tuple[Client, str]:
        """``[remote:]name`` -> (its remote's client, name)."""
        target = address.parse_name(self.config, text)
        return self.client(target.remote), target.name

    def remote_only(self, text: str | None) -> Client:
        """``[remote:]`` (for lists) -> that remote's client."""
        if not text:
            return self.client()
        target = address.parse(self.config, text if ":" in text
                               else text + ":")
        return self.client(target.remote)

    def ticker(self, desc: str) -> progress.OperationTicker:
        return progress.OperationTicker(desc, progress.enabled(self.quiet))

    def show_progress(self) -> bool:
        return progress.enabled(self.quiet)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
