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


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under concurrent clients.
    request_queue_size = 128

    def server_bind(self):
        # http.server looks up its own FQDN here, which is slow without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def http_server(host: str, port: int, body: str) -> None:
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

    server = QuietHTTPServer((host, port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def tcp_echo(host: str, port: int, name: str | None = None) -> None:
    sock = socket.create_server((host, port), reuse_port=True, backlog=256)
    print("ready", flush=True)

    def serve(conn: socket.socket) -> None:
        with conn:
            if name:
                conn.sendall(f"{name}\n".encode())
            while data := conn.recv(65536):
                conn.sendall(data)

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


SO_NO_CHECK = 11  # asm-generic/socket.h: send UDP with checksum 0


def udp_echo(host: str, port: int, no_checksum: bool = False, name: str | None = None) -> None:
    prefix = f"{name}:".encode() if name else b""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if no_checksum:
        sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    sock.bind((host, port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(prefix + data, peer)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lab/servers.py")
    p.add_argument("kind", choices=("http", "tcp-echo", "udp-echo"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--body", default="hello from the backend\n")
    p.add_argument("--no-checksum", action="store_true", help="udp-echo: reply with UDP checksum 0")
    p.add_argument("--name", help="tcp-echo, udp-echo: say who answers")
    args = p.parse_args(argv)
    try:
        if args.kind == "http":
            http_server(args.host, args.port, args.body)
        elif args.kind == "tcp-echo":
            tcp_echo(args.host, args.port, args.name)
        else:
            udp_echo(args.host, args.port, args.no_checksum, args.name)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
