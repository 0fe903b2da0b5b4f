"""Helpers the Python bench scripts share: a free port, and waiting for a server to answer."""
import socket, sys, time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, what, timeout=120):
    """Seconds until the server on `port` answers PING; exits if `proc` dies or `timeout` passes
    (`what` names the server, and where its log is, in the message)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            redis.Redis(port=port).ping()
            return time.time() - t0
        except redis.ConnectionError:
            if proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode}")
            time.sleep(0.02)
    sys.exit(f"{what} did not answer within {timeout} s")
