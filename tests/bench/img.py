#!/usr/bin/env python3
"""Image tool benchmark: minikvm-img and qemu-img side by side, same files,
same machine, same run.

  - 4 KiB request IOPS (`bench`), read and write, depth 1 and 32, for raw and
    qcow2 on tmpfs (/dev/shm) and on disk (build/bench/img), cache=writeback
    (engines threads and io_uring) and, on disk, cache=none (engines native
    and io_uring). qemu-img 7.2 bench has no random mode, so both tools run
    its sequential pattern; a scattered pattern (-S 1028k, both tools) is
    listed separately.
  - engine against fio on the same raw file (same request size, depth,
    engine and O_DIRECT flag): the sequential rows above and 4 KiB random
    read and write (minikvm-img's -r; qemu-img has no random mode) at depth
    1 and 32 for each cache mode and engine fio has (libaio, io_uring);
  - qcow2 against raw, random read and write, same cases: a qcow2 image
    with every cluster allocated against the same data in a raw file;
  - sequential throughput with 1 MiB requests, depth 8;
  - convert wall time qcow2->raw, raw->qcow2 and raw->qcow2 -c.
Each figure is the best of the runs (3, 5 for buffered depth-1 rows where
a run's luck decides more, 1 with --quick), the tools interleaved; which tool goes first
alternates from round to round (and row to row), and before a row that
goes through the page cache of a disk file the file is read once,
untimed, so no tool starts on a cache the previous row's O_DIRECT writes
emptied while the other finds it warm. Best, not median: on this shared
host noise only ever slows a run (a scheduler placement, a slow phase of
the disk, memory the hypervisor took back), so each tool's fastest run is
the closest to what it can do, and every tool gets the same number of
tries. O_DIRECT rows at depth 1 wait on the disk request by request and
are compared in 9 short back-to-back pairs instead (see paired): their
ratio is the median of the pairs' ratios, their figures medians. Prints one table: metric, minikvm-img, reference, ratio (>1:
minikvm-img better) and the issue's target where the row has one. Files are 256
MiB; the whole run takes about 9 minutes.
Usage: tests/bench/img.py [--quick]"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OURS = os.path.join(ROOT, "build", "minikvm-img")
SIZE_MB = 256
REPS = 3
rows = []
FIO_ENGINE = {"native": "libaio", "io_uring": "io_uring"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def make_data(path):
    """256 MiB: half random clusters, a quarter zero, a quarter text."""
    text = (b"minikvm image benchmark, compressible line of text. " * 1261)[:65536]
    rnd = os.urandom(65536 * 64)
    with open(path, "wb") as f:
        for i in range(SIZE_MB * 16):
            k = i % 4
            if k in (0, 2):
                j = (i * 7919) % 64
                f.write(rnd[j * 65536:(j + 1) * 65536])
            elif k == 1:
                f.write(bytes(65536))
            else:
                f.write(text)


def bench_secs(tool, args, path):
    out = sh([tool, "bench"] + args + [path]).stdout
    m = re.search(r"Run completed in ([0-9.]+) seconds", out)
    if not m:
        raise RuntimeError("no timing in %s output: %s" % (tool, out))
    return float(m.group(1))


def add(metric, ours, theirs, unit, higher_better=True, ratio=None):
    """One table row; ratio (ours against theirs, > 1 better) is computed
    from the figures unless given (paired rows)."""
    if ratio is not None or ours is None or theirs is None:
        pass
    elif higher_better:
        ratio = ours / theirs if theirs else None
    else:
        ratio = theirs / ours if ours else None
    rows.append((metric, ours, theirs, unit, ratio))
    print("  %-58s %10s %10s %s%s" % (metric, fmt(ours), fmt(theirs), unit,
                                      "" if ratio is None else " %.2f" % ratio),
          file=sys.stderr, flush=True)


def fmt(v):
    if v is None:
        return "n/a"
    return "%.0f" % v if v >= 100 else "%.2f" % v


def warm_page_cache(paths, cache):
    """Untimed: read disk files a row reads through the page cache (not
    cache=none, not tmpfs) so every tool starts warm. Returns None when
    there is nothing to warm, for best_of."""
    paths = [p for p in paths if cache != "none" and not p.startswith("/dev/shm/")]
    if not paths:
        return None

    def warm():
        buf = bytearray(4 << 20)
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
    return warm


ROUNDS_RUN = [0]    # across rows: which tool goes first alternates


def timed(run, tool):
    """run(tool)'s time, or None (with the reason on stderr) when it failed."""
    try:
        return run(tool)
    except (subprocess.CalledProcessError, RuntimeError, KeyError, ValueError) as e:
        err = getattr(e, "stderr", None) or str(e)
        print("  %s failed: %s" % (os.path.basename(str(tool)), err.strip()[:200]),
              file=sys.stderr)
        return None


def best_of(run, tools, reps, warm=None):
    """Interleave the tools, alternating which one goes first each round,
    after warm() (untimed) when given, and keep each tool's shortest time
    (see the module comment for why the best run)."""
    times = {t: [] for t in tools}
    failed = set()
    if warm:
        warm()
    for _ in range(reps):
        order = tuple(tools) if ROUNDS_RUN[0] % 2 == 0 else tuple(reversed(tools))
        ROUNDS_RUN[0] += 1
        for tool in order:
            if tool in failed:
                continue
            t = timed(run, tool)
            if t is None:
                failed.add(tool)
            else:
                times[tool].append(t)
    out = []
    for t in tools:
        v = times[t] if t not in failed else []
        out.append(min(v) if v else None)
    return out


def fio_secs(path, rw, bs, depth, engine, direct, count):
    """fio's run time for count requests of bs bytes (the same sequential
    pattern as bench, wrapping at the end of the file)."""
    out = sh(["fio", "--name=bench", "--filename=" + path, "--rw=" + rw, "--bs=" + str(bs),
              "--iodepth=" + str(depth), "--ioengine=" + FIO_ENGINE[engine],
              "--direct=%d" % direct, "--size=%dM" % SIZE_MB, "--io_size=%d" % (count * bs),
              "--invalidate=0", "--randrepeat=0", "--norandommap", "--output-format=json"]).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    part = job["write" if "write" in rw else "read"]
    if part["total_ios"] < count or not part["iops"]:
        raise RuntimeError("fio did %d of %d requests" % (part["total_ios"], count))
    return count / part["iops"]


def iops_pair(label, path, fmtname, cache, engine, depth, write, count, extra=()):
    args = ["-f", fmtname, "-t", cache, "-i", engine, "-d", str(depth), "-c", str(count),
            "-s", "4096"] + list(extra) + (["-w"] if write else [])
    secs, ratio = compare(lambda tool: bench_secs(tool, args, path), (OURS, "qemu-img"),
                          cache, depth, warm_page_cache([path], cache))
    add(label, *[count / t if t else None for t in secs], "IOPS", ratio=ratio)


def depth1_reps(cache, depth):
    """Repetitions for a buffered depth-1 pair (best_of), where each run is
    one long chain of single requests and its luck decides more: buffered
    reads on tmpfs go through an io_uring worker thread (tmpfs cannot read
    without blocking), and each run lands in one of two states, for fio as
    for us: submitter and worker on one CPU (10 us a read here) or on two
    (40-50 us, the wake-ups crossing CPUs), the scheduler picking at the
    start. More runs make each tool's best run less a matter of that
    luck."""
    return REPS + 2 if depth == 1 and REPS > 1 else REPS


PAIRS = 9   # paired runs for an O_DIRECT depth-1 row (see paired)


def paired(run, tools, pairs):
    """For O_DIRECT requests at depth 1, which wait on the disk one at a
    time: the disk's latency here drifts by 10-15% over seconds, for both
    tools alike (the same qemu-img command repeated took 0.67 to 0.83 s),
    so a best-of picks whichever tool met the fastest phase. Instead the
    tools run in short back-to-back pairs (order alternating) and the
    row's ratio is the median of the pairs' ratios, each pair seeing the
    same phase of the disk; the figures shown are each tool's median.
    Returns ([figure per tool as seconds], ratio of tools[1]'s time to
    tools[0]'s) with None where a tool failed."""
    times = {t: [] for t in tools}
    ratios = []
    for i in range(pairs):
        order = tuple(tools) if (ROUNDS_RUN[0] + i) % 2 == 0 else tuple(reversed(tools))
        got = {}
        for tool in order:
            got[tool] = timed(run, tool)
            if got[tool] is None:
                return [None, None], None
        for t in tools:
            times[t].append(got[t])
        ratios.append(got[tools[1]] / got[tools[0]])
    ROUNDS_RUN[0] += pairs
    return [statistics.median(times[t]) for t in tools], statistics.median(ratios)


def compare(run, tools, cache, depth, warm=None):
    """Times for the tools of one row and the row's ratio (None: from the
    times): paired runs for O_DIRECT at depth 1, best_of otherwise."""
    if cache == "none" and depth == 1 and REPS > 1:
        return paired(run, tools, PAIRS)
    return best_of(run, tools, depth1_reps(cache, depth), warm), None


def fio_pair(label, path, cache, engine, depth, write, count, bs=4096, rnd=False):
    """minikvm-img bench on a raw file against fio with the same request
    size, depth, engine, direct flag and file."""
    args = ["-f", "raw", "-t", cache, "-i", engine, "-d", str(depth), "-c", str(count),
            "-s", str(bs)] + (["-w"] if write else []) + (["-r"] if rnd else [])
    rw = ("rand" if rnd else "") + ("write" if write else "read")
    direct = 1 if cache == "none" else 0

    def run(tool):
        if tool == "fio":
            return fio_secs(path, rw, bs, depth, engine, direct, count)
        return bench_secs(OURS, args, path)
    secs, ratio = compare(run, (OURS, "fio"), cache, depth, warm_page_cache([path], cache))
    scale, unit = (bs / 1048576.0, "MiB/s") if bs >= 1048576 else (1, "IOPS")
    add(label + " vs fio", *[count * scale / t if t else None for t in secs], unit, ratio=ratio)


def qcow2_vs_raw(label, qcow2_path, raw_path, cache, engine, depth, write, count):
    """minikvm-img bench -r on a fully allocated qcow2 image against the same
    data in a raw file."""
    args = ["-t", cache, "-i", engine, "-d", str(depth), "-c", str(count), "-r"] + \
        (["-w"] if write else [])
    secs, ratio = compare(lambda img: bench_secs(OURS, ["-f", img[0]] + args, img[1]),
                          (("qcow2", qcow2_path), ("raw", raw_path)), cache, depth,
                          warm_page_cache([qcow2_path, raw_path], cache))
    add(label, *[count / t if t else None for t in secs], "IOPS", ratio=ratio)


def refresh_free_memory(directory, mib):
    """Write and delete a scratch file of the output's size in directory
    (untimed), so that the timed tool writes into memory freed a moment
    ago. Without it a convert on tmpfs took 0.07 s or 0.5 s at random on
    this host, for qemu-img and minikvm-img alike, the slow runs all system
    time copying into new tmpfs pages: the host kernel reports free memory
    to the hypervisor under it (virtio-balloon free page reporting), which
    takes the pages away, and whoever touches one first pays for getting it
    back."""
    path = os.path.join(directory, "scratch")
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(chunk)
    os.unlink(path)


def convert_time(tool, args):
    t0 = time.time()
    sh([tool, "convert"] + args)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    opts = ap.parse_args()
    global REPS
    scale = 0.25 if opts.quick else 1.0
    REPS = 1 if opts.quick else 3
    if not os.access(OURS, os.X_OK):
        sys.exit("img bench: build/minikvm-img is not built")
    dirs = {"tmpfs": "/dev/shm/minikvm-imgbench-%d" % os.getpid(),
            "disk": os.path.join(ROOT, "build", "bench", "img")}
    try:
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        src = os.path.join(dirs["tmpfs"], "data.raw")
        make_data(src)
        for where, d in dirs.items():
            raw, qc = os.path.join(d, "t.raw"), os.path.join(d, "t.qcow2")
            # for the qcow2-vs-raw rows: pristine copies, every qcow2 cluster
            # allocated (zeroes too)
            rfull, qfull = os.path.join(d, "full.raw"), os.path.join(d, "full.qcow2")
            shutil.copyfile(src, raw)
            shutil.copyfile(src, rfull)
            sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, qc])
            sh(["qemu-img", "convert", "-S", "0", "-f", "raw", "-O", "qcow2", src, qfull])
            sh(["sync"])
            caches = [("writeback", ("threads", "io_uring"))]
            if where == "disk":
                caches.append(("none", ("native", "io_uring")))
            for fmtname, path in (("raw", raw), ("qcow2", qc)):
                for cache, engines in caches:
                    for engine in engines:
                        for write in (False, True):
                            for depth in (1, 32):
                                base = 8000 if cache == "none" and depth == 1 else 50000
                                count = max(500, int(base * scale))
                                label = "4k seq %s %s %s %s/%s d%d" % (
                                    "write" if write else "read", fmtname, where, cache,
                                    engine, depth)
                                iops_pair(label, path, fmtname, cache, engine, depth, write,
                                          count)
                                if fmtname == "raw" and engine in FIO_ENGINE:
                                    fio_pair(label, path, cache, engine, depth, write, count)
            # scattered (both tools) and random (ours only), qcow2, depth 32
            cnt = max(500, int(50000 * scale))
            iops_pair("4k scattered -S 1028k read qcow2 %s writeback/io_uring d32" % where,
                      qc, "qcow2", "writeback", "io_uring", 32, False, cnt,
                      ("-S", str(1028 * 1024)))
            # random I/O, minikvm-img's -r (qemu-img has no random mode): raw
            # against fio, and qcow2 with every cluster allocated against raw
            # (same data, so every request does I/O in both; the qcow2
            # metadata is cached after the first requests)
            for cache, engines in caches:
                for engine in engines:
                    if engine not in FIO_ENGINE:
                        continue
                    for write in (False, True):
                        for depth in (1, 32):
                            base = 8000 if cache == "none" and depth == 1 else 50000
                            rcnt = max(500, int(base * scale))
                            label = "4k random (-r) %s %%s %s %s/%s d%d" % (
                                "write" if write else "read", where, cache, engine, depth)
                            fio_pair(label % "raw", rfull, cache, engine, depth, write, rcnt,
                                     rnd=True)
                            qcow2_vs_raw(label % "qcow2 vs raw", qfull, rfull, cache, engine,
                                         depth, write, rcnt)
            # sequential throughput, 1 MiB requests
            for write in (False, True):
                mib = SIZE_MB * 16  # 4 GiB: ~0.3 s at page-cache speed, well above timer noise
                args = ["-f", "raw", "-t", "writeback", "-i", "io_uring", "-d", "8",
                        "-c", str(mib), "-s", "1M"] + (["-w"] if write else [])
                secs = best_of(lambda tool: bench_secs(tool, args, raw), (OURS, "qemu-img"),
                                 REPS, warm_page_cache([raw], "writeback"))
                label = "1M seq %s raw %s writeback/io_uring d8" % (
                    "write" if write else "read", where)
                add(label, *[mib / t if t else None for t in secs], "MiB/s")
                fio_pair(label, raw, "writeback", "io_uring", 8, write, mib, bs=1048576)
        # convert timings on tmpfs, from pristine copies (the write
        # benchmarks above overwrote t.raw and t.qcow2)
        d = dirs["tmpfs"]
        raw, qc = src, os.path.join(d, "data.qcow2")
        sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, qc])
        out = os.path.join(d, "out")
        for label, args in (("convert qcow2->raw", ["-f", "qcow2", "-O", "raw", qc, out]),
                            ("convert raw->qcow2", ["-f", "raw", "-O", "qcow2", raw, out]),
                            ("convert raw->qcow2 -c", ["-f", "raw", "-O", "qcow2", "-c", raw,
                                                       out])):
            def once(tool, args=args):
                try:
                    refresh_free_memory(d, SIZE_MB)
                    return convert_time(tool, args)
                finally:
                    if os.path.exists(out):
                        os.unlink(out)
            secs = best_of(once, (OURS, "qemu-img"), REPS)
            add(label + " (tmpfs, 256 MiB)", secs[0], secs[1], "s", higher_better=False)
    finally:
        shutil.rmtree(dirs["tmpfs"], ignore_errors=True)
        shutil.rmtree(dirs["disk"], ignore_errors=True)

    print("\nminikvm-img vs qemu-img, or vs fio / qcow2 vs raw where the metric says so (same "
          "files, same run;\nbest of %d, of %d for buffered depth-1 rows; cache=none depth-1 "
          "rows: medians of %d paired runs;\nratio > 1: minikvm-img (qcow2) better)"
          % (REPS, depth1_reps("writeback", 1), PAIRS))
    print("%-62s %12s %12s %6s %7s  %s" % ("metric", "minikvm-img", "reference", "unit", "ratio",
                                          "target"))
    for metric, ours, theirs, unit, ratio in rows:
        goal = target(metric)
        verdict = "" if goal is None else "%s >=%.2f" % (
            "ok  " if ratio and ratio >= goal else "MISS", goal)
        print("%-62s %12s %12s %6s %7s  %s" % (metric, fmt(ours), fmt(theirs), unit,
                                              "%.2f" % ratio if ratio else "n/a", verdict))


def target(metric):
    """The issue's target for a row's ratio: the engine within 10% of fio,
    qcow2 random reads at 90% of raw, every figure at least qemu-img's;
    qcow2-vs-raw writes (allocation-free overwrites) have none."""
    if metric.endswith(" vs fio"):
        return 0.90
    if " qcow2 vs raw " in metric:
        return 0.90 if " read " in metric else None
    return 1.0

if __name__ == "__main__":
    main()
