"""The test origin itself: a client that leaves mid-answer prints no traceback."""

from __future__ import annotations

import socket
import time

from tests.origin import Origin, Route


def test_client_leaving_mid_answer_prints_no_traceback(capfd):
    with Origin() as o:
        o.routes["/big"] = Route(body=b"x" * 8_000_000, delay=0.2)
        for _ in range(3):
            sock = socket.create_connection((o.host, o.port))
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            # An RST rather than a FIN: the server's next write fails at once.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()
        deadline = time.monotonic() + 5
        while len(o.gets("/big")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the answers are written (and fail) after the route's delay
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err
