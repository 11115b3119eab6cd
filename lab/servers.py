"""Small servers to run inside lab nodes; each prints "ready" once it
listens, so a test never races its own server.

    python lab/servers.py http HOST PORT [--body TEXT]
    python lab/servers.py tcp-echo HOST PORT [--name NAME]
    python lab/servers.py udp-echo HOST PORT [--no-checksum] [--name NAME]

--no-checksum: the UDP echo's replies carry checksum 0 ("none", SO_NO_CHECK).
--name: the server says who it is (TCP: "NAME\n" on accepting a connection;
UDP: each reply starts with "NAME:"), so a client behind a load balancer
knows which backend it reached.
"""
from __future__ import annotations

import argparse
import http.server
import socket
import socketserver
import sys
import threading
from collections.abc import Callable


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under concurrent clients.
    request_queue_size = 128

    def server_bind(self):
        # http.server looks up its own FQDN here, which is slow without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def http_server(host: str, port: int, body: str) -> Callable[[], None]:
    """Listen now; the returned function serves (each function below alike)."""
    payload = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return QuietHTTPServer((host, port), Handler).serve_forever


def tcp_echo(host: str, port: int, name: str | None = None) -> Callable[[], None]:
    sock = socket.create_server((host, port), reuse_port=True, backlog=256)

    def serve(conn: socket.socket) -> None:
        with conn:
            if name:
                conn.sendall(f"{name}\n".encode())
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept_forever() -> None:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    return accept_forever


SO_NO_CHECK = 11  # asm-generic/socket.h: send UDP with checksum 0


def udp_echo(host: str, port: int, no_checksum: bool = False, name: str | None = None) -> Callable[[], None]:
    prefix = f"{name}:".encode() if name else b""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if no_checksum:
        sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    sock.bind((host, port))

    def echo_forever() -> None:
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(prefix + data, peer)

    return echo_forever


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab/servers.py", epilog="SPEC + SPEC + ...: several servers in one process")
    p.add_argument("kind", choices=("http", "tcp-echo", "udp-echo"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--body", default="hello from the backend\n")
    p.add_argument("--no-checksum", action="store_true", help="udp-echo: reply with UDP checksum 0")
    p.add_argument("--name", help="tcp-echo, udp-echo: say who answers")
    return p


def listen(args) -> Callable[[], None]:
    if args.kind == "http":
        return http_server(args.host, args.port, args.body)
    if args.kind == "tcp-echo":
        return tcp_echo(args.host, args.port, args.name)
    return udp_echo(args.host, args.port, args.no_checksum, args.name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    specs: list[list[str]] = [[]]
    for word in argv:
        if word == "+":
            specs.append([])
        else:
            specs[-1].append(word)
    # Every server listens before "ready"; then each serves in its thread.
    serving = [listen(parser().parse_args(spec)) for spec in specs]
    print("ready", flush=True)
    for serve in serving[1:]:
        threading.Thread(target=serve, daemon=True).start()
    try:
        serving[0]()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
