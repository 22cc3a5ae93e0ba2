"""The hub a mido user would write, for bench/hub_compare.ts (not meant to be
run by hand).

Usage: python3 bench/_mido_hub.py

mido 1.2.10's PortServer, with accept() in a thread, iter_pending() over the
clients, each message sent to every other client, and a 1 ms sleep when
nothing was pending. Two things are changed so that it can be measured at
all: SocketPort._receive reads the raw socket into mido's own Parser (as
mido 1.3 does; 1.2.10's buffered read strands the last message of a burst),
and the listen backlog is 128 (1.2.10's default of 1 makes a burst of
connects wait seconds for the kernel's SYN retries).

Prints "READY <port>" once listening; ends when stdin closes.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import _mido_net  # noqa: E402  (patches SocketPort._receive)
import mido.sockets  # noqa: E402

server = mido.sockets.PortServer("127.0.0.1", 0, backlog=128)
print(f"READY {server._socket.getsockname()[1]}", flush=True)
clients = []
lock = threading.Lock()


def accept_forever():
    while True:
        client = server.accept()
        with lock:
            clients.append(client)


def stop_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=accept_forever, daemon=True).start()
threading.Thread(target=stop_when_stdin_closes, daemon=True).start()

while True:
    idle = True
    with lock:
        current = list(clients)
    for client in current:
        if client.closed:
            with lock:
                if client in clients:
                    clients.remove(client)
            continue
        for msg in client.iter_pending():
            idle = False
            for other in current:
                if other is not client and not other.closed:
                    try:
                        other.send(msg)
                    except OSError:
                        other.close()
    if idle:
        time.sleep(0.001)
