"""A tiny HTTP/1.1 keep-alive server for the sensor's kernel tests.

GET /sleep/<ms>/... answers after sleeping <ms> milliseconds, with X-Handler-Ms: the time from
before the request line was read to just before the response (an upper bound of the latency the
sensor should report, whatever the scheduler did meanwhile); anything else answers 200 with a short
body, or 404 for paths under /missing. --tls CERT KEY serves HTTPS through Python's ssl module
(libssl loaded at run time). Binds to --bind (IPv4 or IPv6) and --port.
"""
import argparse
import http.server
import socket
import ssl
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self):
        self._t0 = time.monotonic()
        super().handle_one_request()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.split("/")
        if len(parts) > 2 and parts[1] == "sleep":
            time.sleep(int(parts[2]) / 1000.0)
        status = 404 if self.path.startswith("/missing") else 200
        body = b"ok\n"
        handler_ms = (time.monotonic() - self._t0) * 1000.0
        self.send_response(status)
        self.send_header("X-Handler-Ms", f"{handler_ms:.3f}")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    a = p.parse_args()
    if ":" in a.bind:
        Server.address_family = socket.AF_INET6
    srv = Server((a.bind, a.port), Handler)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
