"""``edge replay`` and ``edge run``: their options, then their handlers.

Both take the run options of :class:`edge.config.RunConfig`, generated from its one declaration
(:func:`edge.config.add_run_options`), so the two commands cannot drift apart. Besides those, replay takes
its SOURCE, ``--realtime`` and ``--overwrite``; run takes ``--config FILE`` (whose keys the run flags
override) or the quick form's ``--source`` and ``--http-port``.
"""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.values import port
from edge.config import add_run_options
from edge.errors import UsageError


def add_run_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    replay = commands.add_parser("replay", parents=[common], help="run recorded footage through bundles")
    replay.add_argument("source", help="a video file, an image file, an image folder or a glob")
    replay.add_argument("--realtime", action="store_true", help="pace frames at the file's own rate")
    replay.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's outputs in --out (without it, they are a usage error)")
    add_run_options(replay)
    replay.set_defaults(func=cmd_replay)

    run = commands.add_parser("run", parents=[common], help="the daemon: live sources, all sinks, until stopped")
    run.add_argument("--config", help="YAML config file (see edge/config.py and README); run options given "
                                      "as flags override its keys")
    run.add_argument("--source", action="append", help="quick form: a camera, URL, file…; repeatable")
    run.add_argument("--http-port", type=port, help="quick form: serve preview, /metrics and /health on 127.0.0.1")
    add_run_options(run)
    run.set_defaults(func=cmd_run)


def cmd_replay(args: argparse.Namespace) -> int:
    from edge.config import run_config
    from edge.replay import DEFAULT_OUT, replay

    config = run_config(args)
    summary = replay(args.source, config, realtime=args.realtime, overwrite=args.overwrite)
    print(f"{summary['frames']} frames at {summary['fps']} fps → {config.out or DEFAULT_OUT}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edge.config import DaemonConfig, HttpConfig, SourceConfig, load_config, run_config, run_options
    from edge.daemon import Daemon
    from edge.logs import configure

    configure(args.debug)
    if args.config:
        given = run_options(args)
        if args.source or "bundles" in given or args.http_port is not None:
            raise UsageError("--config: give either a config file or --source/--bundle, not both")
        config = replace(load_config(args.config), **given)
    elif args.source:
        quick = run_config(args)
        config = DaemonConfig(**vars(quick), sources=[SourceConfig(url=s) for s in args.source],
                              http=HttpConfig(port=args.http_port))
    else:
        raise UsageError("edge run: needs --config FILE, or --source and --bundle")
    return Daemon(config).run()
