#!/usr/bin/env python3
"""
linkem: a user-space link emulator for the NeuroShard testbed, for kernels without sch_netem.

It owns one TAP device per node (the runner moves each into the node's network namespace) and switches
Ethernet frames between them like a learning bridge, applying per group pair: one-way delay, jitter
(uniform +-jitter, per-pair FIFO kept, as a real link does not reorder), random loss, and partitions
(silent drop, as a cut link does). Bandwidth caps are the kernel's (tbf on each node's interface).

Config (JSON file, argv[1]):
  {"ports": [{"tap": "tb0", "group": "eu"}, ...],
   "pairs": {"eu>us": {"delayMs": 75, "jitterMs": 5, "lossPct": 0.5}, "*": {...}},
   "seed": 1, "stats": "/path/stats.json"}
Control (stdin, one command a line): "partition A B" (groups, both directions), "heal", "stats", "quit".
Prints "ready" once every TAP exists.
"""
import fcntl, heapq, json, os, random, selectors, struct, sys, time

TUNSETIFF = 0x400454ca
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main():
    cfg = json.load(open(sys.argv[1]))
    rng = random.Random(cfg.get('seed', 1))
    ports = cfg['ports']
    fds = [open_tap(p['tap']) for p in ports]
    groups = [p['group'] for p in ports]
    pairs = cfg.get('pairs', {})

    def profile(a, b):
        return pairs.get(f'{a}>{b}') or pairs.get(f'{a}>*') or pairs.get(f'*>{b}') or pairs.get('*') or {}

    prof = [[profile(groups[i], groups[j]) for j in range(len(ports))] for i in range(len(ports))]
    cut = set()  # (group, group) pairs that are partitioned
    macs = {}    # learned source MAC -> port
    heap = []    # (due, seq, port, frame)
    last_due = {}
    seq = 0
    stats = {'frames_in': 0, 'bytes_in': 0, 'delivered': 0, 'bytes_delivered': 0, 'lost': 0, 'cut': 0, 'overflow': 0,
             # how late frames left the emulator after their due time: an emulator starved of CPU stalls
             # every link at once, which the nodes see as a network outage (ms; counts above 10/100/1000 ms)
             'late_max_ms': 0.0, 'late_10ms': 0, 'late_100ms': 0, 'late_1s': 0}
    sel = selectors.DefaultSelector()
    for i, fd in enumerate(fds):
        sel.register(fd, selectors.EVENT_READ, i)
    sel.register(sys.stdin, selectors.EVENT_READ, 'ctl')
    print('ready', flush=True)

    def write_stats():
        if cfg.get('stats'):
            with open(cfg['stats'], 'w') as f:
                json.dump({**stats, 'queued': len(heap)}, f)

    running = True
    while running:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            due, _, j, frame = heapq.heappop(heap)
            late = (now - due) * 1000
            if late > stats['late_max_ms']:
                stats['late_max_ms'] = round(late, 1)
            if late > 10:
                stats['late_10ms'] += 1
                if late > 100:
                    stats['late_100ms'] += 1
                    if late > 1000:
                        stats['late_1s'] += 1
            try:
                os.write(fds[j], frame)
                stats['delivered'] += 1
                stats['bytes_delivered'] += len(frame)
            except (BlockingIOError, OSError):
                stats['overflow'] += 1
        timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else 1.0
        for key, _ in sel.select(timeout):
            if key.data == 'ctl':
                line = sys.stdin.readline()
                if not line:
                    running = False
                    break
                words = line.split()
                if not words:
                    continue
                if words[0] == 'partition' and len(words) == 3:
                    cut.add((words[1], words[2]))
                    cut.add((words[2], words[1]))
                elif words[0] == 'heal':
                    cut.clear()
                elif words[0] == 'quit':
                    running = False
                write_stats()
                print('ok', words[0], flush=True)
                continue
            i = key.data
            for _ in range(64):
                try:
                    frame = os.read(fds[i], 65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if not frame:
                    break
                stats['frames_in'] += 1
                stats['bytes_in'] += len(frame)
                dst, src = frame[0:6], frame[6:12]
                macs[src] = i
                if dst[0] & 1 or dst not in macs:
                    outs = [j for j in range(len(fds)) if j != i]
                else:
                    outs = [macs[dst]] if macs[dst] != i else []
                t = time.monotonic()
                for j in outs:
                    if (groups[i], groups[j]) in cut:
                        stats['cut'] += 1
                        continue
                    p = prof[i][j]
                    if p.get('lossPct', 0) > 0 and rng.random() * 100 < p['lossPct']:
                        stats['lost'] += 1
                        continue
                    d = p.get('delayMs', 0) / 1000
                    jit = p.get('jitterMs', 0) / 1000
                    if jit > 0:
                        d = max(0.0, d + rng.uniform(-jit, jit))
                    due = max(t + d, last_due.get((i, j), 0))
                    last_due[(i, j)] = due
                    seq += 1
                    heapq.heappush(heap, (due, seq, j, frame))
    write_stats()


if __name__ == '__main__':
    main()
