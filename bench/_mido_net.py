"""Python peers for bench/net_compare.ts (not meant to be run by hand).

Usage: python3 bench/_mido_net.py STACK ROLE SCENARIO PORT COUNT ROUNDS CLIENTS

STACK    mido: mido.sockets (PortServer, accept, connect, SocketPort)
         pyraw: plain Python sockets with TCP_NODELAY, no parsing
ROLE     server (binds 127.0.0.1 port 0, prints "READY <port>") or client
SCENARIO throughput | rtt | fanout (protocols in net_compare.ts's header)

mido 1.2.10's SocketPort reads one byte at a time from a *buffered* file
(socket.makefile('rb')) but asks select() whether more is readable: bytes
that the buffer already took from the socket are not parsed until more data
arrives, so the last message of a burst (or the only one, in a ping-pong)
is stranded and receive() never returns. To measure mido at all, the one
method SocketPort._receive is replaced by one that reads the raw socket with
recv() and feeds mido's own Parser (see fixed_receive). Everything else is
mido as shipped: Message objects, SocketPort.send (bin(), buffered write,
flush; no TCP_NODELAY), BaseInput.receive (polls, sleeping 1 ms between
polls), PortServer.accept, and MultiPort.send for the broadcast.

Every loop is bounded: a watchdog ends the process after DEADLINE seconds.
"""

import json
import os
import select
import socket
import sys
import threading
import time

import mido
import mido.ports
import mido.sockets

DEADLINE = 90.0
HOST = "127.0.0.1"


def fixed_receive(self, block=True):
    """SocketPort._receive without the stranding: raw recv() into the parser."""
    while mido.sockets._is_readable(self._socket):
        data = self._socket.recv(65536)
        if not data:
            self.close()
            break
        self._parser.feed(data)


mido.sockets.SocketPort._receive = fixed_receive


def watchdog():
    timer = threading.Timer(DEADLINE, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


def note(i):
    return mido.Message("note_on", channel=i % 16, note=i % 128,
                        velocity=1 + i % 127)


NOTE_BYTES = [bytes(note(i).bytes()) for i in range(128)]


def report(**fields):
    print(json.dumps(fields), flush=True)


# ---------------------------------------------------------------- mido ----

def mido_server(scenario, count, rounds, clients):
    server = mido.sockets.PortServer(HOST, 0)
    port_number = server._socket.getsockname()[1]
    print(f"READY {port_number}", flush=True)
    if scenario == "throughput":
        port = server.accept()
        stop = mido.Message("stop")
        for _ in range(rounds):
            got = 0
            while got < count:
                if port.receive().type == "note_on":
                    got += 1
            port.send(stop)
        drain_until_closed(port)
    elif scenario == "rtt":
        port = server.accept()
        for msg in port:
            port.send(msg)
    elif scenario == "fanout":
        for _ in range(clients):
            # Two statements: accept() replaces server.ports with a new list.
            port = server.accept()
            server.ports.append(port)
        server.send(mido.Message("start"))
        messages = [note(i) for i in range(count)]
        for _ in range(rounds):
            wait_for_go(server.ports)
            for msg in messages:
                server.send(msg)
        for port in server.ports:
            drain_until_closed(port)
    server.close()


def drain_until_closed(port):
    for _ in port:
        pass


def wait_for_go(ports):
    while True:
        for port in ports:
            for msg in port.iter_pending():
                if msg.type == "continue":
                    return
        mido.ports.sleep()


def mido_client(scenario, port_number, count, rounds, clients):
    if scenario == "throughput":
        port = mido.sockets.connect(HOST, port_number)
        messages = [note(i) for i in range(count)]
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for msg in messages:
                port.send(msg)
            while port.receive().type != "stop":
                pass
            times.append(time.perf_counter() - start)
        port.close()
        report(times=times)
    elif scenario == "rtt":
        port = mido.sockets.connect(HOST, port_number)
        samples = []
        for i in range(count + rounds):
            msg = note(i)
            start = time.perf_counter()
            port.send(msg)
            port.receive()
            if i >= rounds:
                samples.append(time.perf_counter() - start)
        port.close()
        report(samples=samples)
    elif scenario == "fanout":
        ports = [mido.sockets.connect(HOST, port_number)
                 for _ in range(clients)]
        counts = [0] * clients
        ready = 0
        while ready < clients:
            for port in ports:
                for msg in port.iter_pending():
                    if msg.type == "start":
                        ready += 1
            mido.ports.sleep()
        go = mido.Message("continue")
        times = []
        for r in range(rounds):
            want = count * (r + 1)
            start = time.perf_counter()
            ports[0].send(go)
            done = 0
            while done < clients:
                done = 0
                for i, port in enumerate(ports):
                    for msg in port.iter_pending():
                        counts[i] += 1
                    if counts[i] >= want:
                        done += 1
                if done < clients:
                    mido.ports.sleep()
            times.append(time.perf_counter() - start)
        for port in ports:
            port.close()
        report(times=times)


# ---------------------------------------------------------- raw Python ----

def tuned(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def raw_listen():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    print(f"READY {listener.getsockname()[1]}", flush=True)
    return listener


def recv_exactly(sock, n):
    got = 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            raise EOFError("peer closed")
        got += len(data)


def raw_server(scenario, count, rounds, clients):
    listener = raw_listen()
    buffer = bytearray(65536)
    if scenario == "throughput":
        sock = tuned(listener.accept()[0])
        for _ in range(rounds):
            got = 0
            while got < 3 * count:
                n = sock.recv_into(buffer)
                if n == 0:
                    return
                got += n
            sock.sendall(b"\xfc")
        while sock.recv_into(buffer):
            pass
    elif scenario == "rtt":
        sock = tuned(listener.accept()[0])
        while True:
            n = sock.recv_into(buffer)
            if n == 0:
                break
            sock.sendall(buffer[:n])
    elif scenario == "fanout":
        socks = [tuned(listener.accept()[0]) for _ in range(clients)]
        for sock in socks:
            sock.sendall(b"\xfa")
        for _ in range(rounds):
            readable, _, _ = select.select(socks, [], [])
            for sock in readable:
                sock.recv_into(buffer)
            for i in range(count):
                data = NOTE_BYTES[i % 128]
                for sock in socks:
                    sock.sendall(data)
        for sock in socks:
            while sock.recv_into(buffer):
                pass


def raw_client(scenario, port_number, count, rounds, clients):
    def connect():
        return tuned(socket.create_connection((HOST, port_number)))

    if scenario == "throughput":
        sock = connect()
        data = [NOTE_BYTES[i % 128] for i in range(count)]
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for chunk in data:
                sock.sendall(chunk)
            recv_exactly(sock, 1)
            times.append(time.perf_counter() - start)
        sock.close()
        report(times=times)
    elif scenario == "rtt":
        sock = connect()
        samples = []
        for i in range(count + rounds):
            start = time.perf_counter()
            sock.sendall(NOTE_BYTES[i % 128])
            recv_exactly(sock, 3)
            if i >= rounds:
                samples.append(time.perf_counter() - start)
        sock.close()
        report(samples=samples)
    elif scenario == "fanout":
        socks = [connect() for _ in range(clients)]
        for sock in socks:
            recv_exactly(sock, 1)
        buffer = bytearray(65536)
        got = {sock: 0 for sock in socks}
        times = []
        for r in range(rounds):
            want = 3 * count * (r + 1)
            waiting = set(socks)
            start = time.perf_counter()
            socks[0].sendall(b"\xfb")
            while waiting:
                readable, _, _ = select.select(list(waiting), [], [])
                for sock in readable:
                    got[sock] += sock.recv_into(buffer)
                    if got[sock] >= want:
                        waiting.discard(sock)
            times.append(time.perf_counter() - start)
        for sock in socks:
            sock.close()
        report(times=times)


def main():
    stack, role, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
    port_number, count, rounds, clients = map(int, sys.argv[4:8])
    watchdog()
    if stack == "mido" and role == "server":
        mido_server(scenario, count, rounds, clients)
    elif stack == "mido":
        mido_client(scenario, port_number, count, rounds, clients)
    elif role == "server":
        raw_server(scenario, count, rounds, clients)
    else:
        raw_client(scenario, port_number, count, rounds, clients)


if __name__ == "__main__":
    main()
