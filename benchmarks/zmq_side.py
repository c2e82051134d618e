"""One ZeroMQ node for benchmarks/mesh.py, run in the benchmark's pyzmq venv: the anchor's side
of the comparison, speaking the same line protocol as `pyagent-mesh-bench`.

It binds a PUB socket on a port the kernel picks and prints `listening ADDR`; then, on stdin:
`seed ADDR` (SUB-connect to another node's PUB), `publish ID BYTES` (send one message to every
subscriber: ZeroMQ's fan-out over plain TCP), `quit`. It prints `sent ID NS` and, for each
message received, `recv ID SENT_NS RECV_NS`.
"""

from __future__ import annotations

import sys
import threading
import time

import zmq


def main() -> None:
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 100_000)
    out = threading.Lock()

    def say(line: str) -> None:
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    say(f"listening 127.0.0.1:{port}")
    commands: list[str] = []
    ready = threading.Condition()

    def read_stdin() -> None:
        for line in sys.stdin:
            with ready:
                commands.append(line.strip())
                ready.notify()
        with ready:
            commands.append("quit")
            ready.notify()

    threading.Thread(target=read_stdin, daemon=True).start()
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    while True:
        with ready:
            pending, commands[:] = list(commands), []
        for command in pending:
            words = command.split()
            if words[:1] == ["seed"]:
                sub.connect(f"tcp://{words[1]}")
            elif words[:1] == ["publish"]:
                sent = time.time_ns()
                pub.send(f"{words[1]} {sent} ".encode() + b"x" * int(words[2]))
                say(f"sent {words[1]} {sent}")
            elif words[:1] == ["quit"]:
                return
        # Short polls so that commands are taken promptly; receiving is what is measured.
        for _ in poller.poll(timeout=5):
            message = sub.recv()
            ident, sent, _ = message.split(b" ", 2)
            say(f"recv {ident.decode()} {sent.decode()} {time.time_ns()}")


if __name__ == "__main__":
    main()
