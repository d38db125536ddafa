"""`backup-monitor serve`: the Slack interactivity endpoint (interactions.py) over HTTP, with the standard
library's ThreadingHTTPServer: POST /slack/interactions, 404 elsewhere, bodies capped at MAX_BODY_BYTES.

For a monitor run by cron behind its own HTTPS reverse proxy (Slack calls https URLs only), and for the tests.
Ctrl-C or SIGTERM stops it."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING, Any

from backup_monitor.helptext import epilog, wrapped

if TYPE_CHECKING:  # the endpoint imports slack-sdk (its whole package): only `serve` may pay for it, not `check`
    from backup_monitor.interactions import Endpoint

logger = logging.getLogger(__name__)

PATH = "/slack/interactions"
READ_TIMEOUT_SECONDS = 5.0  # a client that sends its body this slowly is dropped


def make_server(endpoint: Endpoint, host: str, port: int) -> ThreadingHTTPServer:
    from backup_monitor.interactions import MAX_BODY_BYTES, Response

    """A server (not started) answering PATH with `endpoint`; port 0 picks a free one."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "backup-monitor"
        sys_version = ""
        timeout = READ_TIMEOUT_SECONDS

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the endpoint logs what it did (never the body or the signature)."""

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def _plain(self, status: int, text: str) -> None:
            self.close_connection = True
            self._send(Response(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()))

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._plain(404, "not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._plain(411, "a Content-Length is required\n")
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self._plain(413, "request too large\n")
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self.close_connection = True
                return
            self._send(endpoint.handle(dict(self.headers.items()), body))

        def do_GET(self) -> None:
            self._plain(404 if self.path.split("?", 1)[0] != PATH else 405, "POST Slack's interaction requests here\n")

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def run(endpoint: Endpoint, host: str, port: int) -> int:
    """Serve until Ctrl-C or SIGTERM; 0 then."""
    server = make_server(endpoint, host, port)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    print(f"backup-monitor: listening on http://{bound_host}:{bound_port}{PATH}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print("backup-monitor: stopped", file=sys.stderr, flush=True)
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="answer the Slack app's buttons (interactivity requests) over HTTP",
        description=wrapped(
            "Serve the Slack interactivity endpoint on POST /slack/interactions: Acknowledge, Silence 24 h, "
            "Unsilence and Get download link. Slack needs an https URL: put it behind your own reverse proxy. "
            "Reads the same state and Scalingo settings as `check`, and the signing secret."
        ),
        epilog=epilog("serve", ((0, "stopped by Ctrl-C or SIGTERM"), (2, "bad configuration or usage"))),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--port", type=int, required=True, help="the TCP port to listen on (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")


def main(args: argparse.Namespace) -> int:
    """`backup-monitor serve`: 2 on a configuration error (printed), else serve."""
    import os

    from backup_monitor.config import ConfigError, Settings
    from backup_monitor.interactions import build_endpoint

    try:
        endpoint = build_endpoint(Settings.from_env(os.environ))
    except ConfigError as exc:
        print(f"backup-monitor: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return run(endpoint, args.host, args.port)
    except OSError as exc:
        print(f"backup-monitor: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
