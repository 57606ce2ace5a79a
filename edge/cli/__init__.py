"""The ``edge`` command: one console script, one subcommand per mode (see CONTRACT.md).

Each command group has its module here, with the function that declares its options (``add_*``) apart from
its handlers (``cmd_*``); handlers import what they drive when they run, so ``compile/`` and
``calibration/`` load only for the commands that need them. This module builds the parser and maps
failures to the contract's exit codes with one line on stderr (the traceback only with ``--debug``).

=====================  ==================================================
module                 commands
=====================  ==================================================
``run``                ``replay``, ``run`` (the run options: :mod:`edge.config`)
``bundle``             ``bundle create``
``compile_quantize``   ``compile``, ``quantize``
``engine``             ``build-engine``
``export``             ``export``
``bench``              ``bench``
``demo_doctor``        ``demo``, ``doctor``, ``service install``
=====================  ==================================================
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from edge import __version__
from edge.cli.bench import add_bench_parser
from edge.cli.bundle import add_bundle_parser
from edge.cli.compile_quantize import add_compile_parsers
from edge.cli.demo_doctor import add_demo_doctor_parsers
from edge.cli.engine import add_engine_parser
from edge.cli.export import add_export_parser
from edge.cli.run import add_run_parsers
from edge.errors import EdgeError


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as the one line every other error is (argparse adds the usage before it);
    its subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"edge: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser = OneLineParser(prog="edge", description="Computer vision on Jetson-class devices.", parents=[common])
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_doctor_parsers(commands, common)
    add_bundle_parser(commands, common)
    add_compile_parsers(commands, common)
    add_engine_parser(commands, common)
    add_run_parsers(commands, common)
    add_export_parser(commands, common)
    add_bench_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edge.logs import configure_plain, quiet_native_logs

    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_native_logs(args.debug)
    configure_plain(args.debug)  # edge run switches to JSON lines
    try:
        return args.func(args)
    except BaseException as e:  # every failure ends as one line and the contract's exit code
        code, message = _exit_code(e)
        if args.debug:
            traceback.print_exc()
        print(f"edge: error: {' '.join(message.split())}", file=sys.stderr)  # one line, whatever a library wrote
        return code


def _exit_code(error: BaseException) -> tuple[int, str]:
    from streams.base import SourceError
    from streams.writers import WriterError

    if isinstance(error, EdgeError):
        return error.exit_code, str(error)
    if isinstance(error, SourceError):
        return 3, str(error)
    if isinstance(error, WriterError):
        return 4, str(error)
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, SystemExit):
        raise error
    if isinstance(error, OSError) and error.filename is not None:  # a file the run could not write or read
        return 4, f"{error.filename}: {error.strerror or error}"
    return 4, f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)"
