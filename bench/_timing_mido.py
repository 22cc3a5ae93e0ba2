"""mido's socket client as a listener for bench/timing_compare.ts.

python3 bench/_timing_mido.py HOST PORT COUNT

Connects with mido.sockets.connect (mido 1.2.10) and reads with mido's
Parser from the port's socket, as the README advises (1.2.10's receive()
strands the last message of a burst). Prints "ready", then
{"arrived": [[index, ms], ...]} once COUNT notes came or 3 s after the last
(60 s for the first).
Note i is note_on, note i % 128, velocity 1 + (i >> 7) % 127.
"""

import json
import socket
import sys
import time

import mido
import mido.sockets

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = mido.sockets.connect(host, port)
sock = client._socket
sock.settimeout(60.0)
parser = mido.Parser()
arrived = []
print("ready", flush=True)
while len(arrived) < count:
    try:
        data = sock.recv(65536)
    except socket.timeout:
        break
    if not data:
        break
    at = time.time() * 1000
    sock.settimeout(3.0)
    parser.feed(data)
    for msg in parser:
        if msg.type == "note_on":
            arrived.append([msg.note + 128 * (msg.velocity - 1), at])
print(json.dumps({"arrived": arrived}), flush=True)
