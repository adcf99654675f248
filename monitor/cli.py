"""The ``wirewatch`` command: the only place that reads files and the environment.

Exit codes: 0 success; 1 the config (or a query) is invalid, or the database
cannot be opened; 2 usage error; 3 ``run --once`` left alerts undelivered
(failed, or still pending when its wait ended); 128 + the signal's number when
``run --once`` was stopped by SIGTERM (143), SIGINT (130) or SIGHUP (129); 141 when
standard output was closed early (a pipe into ``head``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import math
import os
import signal
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__
from monitor.channels import build_notifiers, close_notifiers
from monitor.config import Config, ConfigError, load_config
from monitor.durations import MAX_DURATION
from monitor.entry import EARLY_HUPS, note_hup
from monitor.feeds_view import add_feeds_command
from monitor.instance import default_instance_id
from monitor.logs import RedactingStream, Redactor, configure_logging
from monitor.ops_wiring import (
    config_secrets,
    env_secrets,
    ops_server,
    progress_for_once,
    reloader_for,
)
from monitor.reports import add_report_commands
from monitor.rules_cli import add_rules_commands
from monitor.service import Monitor
from monitor.store import Store, StoreError, describe_database_error
from monitor.yamlsource import unset_variable

DEFAULT_CONFIG = "config.yaml"
EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNDELIVERED = 0, 1, 2, 3
#: Standard output was closed before the command finished writing (`wirewatch hits |
#: head`): the status a shell reports for a command killed by SIGPIPE.
EXIT_PIPE = 128 + signal.SIGPIPE

log = logging.getLogger("wirewatch")


class CommandError(Exception):
    """A user-caused problem with a message that names the place and the fix."""


@dataclass
class Context:
    """What commands need from the outside world, resolved lazily."""

    config_path: Path
    stdout: TextIO
    stderr: TextIO
    environ: dict[str, str]
    _config: Config | None = None
    redactor: Redactor | None = None

    def load_config(self) -> Config:
        if self._config is None:
            self._config = read_config(self.config_path, environ=self.environ,
                                       redactor=self.redactor)
        return self._config

    def open_store(self) -> Store:
        return Store.open(self.load_config().database)

    def open_report_store(self) -> Store:
        """The store, for commands that only read it (feeds, hits, stats, rules backtest):
        a SQLite file that does not exist is refused, not created empty.

        Those need nothing of the config but its ``database``: an operator's shell that
        lacks the daemon's secrets (a Slack token, an SMTP password) must still see
        them. When the config's only problems are such unset variables, and not in
        ``database``, they stand in as "unset" and the database is opened all the same.
        """
        try:
            return Store.open(self.load_config().database, create=False)
        except ConfigError as exc:
            unset = _unset_variables(exc)
            if not unset:
                raise
        stand_ins = dict.fromkeys(unset, "unset")
        config = read_config(self.config_path, environ={**self.environ, **stand_ins},
                             redactor=self.redactor)
        return Store.open(config.database, create=False)


def read_config(path: Path, *, environ: dict[str, str], redactor: Redactor | None = None) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CommandError(
            f"{path}: no such file; pass --config PATH or set WIREWATCH_CONFIG"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from exc
    if redactor is not None:  # secrets are masked in all output from here on
        redactor.add(env_secrets(text, environ=environ))
    config = load_config(text, source=str(path), environ=environ)
    if redactor is not None:
        redactor.add(config_secrets(config, text=text, environ=environ))
    return config


def _unset_variables(error: ConfigError) -> list[str]:
    """The variables ``error`` is only about, or [] when it is about anything else or
    about the database."""
    names: list[str] = []
    for problem in error.problems:
        name = unset_variable(problem.message)
        if name is None or problem.path.split(".")[0].split("[")[0] == "database":
            return []
        names.append(name)
    return names


#: Sets the instance id instead of ``hostname:pid``: for containers that share a
#: hostname (host networking) and so, each its own pid 1, would share the id too.
INSTANCE_ID_ENV = "WIREWATCH_INSTANCE_ID"


def instance_id(environ: Mapping[str, str] | None = None) -> str:
    value = (environ or {}).get(INSTANCE_ID_ENV, "").strip()
    if not value:
        return default_instance_id()
    if len(value) > 200 or not value.isprintable():
        raise CommandError(f"{INSTANCE_ID_ENV}={value[:40]!r}: expected at most 200 printable "
                           "characters, one value per instance")
    return value


#: Seconds a claimed feed stays leased to this instance, over the config's
#: ``feed_lease`` (docs/scaling.md). Not held to ``defaults.timeout`` as the key is (a
#: shorter value is only warned about): tests and experiments use a few seconds so that
#: takeover after a crash is fast.
FEED_LEASE_ENV = "WIREWATCH_FEED_LEASE_SECONDS"


def feed_lease(environ: dict[str, str], config: Config) -> timedelta | None:
    value = environ.get(FEED_LEASE_ENV)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise CommandError(f"{FEED_LEASE_ENV}={value!r}: expected a number of seconds above 0")
    # Not refused, as a short feed_lease is, but an operator who set it in production
    # should hear what it risks.
    timeout = config.defaults.timeout.total_seconds()
    if seconds < timeout:
        logging.getLogger("wirewatch").warning(
            "%s=%s is shorter than defaults.timeout (%gs): a feed whose fetch runs that "
            "long may be polled by another instance too (one extra request, never a second "
            "alert); unset it or set at least %g", FEED_LEASE_ENV, value, timeout, timeout)
    return timedelta(seconds=seconds)


# ----------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    config = ctx.load_config()
    # As start-up does: a notifier refuses some settings only when it is built.
    close_notifiers(build_notifiers(config, stdout=ctx.stdout).values())
    for warning in config.warnings:
        print(f"warning: {warning}", file=ctx.stdout)
    print(
        f"{ctx.config_path}: OK ({len(config.feeds)} feeds, {len(config.rules)} rules, "
        f"{len(config.effective_notifiers())} notifiers)",
        file=ctx.stdout,
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    if args.once:
        return _run(args, ctx, early_hup=[])
    # systemd's ExecReload (SIGHUP) may come while the daemon still starts (opening or
    # upgrading the database, loading the stories); the signal's default action would
    # kill it. Until the reloader takes the signal over, it is noted and acted on then,
    # by the entry point's handler (monitor/entry.py), installed here too for callers
    # that come in through main() itself.
    try:
        previous = signal.signal(signal.SIGHUP, note_hup)
    except ValueError:  # not the main thread: no handler to install
        return _run(args, ctx, early_hup=EARLY_HUPS)
    try:
        return _run(args, ctx, early_hup=EARLY_HUPS)
    finally:
        signal.signal(signal.SIGHUP, previous)


def _run(args: argparse.Namespace, ctx: Context, *, early_hup: list[int]) -> int:
    config = ctx.load_config()
    for warning in config.warnings:
        logging.getLogger("wirewatch").warning("config warning: %s", warning)
    if args.force and not args.once:
        raise CommandError("--force only goes with --once")
    store = ctx.open_store()
    try:
        monitor = Monitor(
            config=config,
            store=store,
            notifiers=build_notifiers(config, stdout=ctx.stdout),
            instance_id=instance_id(ctx.environ),
            feed_lease=feed_lease(ctx.environ, config),
        )
        if args.once:
            return asyncio.run(_run_once(monitor, args, ctx))
        asyncio.run(_run_forever(monitor, ctx, early_hup=early_hup))
        return EXIT_OK
    finally:
        store.close()


async def _run_once(monitor: Monitor, args: argparse.Namespace, ctx: Context) -> int:
    # SIGTERM (cron's or systemd's timeout), SIGINT and SIGHUP (the terminal or ssh
    # session of a run by hand closing) stop the run as an exception inside it, so
    # that what it claimed is given back on the way out.
    interrupted_by: list[signal.Signals] = []
    running = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert running is not None
    handled: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(signum, _interrupt, running, signum, interrupted_by)
        except (ValueError, RuntimeError):  # not the main thread: no handler to install
            continue
        handled.append(signum)
    try:
        with progress_for_once(monitor, ctx.stderr, force=args.force):
            report = await monitor.run_once(
                force=args.force, deliver_timeout=timedelta(seconds=args.deliver_timeout)
            )
    except asyncio.CancelledError:
        if not interrupted_by:
            raise
        signum = interrupted_by[0]
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"wirewatch: stopped by {signum.name}; feed leases and claimed alerts "
                  "released, unsent alerts stay queued for the next run", file=ctx.stderr)
        return 128 + signum
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await monitor.aclose()
    poll, sent = report.poll, report.delivery
    print(
        f"polled {len(poll.outcomes)} feeds: {poll.new_items} new items, {poll.hits} hits, "
        f"{len(poll.errors)} feed errors; alerts sent {sent.sent}, failed {sent.failed}, "
        f"still pending {report.pending_after}",
        file=ctx.stderr,
    )
    for outcome in poll.errors:
        print(f"  feed '{outcome.feed}': {outcome.error}", file=ctx.stderr)
    if sent.failed or report.pending_after:
        return EXIT_UNDELIVERED
    return EXIT_OK


def _interrupt(task: asyncio.Task[int], signum: signal.Signals,
               interrupted_by: list[signal.Signals]) -> None:
    if not interrupted_by:  # a second signal while stopping changes nothing
        interrupted_by.append(signum)
        task.cancel()


async def _run_forever(monitor: Monitor, ctx: Context, *, early_hup: list[int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloader = reloader_for(monitor, path=ctx.config_path, environ=ctx.environ,
                            stdout=ctx.stdout, redactor=ctx.redactor)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    if early_hup:  # a reload asked for during start-up
        early_hup.clear()  # taken: a later run in this process must not see it again
        reloader.request()
    server = ops_server(monitor)
    try:
        await monitor.run_forever(stop, reloader=reloader)
    finally:
        if server is not None:
            server.close()
        await monitor.aclose()


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirewatch",
        description="Newsroom feed monitor: watch rules over feeds, alerts to Slack or email.",
    )
    parser.add_argument("--version", action="version", version=f"wirewatch {__version__}")
    _add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate the config; exit 1 listing every problem")
    check.set_defaults(func=cmd_check)

    run = commands.add_parser("run", help="poll feeds and deliver alerts (daemon, or --once)")
    run.add_argument(
        "--once",
        action="store_true",
        help="poll every feed that is due, deliver, and exit (for cron)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --once: poll every enabled feed whatever its schedule",
    )
    run.add_argument(
        "--deliver-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="with --once: how long to keep retrying deliveries (default 60)",
    )
    run.set_defaults(func=cmd_run)

    add_feeds_command(commands)
    add_report_commands(commands)
    add_rules_commands(commands)
    _accept_global_options_after_command(parser)
    return parser


def _seconds(text: str) -> float:
    # float() also takes "nan", "inf" and negatives, which end in a traceback or
    # a wait that means nothing; they are usage errors.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds from 0, got {text!r}")
    # A timedelta of more overflows (1e20 did, with a traceback).
    if value > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_DURATION.total_seconds():.0f} seconds (about 100 years), "
            f"got {text!r}")
    return value


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: str | None) -> str | None:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--config", metavar="PATH", default=default(None),
                        help="config file (default: $WIREWATCH_CONFIG or ./config.yaml)")
    parser.add_argument("--log-level", default=default("INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default=default("text"), choices=["text", "json"])


def _accept_global_options_after_command(parser: argparse.ArgumentParser) -> None:
    """``wirewatch check --config x`` and ``wirewatch --config x check`` both work.

    Sub-commands get the global options with suppressed defaults, so a value
    given before the command is not overwritten by a default after it.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_global_options(sub, suppress=True)
                _accept_global_options_after_command(sub)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    if stdout is None:
        _escape_undecodable_bytes(sys.stdout)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    env = dict(os.environ if environ is None else environ)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    # Everything printed, logged or alerted passes the redactor: a secret it
    # learned from the config is masked wherever it would turn up.
    redactor = Redactor()
    out = typing.cast(TextIO, RedactingStream(out, redactor))
    err = typing.cast(TextIO, RedactingStream(err, redactor))
    configure_logging(level=args.log_level, fmt=args.log_format, stream=err, redactor=redactor)
    ctx = Context(
        config_path=Path(args.config or env.get("WIREWATCH_CONFIG") or DEFAULT_CONFIG),
        stdout=out,
        stderr=err,
        environ=env,
        redactor=redactor,
    )
    # A command whose exit 1 means something else (rules test: NO MATCH) names
    # the code it gives when it cannot run.
    cannot_run = int(getattr(args, "exit_cannot_run", EXIT_INVALID))
    try:
        code = int(args.func(args, ctx))
        out.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _discard_output(stdout or sys.stdout)
        return EXIT_PIPE
    except ConfigError as exc:
        count = len(exc.problems)
        failure = _Failure(err, as_json=args.log_format == "json")
        failure.error(f"{ctx.config_path}: {count} problem{'s' if count != 1 else ''}:",
                      [str(problem) for problem in exc.problems])
        for warning in exc.warnings:
            failure.warning(f"warning: {warning}")
        return cannot_run
    except (CommandError, StoreError) as exc:
        _Failure(err, as_json=args.log_format == "json").error(f"wirewatch: {exc}")
        return cannot_run
    except SQLAlchemyError as exc:
        # The database opened but failed a query later (a damaged SQLite file, a
        # server that went away): exit 1 with what to do, as for one that cannot open.
        url = ctx.load_config().database
        _Failure(err, as_json=args.log_format == "json").error(
            f"wirewatch: {describe_database_error(url, exc)}")
        return cannot_run
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            out.flush()


def _escape_undecodable_bytes(stream: TextIO) -> None:
    """Let a strict standard output write lone surrogates as ``\\udcff`` escapes.

    Arguments and paths that are not UTF-8 reach Python as lone surrogates
    (``rules test CSTO --title $'\\xff'``, ``--config $'\\xff.yaml'``); echoed to a
    UTF-8 stdout with strict errors they raised UnicodeEncodeError, a traceback with
    exit 1, which ``rules test`` means as NO MATCH. Standard error escapes them already.
    """
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="backslashreplace")


@dataclass
class _Failure:
    """Why a command could not run, on standard error: as text, or with
    ``--log-format json`` as log records, so that a log pipeline parsing every line as
    JSON also reads the lines that say why the daemon did not start."""

    stream: TextIO
    as_json: bool

    def error(self, headline: str, details: Sequence[str] = ()) -> None:
        if not self.as_json:
            print("\n".join([headline, *details]), file=self.stream)
        elif details:
            for detail in details:  # one record per problem, its caret lines included
                log.error("%s", detail)
        else:
            log.error("%s", headline)

    def warning(self, message: str) -> None:
        if self.as_json:
            log.warning("%s", message.removeprefix("warning: "))
        else:
            print(message, file=self.stream)


def _discard_output(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at /dev/null, so that the flush at interpreter exit
    does not fail a second time on the closed pipe and print a traceback."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return  # not a file (tests pass a StringIO)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
