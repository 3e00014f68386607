"""`mde-mmrec`: the one command-line entry point.

Each sub-command's module has ``register(subparsers)``: it adds its parser(s) with ``func`` (args -> exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from . import __version__
from .errors import MdeMmrecError

COMMAND_MODULES = ("installer", "usergraph", "synthetic", "datacheck", "demo", "compare", "grid", "reproduce", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mde-mmrec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mde-mmrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mde_mmrec.{name}").register(sub)
    return parser


def exit_on_sigterm() -> None:
    """SIGTERM unwinds mde-mmrec (exit 143), so a running main.py is stopped with it and locks are released."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


class LogFormat(logging.Formatter):
    """``HH:MM:SS message``; a warning or an error says so (``HH:MM:SS warning: message``), as main.py does."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"{self.formatTime(record, '%H:%M:%S')} {level}{record.message}"


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormat())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        return int(args.func(args) or 0)
    except MdeMmrecError as exc:
        print(f"mde-mmrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mde-mmrec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
