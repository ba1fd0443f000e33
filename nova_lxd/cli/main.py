"""``nlxc``: the entry point. Builds the parser from the command
modules, runs one command, and turns every error into one line on
stderr with exit status 1 (``NLXC_DEBUG=1`` shows tracebacks, for
developers)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from nova_lxd.cli.commands import MODULES
from nova_lxd.cli.config import Config
from nova_lxd.cli.context import Context
from nova_lxd.cli.errors import CliError

EPILOG = """\
Addresses are [REMOTE:]NAME, as with lxc; 'local' is the daemon's unix
socket (NLXC_SOCKET overrides its path). Configuration: ~/.config/nlxc
(NLXC_CONF_DIR overrides it).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nlxc", description="Client of the nova-lxd daemon (nlxd).",
        epilog=EPILOG)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or status lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                required=True)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = None
    try:
        ctx = Context(Config(), quiet=args.quiet)
        return args.func(ctx, args)
    except CliError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `nlxc list | head`: the reader left; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence
        if os.environ.get("NLXC_DEBUG"):
            traceback.print_exc()
        print(f"Error: unexpected {type(err).__name__}: {err} (set "
              f"NLXC_DEBUG=1 for details)", file=sys.stderr)
        return 1
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
