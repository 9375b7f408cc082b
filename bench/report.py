"""The printed tables and the JSON file of a run."""

import json
from collections.abc import Sequence
from pathlib import Path


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "0"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    line = "  ".join("-" * width for width in widths)
    out = [f"\n{title}", "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def _errors(entry: dict) -> int:
    return sum(entry["errors"].values()) + sum(entry["closes"].values())


def _side_by_side(left: list[dict], right: list[dict]) -> list[list[str]]:
    blank = {"what": "", "share": None}
    rows = []
    for index in range(max(len(left), len(right))):
        a, b = (left[index] if index < len(left) else blank), (right[index] if index < len(right) else blank)
        rows.append([a["what"], _share(a["share"]), b["what"][:90], _share(b["share"])])
    return rows


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def render(report: dict) -> str:
    machine = report["machine"]
    parts = [
        f"Sala bench, commit {report['commit']}{'' if report['work_tree_clean'] else ' (work tree modified)'}, "
        f"preset {report['preset']}",
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}; {machine['placement']}; "
        f"{machine['load_generator_processes']} load-generator processes",
        f"load average at start {' '.join(machine['loadavg_at_start'])}, at end {' '.join(machine.get('loadavg_at_end', []))} "
        "(another busy process on the server CPU shows as run-queue wait below)",
    ]
    if report["connect"]:
        parts.append(table(
            "Connecting (every join is broadcast to the room, so big rooms connect slowly)",
            ["target", "shape", "sockets", "seconds", "to welcome p50 ms", "p99 ms", "server CPU ms/socket"],
            [[c["target"], c["shape"], c["connections"], c["seconds"], c["welcome_ms_p50"], c["welcome_ms_p99"], c["server_cpu_ms_per_connection"]] for c in report["connect"]],
        ))
    if report["fanout"]:
        parts.append(table(
            (
                "Fan-out (delivery = one message frame reaching one member; latency at every member but the sender;\n"
                "* = the server waited for its CPU over 10% of the run: other work on the machine)"
            ),
            ["target", "shape@r", "offered/s", "delivered/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost", "dup", "errors",
             "server CPU", "runq wait s", "µs CPU/delivery", "Redis µs/msg"],
            [[f["target"] + ("*" if f["contended"] else ""), f"{f['shape']}@{f['rate_per_member']:g}", f["offered_deliveries_per_second"], f["deliveries_per_second"],
              f["latency_ms"]["p50"], f["latency_ms"]["p95"], f["latency_ms"]["p99"], f["latency_ms"]["max"], f["lost"], f["duplicated"],
              _errors(f), f"{f['server']['cpu_utilization']:.0%}", f["server"]["runqueue_wait_seconds"], f["server_cpu_us_per_delivery"],
              f["redis_cpu_us_per_message"]] for f in report["fanout"]],
        ))
    if report["saturation"]:
        parts.append(table(
            "Saturation: highest sustained deliveries/s of ONE gateway process (p99 <= 200 ms, >= 99% delivered, no drops)",
            ["target", "shape", "max deliveries/s", "at r", "p99 ms", "server CPU", "steps", "ceiling found",
             "best deliveries per CPU-second"],
            [[s["target"], s["shape"], s["max_sustained_deliveries_per_second"], s["at_rate_per_member"], s["p99_ms_at_max"],
              None if s["server_cpu_utilization_at_max"] is None else f"{s['server_cpu_utilization_at_max']:.0%}", len(s["steps"]),
              s["ceiling_reached"], max((step["deliveries_per_server_cpu_second"] or 0 for step in s["steps"]), default=None)]
             for s in report["saturation"]],
        ))
    if report.get("ratios"):
        parts.append(table(
            "Sala / baseline, same run (CPU per delivery and latency: lower is better; max deliveries/s: higher is better)",
            ["workload", "shape", "figure", "sala", "baseline", "ratio"],
            [[r["workload"], r["shape"], r["figure"], r["sala"], r["baseline"], r["ratio"]] for r in report["ratios"]],
        ))
    if "idle" in report:
        i = report["idle"]
        parts.append(table(
            "Idle connections on one gateway",
            ["sockets", "failed", "RSS before KiB", "RSS after KiB", "KiB/socket", "connect s", "sockets/s", "to welcome p99 ms",
             "server CPU ms/socket"],
            [[i["connections"], sum(i["failures"].values()), i["rss_before_kib"], i["rss_after_kib"], i["rss_kib_per_connection"],
              i["connect_seconds"], i["connections_per_second"], i["welcome_ms_p99"], i["server_cpu_ms_per_connection"]]],
        ))
    if "login" in report:
        g = report["login"]
        argon2 = g["argon2"]
        parts.append(table(
            f"Login through the edge (argon2id m={argon2['memory_kib']} KiB t={argon2['time_cost']} p={argon2['parallelism']}, auth on the server CPU)",
            ["clients", "logins", "logins/s", "p50 ms", "p99 ms", "max ms", "failures", "auth CPU"],
            [[g["concurrency"], g["logins"], g["logins_per_second"], g["latency_ms"]["p50"], g["latency_ms"]["p99"], g["latency_ms"]["max"],
              sum(g["failures"].values()), f"{g['auth']['cpu_utilization']:.0%}"]],
        ))
    if "redis" in report:
        r = report["redis"]
        rows = [[f"append_message script, {k} subscribed", v] for k, v in r["script_us_per_event_by_subscribers"].items()]
        rows.append(["PUBLISH alone, 1 subscribed", r["publish_us_per_event_one_subscriber"]])
        rows.append([f"fit: {r['fit_us_per_event']['base']} µs + {r['fit_us_per_event']['per_subscriber']} µs per subscribed gateway", ""])
        parts.append(table("Redis CPU per event (server's own CPU time)", ["what", "µs/event"], rows))
    for p in report["profiles"]:
        title = f"Profile of {p['target']} under fan-out {p['shape']}@{p['rate_per_member']:g} ({p['samples']} busy samples, {p['flamegraph']})"
        parts.append(table(title + ": self time", ["package", "share", "function", "share "], _side_by_side(p["self_by_package"], p["self"])))
        parts.append(table(
            f"Profile of {p['target']}: time under the server's own functions (callees included)",
            ["function", "share"],
            [[entry["what"], f"{entry['share']:.1%}"] for entry in p["own_code_inclusive"]],
        ))
    return "\n".join(parts) + "\n"


def write(report: dict, out_dir: Path) -> Path:
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path
