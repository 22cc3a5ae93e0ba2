# Attacks on the web port that need what Deno's sockets do not offer: a
# reset (SO_LINGER 0) and a chosen source address (127.0.0.x). Run by
# tests/web_attack_test.ts and bench/web_attack.ts.
#
#   python3 _web_attack.py resets PORT COUNT
#       COUNT connections that send a WebSocket upgrade request and reset
#       before the answer; prints "done".
#   python3 _web_attack.py hold PORT KIND COUNT ADDRESS...
#       keeps COUNT connections of KIND open from each source ADDRESS,
#       opening a new one for each the server closes, until stdin closes:
#         idle     connect and send nothing
#         trickle  send a request head one byte a second, never ending it
#         stall    open a WebSocket and never send the token
#       prints "ready" once each of the first COUNT per address connected
#       (or was closed), then, at the end, "opened N".

import os
import selectors
import socket
import struct
import sys
import time

REQUEST = (
    "GET /midi HTTP/1.1\r\n"
    "Host: 127.0.0.1:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)


def resets(port, count):
    request = REQUEST.format(port=port).encode()
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            s.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except OSError:
            pass
        s.close()
    print("done", flush=True)


def hold(port, kind, count, addresses):
    request = REQUEST.format(port=port).encode()
    trickle = b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100000
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    conns = {}
    opened = 0
    ready = False
    total = 0
    waiting = 0

    def open_one(address):
        nonlocal opened, waiting
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((address, 0))
        try:
            s.connect((("127.0.0.1", port)))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        opened += 1
        conns[s] = {
            "address": address,
            "sent": 0,
            "connected": False,
            "first": opened <= total,
        }
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, s)

    total = count * len(addresses)
    waiting = total
    for address in addresses:
        for _ in range(count):
            open_one(address)
    next_tick = time.monotonic() + 1
    while True:
        timeout = max(0, next_tick - time.monotonic())
        for key, events in sel.select(timeout):
            if key.data is None:
                if not os.read(sys.stdin.fileno(), 1024):
                    print(f"opened {opened}", flush=True)
                    return
                continue
            s = key.data
            state = conns.get(s)
            if state is None:
                continue
            if events & selectors.EVENT_WRITE and not state["connected"]:
                state["connected"] = True
                if state["first"]:
                    state["first"] = False
                    waiting -= 1
                sel.modify(s, selectors.EVENT_READ, s)
                try:
                    if kind == "stall":
                        s.send(request)
                    elif kind == "trickle":
                        s.send(trickle[:1])
                        state["sent"] = 1
                except OSError:
                    pass
            if events & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    if state["first"]:
                        state["first"] = False
                        waiting -= 1
                    sel.unregister(s)
                    del conns[s]
                    s.close()
                    open_one(state["address"])
        if time.monotonic() >= next_tick:
            next_tick += 1
            if kind == "trickle":
                for s, state in list(conns.items()):
                    if state["connected"]:
                        try:
                            s.send(trickle[state["sent"]:state["sent"] + 1])
                            state["sent"] += 1
                        except OSError:
                            pass
        if not ready and waiting <= 0:
            ready = True
            print("ready", flush=True)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "resets":
        resets(port, int(sys.argv[3]))
    else:
        hold(port, sys.argv[3], int(sys.argv[4]), sys.argv[5:])


main()
