#!/usr/bin/env python3
"""A userspace link between two TUN devices, for tests and benchmarks.

This kernel has no sch_netem, so delay, jitter, stalls and loss are made
here: packets read from one TUN device are written to the other after a
delay this process chooses, in order (a packet never overtakes the one
before it), the way a Wi-Fi link delays them.

Usage: python3 tests/_wan.py TUN_A TUN_B MODEL_JSON

MODEL_JSON: {"delay_ms": 4, "jitter_ms": 2, "stall_every_ms": 500,
"stall_ms": [20, 30], "loss": 0, "seed": 1}, the same model both ways:
- delay_ms: the one-way base delay;
- jitter_ms: the mean of an exponential extra delay (0: none);
- stall_every_ms: about how often the link stalls (0: never), and
  stall_ms: for how long, uniformly between the two bounds; a packet due
  during a stall goes when it ends;
- loss: the probability that a packet is lost.

It creates both devices, prints "ready" and then reads commands on stdin,
one a line: "down" (every packet is lost until "up"), "up", "stats" (prints
a JSON line of counts), "quit". It stops at end of input too. Root only.
"""

import fcntl
import heapq
import json
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Direction:
    """One way through the link: its own stalls, its own order."""

    def __init__(self, model, rng, now):
        self.rng = rng
        self.delay = model.get("delay_ms", 0) / 1000
        self.jitter = model.get("jitter_ms", 0) / 1000
        self.every = model.get("stall_every_ms", 0) / 1000
        low, high = model.get("stall_ms", [0, 0])
        self.stall_low = low / 1000
        self.stall_high = high / 1000
        self.loss = model.get("loss", 0)
        self.last_release = 0.0
        self.stall_start = float("inf")
        self.stall_end = float("inf")
        if self.every > 0:
            self._next_stall(now)
        self.passed = 0
        self.lost = 0

    def _next_stall(self, after):
        start = after + self.every * self.rng.uniform(0.8, 1.2)
        self.stall_start = start
        self.stall_end = start + self.rng.uniform(self.stall_low, self.stall_high)

    def release_time(self, now):
        """When a packet that arrives now leaves, or None when it is lost."""
        if self.loss > 0 and self.rng.random() < self.loss:
            self.lost += 1
            return None
        due = now + self.delay
        if self.jitter > 0:
            due += self.rng.expovariate(1 / self.jitter)
        if self.every > 0:
            # Stalls that ended before this packet is due touched nothing.
            while self.stall_end <= due:
                self._next_stall(self.stall_start)
            if self.stall_start <= due:
                due = self.stall_end
        due = max(due, self.last_release)
        self.last_release = due
        self.passed += 1
        return due


def main():
    name_a, name_b, model_json = sys.argv[1:4]
    model = json.loads(model_json)
    rng = random.Random(model.get("seed", 1))
    a = open_tun(name_a)
    b = open_tun(name_b)
    now = time.monotonic()
    ways = {a: (b, Direction(model, rng, now)), b: (a, Direction(model, rng, now))}
    queue = []
    seq = 0
    down = False
    dropped_down = 0
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            if fd == stdin:
                line = sys.stdin.readline()
                command = line.strip()
                if line == "" or command == "quit":
                    return
                if command == "down":
                    down = True
                elif command == "up":
                    down = False
                elif command == "stats":
                    stats = {
                        "a_to_b": {"passed": ways[a][1].passed, "lost": ways[a][1].lost},
                        "b_to_a": {"passed": ways[b][1].passed, "lost": ways[b][1].lost},
                        "dropped_down": dropped_down,
                        "down": down,
                    }
                    print(json.dumps(stats), flush=True)
                continue
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if down:
                    dropped_down += 1
                    continue
                out, way = ways[fd]
                due = way.release_time(now)
                if due is None:
                    continue
                seq += 1
                heapq.heappush(queue, (due, seq, out, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, packet = heapq.heappop(queue)
            try:
                os.write(out, packet)
            except OSError:
                pass  # the other side is not up (yet): the packet is lost


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
