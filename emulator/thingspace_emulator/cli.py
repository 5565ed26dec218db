"""thingspace-emulator: run the emulator until SIGTERM or SIGINT."""

import argparse
import gc
import signal
import sys
import threading
from typing import Optional

import yaml

from . import __version__
from .core import Config, Emulator
from .fanout import MAX_ATTEMPTS, is_loopback_host
from .fleet import load_fleet
from .persistence import write_atomically
from .server import serve, shutdown

DEFAULT_PORT = 8780


def retry_delays(text: str) -> tuple:
    """--callback-retry-delays: three comma-separated seconds, each 0 or more."""
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = ()
    if len(delays) != MAX_ATTEMPTS - 1 or not all(0 <= delay < float("inf") for delay in delays):
        raise argparse.ArgumentTypeError(f"expected {MAX_ATTEMPTS - 1} comma-separated seconds, each 0 or more, such as 60,300,900; not {text!r}")
    return delays


def clock_speed(text: str) -> float:
    """--clock-speed: a positive finite number."""
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not 0 < speed < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, such as 3600; not {text!r}")
    return speed


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="thingspace-emulator", description="A local ThingSpace M2M server for demos, tests and offline playbook runs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s; loopback only unless --allow-remote)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind, 0 for a free one (default %(default)s)")
    parser.add_argument("--fleet", metavar="FILE", help="fleet file, YAML or .json (default: the built-in demo fleet)")
    parser.add_argument("--state", metavar="FILE", help="keep state in this JSON file across restarts")
    parser.add_argument("--url-file", metavar="FILE", help="once listening, write the base URL to this file")
    parser.add_argument("--access-token-ttl", type=float, default=defaults.access_token_ttl, help="bearer token lifetime, seconds (default %(default)s)")
    parser.add_argument("--session-idle-ttl", type=float, default=defaults.session_idle_ttl, help="session token idle timeout, seconds (default %(default)s)")
    parser.add_argument("--sms-expiry", type=float, default=defaults.sms_expiry, help="seconds before an undeliverable SMS expires (default %(default)s)")
    parser.add_argument("--delivery-delay", type=float, default=defaults.delivery_delay, help="seconds before SMSDeliveryConfirmation (default %(default)s)")
    parser.add_argument("--device-page-size", type=int, default=defaults.device_page_size, help="devices per device-list page (default %(default)s)")
    parser.add_argument("--callback-workers", type=int, default=defaults.callback_workers, help="callback sender threads (default %(default)s)")
    default_delays = ",".join("%g" % delay for delay in defaults.callback_retry_delays)
    parser.add_argument("--callback-retry-delays", type=retry_delays, default=defaults.callback_retry_delays, metavar="S,S,S",
                        help=f"seconds before attempts 2, 3 and 4 of a callback (default {default_delays})")
    parser.add_argument("--clock-speed", type=clock_speed, default=defaults.clock_speed, metavar="X",
                        help="emulated seconds per real second (delivery delay, SMS expiry, reply delays) (default %(default)s; 3600: a second is an hour)")
    parser.add_argument("--log-size", type=int, default=defaults.log_size, help="entries kept in the request and callback logs (default %(default)s)")
    parser.add_argument("--allow-any-callback-port", action="store_true", help="accept any port for loopback callback URLs")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host and non-loopback callback URLs")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request to standard error")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the listening line")
    return parser


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        parser.error(f"--host {args.host} is not a loopback address; pass --allow-remote to bind it")
    try:
        fleet = load_fleet(args.fleet)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"thingspace-emulator: cannot load fleet {args.fleet}: {exc}", file=sys.stderr)
        return 2
    # The fleet lives as long as the process: keep the cyclic GC from rescanning it (a full pass over
    # a 100,000-device fleet stalls every thread for most of a second).
    gc.collect()
    gc.freeze()
    config = Config(
        access_token_ttl=args.access_token_ttl,
        session_idle_ttl=args.session_idle_ttl,
        sms_expiry=args.sms_expiry,
        delivery_delay=args.delivery_delay,
        device_page_size=args.device_page_size,
        allow_any_callback_port=args.allow_any_callback_port,
        allow_remote=args.allow_remote,
        callback_workers=args.callback_workers,
        log_size=args.log_size,
        callback_retry_delays=args.callback_retry_delays,
        clock_speed=args.clock_speed,
    )
    try:
        server = serve(Emulator(config, fleet, args.state), args.host, args.port, args.verbose)
    except (OSError, ValueError) as exc:
        print(f"thingspace-emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"ThingSpace emulator listening on {server.url}", flush=True)
    if args.url_file:
        write_atomically(args.url_file, server.url)
    if not args.quiet:
        devices = sum(len(account.devices) for account in fleet.accounts.values())
        print(f"fleet: {len(fleet.accounts)} account(s), {devices} device(s); admin API at {server.url}/_emulator/", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    shutdown(server)
    return 0
