#!/usr/bin/env python3
"""Startup benchmark: minikvm and QEMU side by side, same machine, same run.

Boots the guest test kit (1 vCPU, 128 MiB) and measures, per VMM:
  - wall time from exec to the kit's first serial line and to exit,
  - CPU time of the VMM process before its first KVM_RUN (LD_PRELOAD shim),
  - VMM memory: peak RSS sampled while running, minus the guest RAM mapping,
  - total CPU time of the VMM process.
Prints a table of medians over --runs runs."""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

RAM_MB = 128
VMA_LINE = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def vmm_rss_kib(pid):
    """RSS of the process excluding mappings as large as guest RAM."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps") as f:
            size = 0
            for line in f:
                parts = line.split()
                if VMA_LINE.match(line):	# unnamed anonymous mappings have 5 fields
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    size = hi - lo
                elif parts and parts[0] == "Rss:" and size < RAM_MB * 2**20:
                    total += int(parts[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


def run_once(cmd, shim):
    out = tempfile.NamedTemporaryFile(delete=False).name
    env = dict(os.environ, LD_PRELOAD=shim, KVMRUN_SHIM_OUT=out)
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
    os.set_blocking(p.stdout.fileno(), False)
    first_line = None
    peak_rss = 0
    buf = b""
    while True:
        chunk = p.stdout.read()
        if chunk:
            buf += chunk
            if first_line is None and b"\n" in buf:
                first_line = time.time() - t0
        peak_rss = max(peak_rss, vmm_rss_kib(p.pid))
        if p.poll() is not None:
            break
        if time.time() - t0 > 120:
            p.kill()
            raise RuntimeError(f"timeout: {' '.join(cmd)}")
        time.sleep(0.002)
    status = p.returncode
    total = time.time() - t0
    cpu_first = float("nan")
    try:
        with open(out) as f:
            cpu_first = float(f.read().split()[0].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    os.unlink(out)
    if first_line is None:
        first_line = float("nan")
    return dict(first=first_line, exit=total, cpu_first=cpu_first, rss=peak_rss,
                status=status, output=buf.decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minikvm", default="build/minikvm")
    ap.add_argument("--kit", default="build/guest/testkit.elf")
    ap.add_argument("--shim", default="build/bench/kvmrun_shim.so")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    common = ["-m", str(RAM_MB), "-smp", "1", "-kernel", args.kit, "-append", "case=demo",
              "-nographic", "-nodefaults", "-serial", "stdio"]
    vmms = {
        "minikvm": [args.minikvm] + common,
        "qemu-7.2": ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities",
                     "-machine", "pc"] + common,
    }
    results = {}
    for name, cmd in vmms.items():
        runs = [run_once(cmd, os.path.abspath(args.shim)) for _ in range(args.runs)]
        bad = [r for r in runs if r["status"] != 0]
        if bad:
            print(f"{name}: guest did not power off cleanly (status {bad[0]['status']}):\n"
                  f"{bad[0]['output'][-2000:]}", file=sys.stderr)
            sys.exit(1)
        results[name] = {k: statistics.median(r[k] for r in runs)
                         for k in ("first", "exit", "cpu_first", "rss")}
    m, q = results["minikvm"], results["qemu-7.2"]
    print(f"\nStartup, test kit demo, 1 vCPU, {RAM_MB} MiB, median of {args.runs} runs")
    print(f"{'metric':44} {'minikvm':>10} {'qemu-7.2':>10} {'ratio':>7}  target")
    rows = [("exec -> first serial line (ms)", "first", 1000, "<= 0.2x"),
            ("exec -> exit (ms)", "exit", 1000, "<= 0.2x"),
            ("VMM CPU time before first KVM_RUN (ms)", "cpu_first", 1, "<= 5 ms"),
            ("VMM RSS without guest RAM (MiB)", "rss", 1 / 1024, "<= 4 MiB")]
    for label, key, scale, target in rows:
        a, b = m[key] * scale, q[key] * scale
        print(f"{label:44} {a:10.2f} {b:10.2f} {a / b if b else float('nan'):7.3f}  {target}")


if __name__ == "__main__":
    main()
