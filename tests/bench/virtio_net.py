#!/usr/bin/env python3
"""virtio-net benchmark: minikvm and QEMU 7.2 side by side, same machine, same run.

The guest test kit's net-bench case (tests/guest/virtio_net.c) sends frames
of one size as fast as its tx ring allows, polled, for --seconds:
  - socket: guest -> guest between two VMM processes of the same kind
    (-netdev socket, listen/connect on 127.0.0.1); the receiving guest counts
    what arrives (frames per second and MiB/s);
  - tap: guest -> a tap device in a network namespace made here (root); the
    host counts what arrives in the tap's /sys/class/net statistics.
Prints a table of medians over --runs runs (the VMMs alternate); target:
>= 1.3x QEMU's packet rate. The kicks rows (doorbell writes, i.e. exits, per
1000 frames, as the guest counted them) show how well each device
suppresses notifications (EVENT_IDX avail_event); they are information.
The rates are noisy on a shared 2-core host: compare within one run."""
import argparse, os, re, socket, statistics, subprocess, sys, tempfile, time

LINE_RE = re.compile(rb"net-bench: (rx|tx) (\d+) frames, (\d+) bytes of (\d+)-byte frames "
                     rb"in (\d+) us: .* kicks (\d+)")
NS = f"mkvbench{os.getpid()}"
TAP = "mkbtap0"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """True when something listens on 127.0.0.1:port (from /proc, no probe connection)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return True
    return False


def start(cmd, out):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def finish(p, out, timeout):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out.seek(0)
    return out.read()


def results(log, direction, sizes, what):
    """{size: (frames, bytes, us, kicks)} from the kit's net-bench lines."""
    got = {}
    for m in LINE_RE.finditer(log):
        if m.group(1) == direction.encode():
            frames, nbytes, size, us, kicks = (int(x) for x in m.groups()[1:])
            got[size] = (frames, nbytes, us, kicks)
    if sorted(got) != sorted(sizes):
        print(f"{what}: results for sizes {sorted(got)}, expected {sorted(sizes)}\n"
              f"{log[-3000:].decode(errors='replace')}", file=sys.stderr)
        sys.exit(1)
    return got


def kit_args(vmm, kit, netdev, mac, append):
    nic = "virtio-net-pci,netdev=n0" + (",romfile=" if vmm["qemu"] else "") + mac
    return vmm["cmd"] + ["-kernel", kit, "-netdev", netdev, "-device", nic, "-append", append]


def run_socket(vmm, kit, sizes, seconds):
    """Guest -> guest through -netdev socket, one boot for all sizes;
    returns {size: (frames/s, MiB/s)} as the receiver saw them."""
    port = free_port()
    rx_out, tx_out = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    slist = ",".join(str(s) for s in sizes)
    rx = start(kit_args(vmm, kit, f"socket,id=n0,listen=127.0.0.1:{port}",
                        ",mac=52:54:00:00:00:0a",
                        f"case=net-bench role=rx seconds={seconds} size={slist}"), rx_out)
    for _ in range(400):
        if listening(port) or rx.poll() is not None:
            break
        time.sleep(0.05)
    tx = start(kit_args(vmm, kit, f"socket,id=n0,connect=127.0.0.1:{port}",
                        ",mac=52:54:00:00:00:0b",
                        f"case=net-bench role=tx seconds={seconds} size={slist}"), tx_out)
    tx_log = finish(tx, tx_out, 60 + len(sizes) * (seconds + 3))
    rx_log = finish(rx, rx_out, 30)
    got = results(rx_log, "rx", sizes, f"{vmm['name']} socket (rx)")
    sent = results(tx_log, "tx", sizes, f"{vmm['name']} socket (tx)")
    # rates as received; doorbells per 1000 frames on each side
    return {s: (f * 1e6 / us, b * 1e6 / us / 2**20, sent[s][3] * 1e3 / max(sent[s][0], 1),
                k * 1e3 / max(f, 1)) for s, (f, b, us, k) in got.items()}


def sh(*args):
    subprocess.run(args, check=True)


def run_tap(vmm, kit, sizes, seconds):
    """Guest -> tap in a namespace, one boot for all sizes; the host reads
    the tap's rx counters whenever the guest reports a phase (the guest
    pauses 500 ms after each); returns {size: (frames/s, MiB/s)}."""
    out = tempfile.NamedTemporaryFile()
    slist = ",".join(str(s) for s in sizes)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "tuntap", "add", TAP, "mode", "tap")
        sh("ip", "-n", NS, "link", "set", TAP, "up")
        # Read the counters from inside the namespace: a helper that
        # prints them on each request line.
        reader = subprocess.Popen(
            ["ip", "netns", "exec", NS, "python3", "-u", "-c",
             "import sys\nfor _ in sys.stdin:\n"
             f" print(open('/sys/class/net/{TAP}/statistics/rx_packets').read().strip(),"
             f" open('/sys/class/net/{TAP}/statistics/rx_bytes').read().strip())"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def counters():
            reader.stdin.write("\n")
            reader.stdin.flush()
            return [int(x) for x in reader.stdout.readline().split()]

        snaps = [counters()]
        p = start(["ip", "netns", "exec", NS] +
                  kit_args(vmm, kit, f"tap,id=n0,ifname={TAP},script=no,downscript=no", "",
                           f"case=net-bench role=tx peer=none seconds={seconds} size={slist}"),
                  out)
        deadline = time.time() + 60 + len(sizes) * (seconds + 3)
        while p.poll() is None and time.time() < deadline:
            with open(out.name, "rb") as f:
                n = len(LINE_RE.findall(f.read()))
            if n >= len(snaps):
                snaps.append(counters())
            time.sleep(0.02)
        if p.poll() is None:
            p.kill()
        p.wait()
        reader.stdin.close()
        reader.wait()
    finally:
        subprocess.run(["ip", "netns", "del", NS])
    with open(out.name, "rb") as f:
        log = f.read()
    got = results(log, "tx", sizes, f"{vmm['name']} tap (tx)")
    if len(snaps) < len(sizes) + 1:
        print(f"{vmm['name']} tap: missed a phase", file=sys.stderr)
        sys.exit(1)
    res = {}
    for i, s in enumerate(sizes):
        us = got[s][2]
        packets, nbytes = (snaps[i + 1][k] - snaps[i][k] for k in (0, 1))
        if packets < got[s][0] * 0.99:
            print(f"{vmm['name']} tap {s} B: the guest sent {got[s][0]} frames, the tap "
                  f"counted {packets}", file=sys.stderr)
        res[s] = (packets * 1e6 / us, nbytes * 1e6 / us / 2**20,
                  got[s][3] * 1e3 / max(got[s][0], 1), float("nan"))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minikvm", default="build/minikvm")
    ap.add_argument("--kit", default="build/guest/testkit.elf")
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="64,1514")
    args = ap.parse_args()
    common = ["-m", "128", "-smp", "1", "-nographic", "-nodefaults", "-serial", "stdio",
              "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
    vmms = [
        dict(name="minikvm", qemu=False, cmd=[args.minikvm] + common),
        dict(name="qemu-7.2", qemu=True,
             cmd=["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities",
                  "-machine", "pc"] + common),
    ]
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [("socket", run_socket)]
    if os.geteuid() == 0:
        backends.append(("tap", run_tap))
    else:
        print("not root: tap rows skipped (they need a network namespace)", file=sys.stderr)
    runs = {}	# (backend, vmm) -> [{size: (frames/s, MiB/s)}]; VMMs alternate
    for _ in range(args.runs):
        for bname, fn in backends:
            for v in vmms:
                runs.setdefault((bname, v["name"]), []).append(fn(v, args.kit, sizes,
                                                                  args.seconds))
    res = {}
    for (bname, vname), rs in runs.items():
        for size in sizes:
            res[(bname, size, vname)] = tuple(statistics.median(r[size][i] for r in rs)
                                              for i in range(4))
    print(f"\nvirtio-net, polled kit guest, 1 vCPU, {args.seconds} s per run, "
          f"median of {args.runs} run(s)")
    print(f"{'metric':44} {'minikvm':>10} {'qemu-7.2':>10} {'ratio':>7}  target")
    where = {"socket": "socket g->g", "tap": "tap g->host"}
    for bname, _ in backends:
        for size in sizes:
            m = res[(bname, size, "minikvm")]
            q = res[(bname, size, "qemu-7.2")]
            rows = [("kpps", 1e-3, ">= 1.3x"), ("MiB/s", 1, ""),
                    ("tx kicks/1k frames", 1, "(info)")]
            if bname == "socket":
                rows.append(("rx kicks/1k frames", 1, "(info)"))
            for i, (unit, scale, target) in enumerate(rows):
                a, b = m[i] * scale, q[i] * scale
                label = f"{where[bname]} {size} B: {unit}"
                print(f"{label:44} {a:10.2f} {b:10.2f} {a / b if b else float('nan'):7.3f}  "
                      f"{target}")


if __name__ == "__main__":
    main()
