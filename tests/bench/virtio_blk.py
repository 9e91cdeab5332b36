#!/usr/bin/env python3
"""virtio-blk benchmark: minikvm and QEMU side by side, same image, same run.

Boots the guest test kit (case=blk-bench: polled CPL3 virtio-blk driver,
EVENT_IDX on, one 1-vCPU guest per VMM and backend) and runs, per backend:
4 KiB random read and write at depth 1 and 32, 1 MiB sequential read and
write at depth 8. Backends: raw on tmpfs (default cache and aio), raw on
disk with cache=none and aio=native, the same with aio=io_uring, and qcow2
on disk (cache=none, aio=io_uring). fio on the host file with the same
pattern is the physical limit (for qcow2: fio on the raw disk file); on
disk, fio at depth 128 shows what the device gives at all (its ceiling),
and fio at depth 32 beside a polling 1-vCPU guest what the host gives
with the CPU such a guest leaves (a polling guest's vCPU keeps a core
busy; fio alone has every core).
Each VMM and fio run --reps times per backend, alternating, keeping each
job's best: the disk here swings between 45k and 230k random-write IOPS
from one 300 ms window to the next, so a job needs a few tries to see
what a VMM can do. The depth-32 jobs, which carry the targets, are
measured in --pairs short back-to-back rounds instead (one boot per VMM
and job, then fio; order rotating): a round's three runs see the same
phase of the disk, the row's ratios are the medians of the rounds'
ratios and its figures each tool's median, so a tool that met a fast
phase once cannot decide the row; the lowest and highest round's ratios
follow the verdict, to show how far the disk's phases spread them.
Prints IOPS (4 KiB) or MiB/s (1 MiB) with the ratio to QEMU and to fio."""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time

JOBS = [("randread", 4096, 1), ("randread", 4096, 32), ("randwrite", 4096, 1),
        ("randwrite", 4096, 32), ("read", 1 << 20, 8), ("write", 1 << 20, 8)]
IMG_MB = 128
CEILING_DEPTH = 128	# fio at this depth: what the disk gives at all
LINE = re.compile(r"blk-bench: rw=(\w+) bs=(\d+) depth=(\d+) .* iops=(\d+) mibs=([\d.]+)")


def job_arg(rw, bs, depth):
    return f"{rw}:{bs // 1024}k:{depth}"


def run_kit(cmd, ms, timeout, jobs_run=JOBS):
    jobs = ",".join(job_arg(*j) for j in jobs_run)
    full = cmd + ["-append", f"case=blk-bench jobs={jobs} ms={ms}"]
    try:
        p = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timeout: {' '.join(full)}")
    out = p.stdout.decode(errors="replace")
    res = {}
    for m in LINE.finditer(out):
        res[(m.group(1), int(m.group(2)), int(m.group(3)))] = (int(m.group(4)),
                                                               float(m.group(5)))
    if "blk-bench: PASS" not in out or len(res) != len(jobs_run):
        tail = "\n".join(l for l in out.splitlines() if "testkit" in l or "error" in l)
        raise RuntimeError(f"{full[0]}: blk-bench failed (status {p.returncode}):\n{tail[-1500:]}")
    return res


def run_fio(path, direct, engine, rw, bs, depth, ms):
    cmd = ["fio", "--name=j", f"--filename={path}", f"--rw={rw}", f"--bs={bs}",
           f"--iodepth={depth}", f"--ioengine={engine}", f"--direct={int(direct)}",
           f"--runtime={ms}ms", "--time_based", f"--size={IMG_MB}M", "--output-format=json",
           "--randrepeat=0", "--norandommap", "--invalidate=0"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    j = json.loads(p.stdout.decode(errors="replace"))["jobs"][0]
    side = j["write" if "write" in rw else "read"]
    return side["iops"], side["bw"] / 1024.0


def fio_beside_guest(guest_cmd, fio_file, engine, ms):
    """fio 4 KiB random read and write at depth 32 while a 1-vCPU guest
    polls (test kit case=sleep: its vCPU thread keeps one host core busy, as
    the blk-bench guest of every VMM run does): what the host gives I/O with
    the CPU a polling guest leaves."""
    guest = subprocess.Popen(guest_cmd + ["-append", "case=sleep ms=60000"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        if guest.poll() is not None:
            raise RuntimeError(f"{guest_cmd[0]}: case=sleep guest exited early")
        return {rw: run_fio(fio_file, True, engine, rw, 4096, 32, ms)
                for rw in ("randread", "randwrite")}
    finally:
        guest.kill()
        guest.wait()


def paired_rounds(runners, pairs):
    """Runs each tool of runners (name: function returning (IOPS, MiB/s))
    once per round, the order rotating, for pairs rounds. Returns each
    tool's median figures, the medians of the rounds' ratios of the first
    tool to each other one, and each such ratio's lowest and highest
    round."""
    names = list(runners)
    got = {n: [] for n in names}
    for i in range(pairs):
        for n in names[i % len(names):] + names[:i % len(names)]:
            got[n].append(runners[n]())
    first = names[0]
    med = {n: tuple(statistics.median(v[k] for v in got[n]) for k in (0, 1)) for n in names}
    per_round = {n: [a[0] / b[0] if b[0] else float("nan") for a, b in zip(got[first], got[n])]
                 for n in names[1:]}
    ratios = {n: statistics.median(v) for n, v in per_round.items()}
    spread = {n: (min(v), max(v)) for n, v in per_round.items()}
    return med, ratios, spread


def keep_best(best, new):
    for key, val in new.items():
        if key not in best or val[0] > best[key][0]:
            best[key] = val


def make_images(disk_dir, shm_dir):
    """A raw image full of data (reads must hit real blocks), copied per backend."""
    seed = os.path.join(disk_dir, "seed.raw")
    with open(seed, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(IMG_MB):
            f.write(chunk)
    imgs = {}
    imgs["shm"] = os.path.join(shm_dir, "bench.raw")
    shutil.copyfile(seed, imgs["shm"])
    imgs["disk"] = os.path.join(disk_dir, "bench.raw")
    shutil.copyfile(seed, imgs["disk"])
    imgs["qcow2"] = os.path.join(disk_dir, "bench.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", seed, imgs["qcow2"]],
                   check=True)
    os.sync()
    return imgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minikvm", default="build/minikvm")
    ap.add_argument("--kit", default="build/guest/testkit.elf")
    ap.add_argument("--ms", type=int, default=700, help="milliseconds per job")
    ap.add_argument("--reps", type=int, default=3, help="runs per VMM and backend (best kept)")
    ap.add_argument("--pairs", type=int, default=11, help="rounds for each depth-32 job")
    ap.add_argument("--disk-dir", default="build/bench", help="directory on a real disk")
    ap.add_argument("--only", default="", help="comma-separated backend names")
    args = ap.parse_args()
    if not os.path.isdir("/dev/shm"):
        sys.exit("virtio_blk bench: /dev/shm missing")
    os.makedirs(args.disk_dir, exist_ok=True)
    disk_dir = tempfile.mkdtemp(prefix="vblk-", dir=args.disk_dir)
    shm_dir = tempfile.mkdtemp(prefix="vblk-", dir="/dev/shm")
    try:
        imgs = make_images(disk_dir, shm_dir)
        # name: (image, format, -drive extras, fio direct, fio engine)
        backends = [
            ("raw tmpfs", imgs["shm"], "raw", "", False, "io_uring"),
            ("raw disk none/native", imgs["disk"], "raw", ",cache=none,aio=native", True,
             "libaio"),
            ("raw disk none/io_uring", imgs["disk"], "raw", ",cache=none,aio=io_uring", True,
             "io_uring"),
            ("qcow2 disk none/io_uring", imgs["qcow2"], "qcow2", ",cache=none,aio=io_uring",
             True, "io_uring"),
        ]
        if args.only:
            want = args.only.split(",")
            backends = [b for b in backends if any(w in b[0] for w in want)]
        common = ["-m", "128", "-smp", "1", "-nographic", "-nodefaults", "-serial", "stdio",
                  "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", args.kit]
        vmms = {"minikvm": [args.minikvm],
                "qemu-7.2": ["qemu-system-x86_64", "-enable-kvm", "-cpu",
                             "host,-arch-capabilities", "-machine", "pc"]}
        timeout = 30 + len(JOBS) * (args.ms / 1000.0 + 2)
        rows = []
        for name, img, fmt, extra, direct, engine in backends:
            drive = ["-drive", f"file={img},format={fmt},if=none,id=d0{extra}",
                     "-device", "virtio-blk-pci,drive=d0"]
            # Alternate the VMMs and fio and keep each job's best run: a busy
            # host (or a disk having a slow moment) only ever slows a run down.
            res = {v: {} for v in vmms}
            fio, ceiling, beside = {}, {}, {}
            fio_file = imgs["disk"] if fmt == "qcow2" else img
            best_of = [j for j in JOBS if j[2] != 32]
            for _ in range(args.reps):
                for v, cmd in vmms.items():
                    keep_best(res[v], run_kit(cmd + common + drive, args.ms, timeout, best_of))
                keep_best(fio, {job: run_fio(fio_file, direct, engine, *job, args.ms)
                                for job in best_of})
                if direct:
                    keep_best(ceiling, {rw: run_fio(fio_file, direct, engine, rw, 4096,
                                                    CEILING_DEPTH, args.ms)
                                        for rw in ("randread", "randwrite")})
                    keep_best(beside, fio_beside_guest(vmms["minikvm"] + common, fio_file,
                                                       engine, args.ms))
            for job in JOBS:
                d32 = job[2] == 32
                ratios = spread = None
                if d32:
                    runners = {v: (lambda c=cmd, j=job: run_kit(c + common + drive, args.ms,
                                                                 timeout, [j])[j])
                               for v, cmd in vmms.items()}
                    runners["fio"] = lambda j=job: run_fio(fio_file, direct, engine, *j, args.ms)
                    med, ratios, spread = paired_rounds(runners, args.pairs)
                    res["minikvm"][job], res["qemu-7.2"][job], fio[job] = (
                        med["minikvm"], med["qemu-7.2"], med["fio"])
                rows.append((name, job, res["minikvm"][job], res["qemu-7.2"][job], fio[job],
                             ratios, spread, ceiling.get(job[0]) if d32 else None,
                             beside.get(job[0]) if d32 else None))
    finally:
        shutil.rmtree(disk_dir, ignore_errors=True)
        shutil.rmtree(shm_dir, ignore_errors=True)

    print(f"\nvirtio-blk, test kit blk-bench (polled, EVENT_IDX), 1 vCPU, {IMG_MB} MiB image, "
          f"{args.ms} ms per job, best of {args.reps} (d32: medians of {args.pairs} rounds); "
          f"4k: IOPS, 1M: MiB/s")
    print(f"{'backend':26} {'job':17} {'minikvm':>9} {'qemu-7.2':>9} {'ratio':>6} {'fio':>9} "
          f"{'mk/fio':>6}  target")
    ceilings = []
    for name, (rw, bs, depth), mk, qe, fio, ratios, spread, ceil, near in rows:
        k = 0 if bs == 4096 else 1
        a, b, f = mk[k], qe[k], fio[k]
        r_qemu, r_fio = (ratios["qemu-7.2"], ratios["fio"]) if ratios else (
            a / b if b else float("nan"), a / f if f else float("nan"))
        job = f"{rw} {bs // 1024}k d{depth}"
        if depth == 32:
            ok = r_qemu >= 1.3 and r_fio >= 0.9
            target = (">=1.3x qemu, >=90% fio" + ("  ok" if ok else "  MISS"))
            if not ok and 1.3 * b > f and r_fio >= 0.9:
                target += " (1.3x qemu > fio's own d32)"
            lo_q, hi_q = spread["qemu-7.2"]
            lo_f, hi_f = spread["fio"]
            target += f"  [rounds: {lo_q:.2f}-{hi_q:.2f}x qemu, {lo_f:.2f}-{hi_f:.2f} fio]"
            if ceil:
                ceilings.append((name, rw, ceil[0], a, b, near[0]))
        elif bs > 4096:
            target = ">=90% fio" + ("  ok" if a >= 0.9 * f else "  MISS")
        else:
            target = ""
        fmtv = "{:9.0f}" if k == 0 else "{:9.1f}"
        print(f"{name:26} {job:17} {fmtv.format(a)} {fmtv.format(b)} {r_qemu:6.2f} "
              f"{fmtv.format(f)} {r_fio:6.2f}  {target}")
    if ceilings:
        print(f"\ndevice ceiling: fio 4k at depth {CEILING_DEPTH} on the same file, best of "
              f"{args.reps} (what the disk gives at all)")
        for name, rw, c, a, b, _ in ceilings:
            print(f"{name:26} {rw:10} {c:9.0f} IOPS; minikvm d32 at {a / c:4.2f} of it, "
                  f"QEMU at {b / c:4.2f}, 1.3x QEMU = {1.3 * b / c:4.2f}")
        print(f"\nfio 4k d32 beside a polling guest: the same fio job while a 1-vCPU test kit "
              f"guest (case=sleep) keeps one of the host's {os.cpu_count()} cores busy, as "
              f"every VMM's guest here does; best of {args.reps} (informative, no target)")
        for name, rw, _, a, b, n in ceilings:
            print(f"{name:26} {rw:10} {n:9.0f} IOPS; minikvm d32 at {a / n:4.2f} of it, "
                  f"QEMU at {b / n:4.2f}")

if __name__ == "__main__":
    main()
