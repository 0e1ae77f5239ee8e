"""The server's listening socket, bound before anything slow is imported or loaded: clients
connect at once (``/health`` says when the model is ready), and a busy port is one error before
the server announces itself."""

from __future__ import annotations

import os
import socket


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``.

    Raises:
        OSError: the port is taken or the address is not this machine's, in one line.
    """
    try:
        return socket.create_server((host, port))
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise OSError(f"cannot listen on {host}:{port}: {reason}") from None
