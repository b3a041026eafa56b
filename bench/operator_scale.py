"""How does the operator keep up with many jobs? 100 and 1,000 AutoMLImageJobs against the emulated API.

What runs: the real `kubevision operator` command (a subprocess, exactly what the Deployment starts,
with its production timings: 10 s status timer) against kmock's Kubernetes emulator in this process
(the same emulator and fidelity fixes as tests/operator: real resourceVersions, watches that resume
where their list ended). Katib is not played: Experiments are created and nobody runs them, so the
jobs stay Running and every status tick is a real (if quiet) reconcile.

For each N (default 100 and 1,000) it creates N jobs as fast as the API accepts them and reports:
- time until every job has its Experiment (from the first create to the last Experiment seen), and
  until every job's status says Running (children created and status written);
- per-job latency, create -> Experiment stored, p50/p99 (measured on the API side, exact);
- handler time of `start` (validate, plan, create Secret + ConfigMap + Experiment, status) and of the
  `reconcile` timer, from the operator's own Prometheus histogram: the exact mean (_sum / _count) and
  p50/p99 interpolated inside the buckets as PromQL's histogram_quantile does (coarse: a p50 of 2.5 ms
  means "in the 0-5 ms bucket"). Under a burst this is wall time, queueing included;
- CPU seconds used by the operator process and by the emulator (this process) during the burst: on a
  shared machine the robust measure of what a job costs;
- the operator process's resident memory (VmRSS) before the jobs, at the end, and its peak (VmHWM).

Prints a table and exits 0. On 2 shared cores, 1,000 jobs take minutes: `--sizes 100` for a quick run,
`--timeout` bounds each size (what was reached is reported).

    python bench/operator_scale.py                      # 100 and 1,000 jobs
    python bench/operator_scale.py --sizes 100 --hold 15
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "operator"))  # the emulator with the tests' fidelity fixes

import kmock  # noqa: E402
from kmock_cluster import EXPERIMENTS, JOBS, NS, VersionedEmulator, declare_cluster, job_manifest, path  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def histogram_quantile(text: str, name: str, handler: str, q: float) -> tuple[float, int]:
    """(quantile, count) of a Prometheus histogram from /metrics text, linear inside the bucket."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{") and f'handler="{handler}"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan"), 0
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound, int(total)
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share, int(total)
        lower_bound, lower_count = bound, count
    return lower_bound, int(total)


def histogram_sum(text: str, name: str, handler: str) -> float:
    """The `_sum` of a Prometheus histogram (exact, unlike bucket quantiles)."""
    for line in text.splitlines():
        if line.startswith(f"{name}_sum{{") and f'handler="{handler}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def kubeconfig(folder: Path, server: str) -> Path:
    file = folder / "kubeconfig"
    file.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: me, user: {token: bench}}]\n"
        "contexts: [{name: kmock, context: {cluster: kmock, user: me}}]\n"
    )
    return file


async def fetch_metrics(session: aiohttp.ClientSession, port: int) -> str | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            return await response.text()
    except aiohttp.ClientError:
        return None


async def run_size(count: int, *, timeout: float, hold: float, workdir: Path) -> dict[str, Any]:
    emulator = VersionedEmulator()
    emulator.history_limit = 0
    async with emulator, kmock.Server(emulator):
        declare_cluster(emulator, katib=True)
        metrics_port = free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig(workdir, str(emulator.url).rstrip("/"))),
               "KUBERNETES_SERVICE_HOST": "", "OMP_NUM_THREADS": "1",
               "KUBEVISION_OUTPUT_PVC": "kubevision-outputs",
               "KUBEVISION_TERMINATION_URL": "http://kubevision-operator.kubevision-system.svc:8082"}
        log = open(workdir / "operator.log", "wb")  # noqa: SIM115 - closed with the run
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kubevision.cli", "operator", "--all-namespaces", "--standalone",
            f"--metrics-port={metrics_port}", "--health-port=0", "--termination-port=0",
            env=env, stdout=log, stderr=log,
        )
        result: dict[str, Any] = {"jobs": count}
        async with aiohttp.ClientSession() as session:
            try:
                deadline = time.monotonic() + 60
                while await fetch_metrics(session, metrics_port) is None:
                    if time.monotonic() > deadline or process.returncode is not None:
                        raise RuntimeError("the operator did not start")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # kopf's watches established
                result["rss_idle_mib"] = rss_kib(process.pid)[0] / 1024

                created: dict[str, float] = {}
                seen: dict[str, float] = {}
                running: dict[str, float] = {}
                semaphore = asyncio.Semaphore(16)

                async def make(i: int) -> None:
                    name = f"job-{i:04d}"
                    async with semaphore:
                        body = job_manifest(name, uid=f"uid-{name}")
                        async with emulator.post(path(JOBS, NS), json=body) as response:
                            assert response.status < 300, await response.text()
                        created[name] = time.monotonic()

                async def watch() -> None:
                    # Poll the emulator's store directly (no API traffic), only what is not seen yet.
                    last = 0.0
                    experiment_resource, job_resource = kmock.resource(EXPERIMENTS), kmock.resource(JOBS)
                    store = emulator.objects._objects  # the emulator's dict (resource, ns, name) -> Object
                    while len(running) < count:
                        now = time.monotonic()
                        if now - last > 10:
                            last = now
                            print(f"  {len(created)} created, {len(seen)} Experiments, {len(running)} Running",
                                  file=sys.stderr, flush=True)
                        for name in created:
                            if name not in seen:
                                exp = store.get((experiment_resource, NS, name))
                                if exp is not None and not exp.deleted:
                                    seen[name] = now
                            if name not in running:
                                job = store.get((job_resource, NS, name))
                                if job is not None and not job.deleted and \
                                        (job.last.raw.get("status") or {}).get("phase") == "Running":
                                    running[name] = now
                        await asyncio.sleep(0.25)

                start = time.monotonic()
                cpu_operator, cpu_emulator = cpu_s(process.pid), time.process_time()
                watcher = asyncio.create_task(watch())
                await asyncio.gather(*(make(i) for i in range(count)))
                result["create_s"] = time.monotonic() - start
                try:
                    await asyncio.wait_for(asyncio.shield(watcher), timeout=timeout)
                except TimeoutError:
                    watcher.cancel()
                result["cpu_operator_s"] = cpu_s(process.pid) - cpu_operator
                result["cpu_emulator_s"] = time.process_time() - cpu_emulator
                result["experiments"] = len(seen)
                result["all_experiments_s"] = (max(seen.values()) - start) if len(seen) == count else None
                result["all_running_s"] = (max(running.values()) - start) if len(running) == count else None
                latencies = [seen[n] - created[n] for n in created if n in seen]
                result["lat_p50_ms"] = percentile(latencies, 0.5) * 1000
                result["lat_p99_ms"] = percentile(latencies, 0.99) * 1000
                await asyncio.sleep(hold)  # a few status-timer rounds over all jobs
                text = await fetch_metrics(session, metrics_port) or ""
                for handler in ("start", "reconcile"):
                    p50, n = histogram_quantile(text, "kubevision_reconcile_duration_seconds", handler, 0.5)
                    p99, _ = histogram_quantile(text, "kubevision_reconcile_duration_seconds", handler, 0.99)
                    result[f"{handler}_p50_ms"], result[f"{handler}_p99_ms"] = p50 * 1000, p99 * 1000
                    result[f"{handler}_n"] = n
                    total = histogram_sum(text, "kubevision_reconcile_duration_seconds", handler)
                    result[f"{handler}_mean_ms"] = total / n * 1000 if n else float("nan")
                rss, hwm = rss_kib(process.pid)
                result["rss_end_mib"], result["rss_peak_mib"] = rss / 1024, hwm / 1024
                errors = [line for line in text.splitlines() if line.startswith("kubevision_api_errors_total{")]
                result["api_errors"] = sum(float(line.rsplit(" ", 1)[1]) for line in errors)
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(process.wait(), timeout=60)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
                log.close()
                errors_logged = [line for line in (workdir / "operator.log").read_text(errors="replace").splitlines()
                                 if "ERROR" in line]
                result["log_errors"] = len(errors_logged)
                if errors_logged:
                    print("  operator log errors, first: " + errors_logged[0][:300], file=sys.stderr)
        return result


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for all Experiments per size.")
    parser.add_argument("--hold", type=float, default=25, help="Seconds of steady state before reading metrics.")
    args = parser.parse_args()
    rows = []
    for count in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            print(f"running {count} jobs ...", file=sys.stderr, flush=True)
            rows.append(await run_size(count, timeout=args.timeout, hold=args.hold, workdir=Path(folder)))
    print(f"date {datetime.date.today()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = ("jobs", "create s", "all Experiments s", "all Running s", "create->Experiment p50/p99 ms",
              "start mean, p50/p99 ms (n)", "reconcile mean, p50/p99 ms (n)", "RSS idle/end/peak MiB",
              "CPU s operator / emulator", "API errors")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([
            str(r["jobs"]), fmt(r["create_s"], 1), fmt(r["all_experiments_s"], 1), fmt(r["all_running_s"], 1),
            f"{fmt(r['lat_p50_ms'])} / {fmt(r['lat_p99_ms'])}",
            f"{fmt(r['start_mean_ms'], 1)}, {fmt(r['start_p50_ms'], 1)} / {fmt(r['start_p99_ms'], 1)} "
            f"({r['start_n']})",
            f"{fmt(r['reconcile_mean_ms'], 1)}, {fmt(r['reconcile_p50_ms'], 1)} / {fmt(r['reconcile_p99_ms'], 1)} "
            f"({r['reconcile_n']})",
            f"{fmt(r['rss_idle_mib'])} / {fmt(r['rss_end_mib'])} / {fmt(r['rss_peak_mib'])}",
            f"{fmt(r['cpu_operator_s'], 1)} / {fmt(r['cpu_emulator_s'], 1)}",
            fmt(r["api_errors"]),
        ]) + " |")
    print("  experiments seen: " + ", ".join(f"{r['jobs']} jobs -> {r['experiments']}" for r in rows))


if __name__ == "__main__":
    asyncio.run(main())
