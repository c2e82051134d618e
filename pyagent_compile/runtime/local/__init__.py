"""Running the local target: node processes on loopback (`pyagent up --local`, `status`, `down`).

`stack.py` reads a rendered local stack, `daemon.py` finds or builds `pyagent-node`,
`processes.py` starts and stops node processes, `swarm.py` asks them how they are."""
