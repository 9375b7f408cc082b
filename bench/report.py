"""The printed tables and the JSON file of a run: one section per workload, each skipped if it did not run."""

import json
from collections.abc import Sequence
from pathlib import Path


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = [f"\n{title}", "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _header(report: dict) -> list[str]:
    machine = report["machine"]
    tree = "" if report["work_tree_clean"] else " (work tree modified)"
    cpus = (
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}; {machine['placement']}; "
        f"{machine['load_generator_processes']} load-generator processes"
    )
    load = (
        f"load average at start {' '.join(machine['loadavg_at_start'])}, "
        f"at end {' '.join(machine.get('loadavg_at_end', []))} "
        "(other work on the server's CPU shows as run-queue wait below)"
    )
    return [f"Sala bench, commit {report['commit'] or '?'}{tree}, preset {report['preset']}", cpus, load]


def _connect(report: dict) -> list[str]:
    rows = [
        [c["target"], c["shape"], c["connections"], sum(c["failures"].values()), c["seconds"], c["welcome_ms_p50"],
         c["welcome_ms_p99"], c["server_cpu_ms_per_connection"]]
        for c in report["connect"]
    ]  # fmt: skip
    headers = ["target", "shape", "sockets", "failed", "seconds", "to welcome p50 ms", "p99 ms", "server CPU ms/socket"]
    return [table("Connecting (every join is broadcast to the room, so big rooms connect slowly)", headers, rows)]


def _fanout(report: dict) -> list[str]:
    rows = []
    for f in report["fanout"]:
        latency = f["latency_ms"]
        rows.append([
            f["target"] + ("*" if f["contended"] else ""), f"{f['shape']}@{f['rate_per_member']:g}",
            f["offered_deliveries_per_second"], f["deliveries_per_second"], latency["p50"], latency["p95"],
            latency["p99"], latency["max"], f["lost"], f["duplicated"],
            sum(f["errors"].values()) + sum(f["closes"].values()), _percent(f["server"]["cpu_utilization"]),
            f["server"]["runqueue_wait_seconds"], f["server_cpu_us_per_delivery"], f["redis_cpu_us_per_message"],
        ])  # fmt: skip
    headers = ["target", "shape@r", "offered/s", "delivered/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost", "dup",
               "errors", "server CPU", "runq wait s", "µs CPU/delivery", "Redis µs/msg"]  # fmt: skip
    title = (
        "Fan-out (delivery = one message frame reaching one member; latency at every member but the sender;\n"
        "* = the server waited for its CPU over 10% of the run: other work on the machine)"
    )
    return [table(title, headers, rows)]


def _saturation(report: dict) -> list[str]:
    rows = [
        [s["target"], s["shape"], s["max_sustained_deliveries_per_second"], s["at_rate_per_member"], s["p99_ms_at_max"],
         _percent(s["server_cpu_utilization_at_max"]), _percent(s["loadgen_cpu_utilization_at_max"]), len(s["steps"]),
         s["ceiling_reached"],
         max((step["deliveries_per_server_cpu_second"] or 0 for step in s["steps"]), default=None)]
        for s in report["saturation"]
    ]  # fmt: skip
    headers = ["target", "shape", "max deliveries/s", "at r", "p99 ms", "server CPU", "load-gen CPU", "steps",
               "ceiling found", "best deliveries per CPU-second"]  # fmt: skip
    title = (
        "Saturation: highest sustained deliveries/s of ONE gateway process (p99 <= 200 ms, >= 99% acked and delivered,\n"
        "no drops; a load generator near 100% of its CPU would make the figure a lower bound)"
    )
    return [table(title, headers, rows)]


def _ratios(report: dict) -> list[str]:
    rows = [
        [r["workload"], r["shape"], r["figure"], r["against"], r["sala"], r["yardstick"], r["ratio"]]
        for r in report["ratios"]
    ]
    title = (
        "Sala / each yardstick, same run (baseline: websockets; picows: picows + uvloop, the harder one;\n"
        "CPU, latency, KiB and seconds: lower is better; max deliveries/s: higher is better)"
    )
    return [table(title, ["workload", "shape", "figure", "against", "sala", "yardstick", "ratio"], rows)]


def _idle(report: dict) -> list[str]:
    rows = [
        [i["target"], i["connections"], sum(i["failures"].values()), i["rss_before_kib"], i["rss_after_kib"],
         i["rss_kib_per_connection"], i["connect_seconds"], i["connections_per_second"], i["welcome_ms_p99"],
         i["server_cpu_ms_per_connection"]]
        for i in report["idle"]
    ]  # fmt: skip
    headers = ["target", "sockets", "failed", "RSS before KiB", "RSS after KiB", "KiB/socket", "connect s",
               "sockets/s", "to welcome p99 ms", "server CPU ms/socket"]  # fmt: skip
    title = f"Idle connections on one gateway, rooms of {report['idle'][0]['room_size']}"
    return [table(title, headers, rows)]


def _connect_cost(report: dict) -> list[str]:
    """The CPU one new socket costs the server, wherever the run measured it, side by side."""
    rows = [[i["target"], f"idle: {i['connections']} sockets, rooms of {i['room_size']}",
             i["server_cpu_ms_per_connection"]] for i in report.get("idle") or []]  # fmt: skip
    rows += [[c["target"], f"fan-out population {c['shape']}", c["server_cpu_ms_per_connection"]]
             for c in report.get("connect") or []]  # fmt: skip
    if report.get("storm"):
        s = report["storm"]
        rows.append(["sala", f"storm: {s['sockets']} sockets on {s['gateways']} gateways",
                     s["connect_cpu_ms_per_socket"]])  # fmt: skip
        rows.append(["sala", "storm: a reconnect with since, on a survivor", s["gateway_cpu_ms_per_reconnect"]])
    title = "Connect cost: server CPU per new socket (handshake, token, join, history, welcome)"
    return [table(title, ["target", "measured in", "server CPU ms/socket"], rows)]


def _storm(report: dict) -> list[str]:
    s = report["storm"]
    latency = s["bystander_latency_ms"]
    rows = [
        ["sockets on the gateways, rooms of", f"{s['sockets']:,} on {s['gateways']}, {s['room_size']}"],
        ["sockets dropped by the kill", s["dropped"]],
        ["handshake gate: per gateway per second / burst", " / ".join(s.get("handshake_gate", {}).values()) or "-"],
        ["reconnected / gave up", f"{s['reconnected']:,} / {s['gave_up']}"],
        ["seconds until everyone is back", s["seconds_until_everyone_back"] if s["everyone_back"] else "NOT ALL BACK"],
        ["seconds from the kill until dropped p50 / max", " / ".join(map(_cell, s["seconds_until_dropped_p50_max"]))],
        ["seconds until upgraded (101) p50 / max", " / ".join(map(_cell, s["seconds_until_upgraded_p50_max"]))],
        ["reconnect seconds p50 / p99", f"{_cell(s['reconnect_seconds_p50'])} / {_cell(s['reconnect_seconds_p99'])}"],
        ["attempts per reconnect", ", ".join(f"{k}: {v}" for k, v in s["attempts_per_reconnect"].items()) or "-"],
        ["failed attempts (of which refused with 1013)",
         f"{sum(s['failed_attempts'].values())} ({s['closes'].get('1013', 0)})"],
        ["messages acked / resent from the outbox", f"{s['acked']:,} / {s['resent_from_outbox']:,}"],
        ["acked messages lost (must be 0)", s["lost"]],
        ["duplicates (must be 0)", s["duplicated"]],
        ["sent, never acked", s["unacked_at_end"]],
    ]
    for window in ("before", "during", "after"):
        w = latency[window]
        rows.append([f"bystanders' latency {window} ms p50 / p99 / max",
                     f"{_cell(w['p50'])} / {_cell(w['p99'])} / {_cell(w['max'])} ({w['deliveries']:,} deliveries)"])  # fmt: skip
    rows += [
        ["survivors' CPU before / during", f"{_percent(s['survivors_cpu_utilization_before'])} / "
                                           f"{_percent(s['survivors_cpu_utilization_during'])}"],
        ["survivors' run-queue wait before / during (s per s)", f"{_cell(s['survivors_runqueue_wait_before'])} / "
                                                                 f"{_cell(s['survivors_runqueue_wait_during'])}"],
        ["load generator / Redis CPU during", f"{_percent(s['loadgen_cpu_utilization_during'])} / "
                                              f"{_percent(s['redis_cpu_utilization_during'])}"],
        ["gateway CPU ms per reconnect (chat cost removed)", s["gateway_cpu_ms_per_reconnect"]],
        ["Redis CPU ms per reconnect", s["redis_cpu_ms_per_reconnect"]],
    ]  # fmt: skip
    title = (
        f"Reconnect storm: one of {s['gateways']} gateways killed (SIGKILL) while everyone chats at "
        f"{s['rate_per_member']:g} msg/s;\nclients come back as the web client does (jittered backoff, since, outbox)"
    )
    return [table(title, ["what", "value"], rows)]


def _memprobe(report: dict) -> list[str]:
    m = report["memprobe"]
    name = f"What one idle socket holds ({m['sockets']:,} sockets, rooms of {m['room_size']}; tracemalloc"
    parts = [
        table(
            f"{name}: {m['traced_kib_per_socket']} KiB traced per socket), by allocating line",
            ["line", "bytes/socket", "blocks/socket"],
            [[r["where"], r["bytes_per_socket"], r["blocks_per_socket"]] for r in m["by_line"]],
        )
    ]
    for key, what in (("by_package", "package of the allocating line"), ("by_sala_line", "Sala's line that asked")):
        rows = [[r["where"], r["bytes_per_socket"]] for r in m[key]]
        parts.append(table(f"What one idle socket holds, by {what}", [what, "bytes/socket"], rows))
    return parts


def _login(report: dict) -> list[str]:
    g = report["login"]
    argon2, latency = g["argon2"], g["latency_ms"]
    title = (
        f"Login through the edge (argon2id m={argon2['memory_kib']} KiB t={argon2['time_cost']} "
        f"p={argon2['parallelism']}, auth on the server CPU)"
    )
    row = [g["concurrency"], g["logins"], g["logins_per_second"], latency["p50"], latency["p99"], latency["max"],
           sum(g["failures"].values()), _percent(g["auth"]["cpu_utilization"])]  # fmt: skip
    return [
        table(title, ["clients", "logins", "logins/s", "p50 ms", "p99 ms", "max ms", "failures", "auth CPU"], [row])
    ]


def _redis(report: dict) -> list[str]:
    r = report["redis"]
    rows = [[f"append_message script, {k} subscribed", v] for k, v in r["script_us_per_event_by_subscribers"].items()]
    rows.append(["PUBLISH alone, 1 subscribed", r["publish_us_per_event_one_subscriber"]])
    fit = r["fit_us_per_event"]
    rows.append([f"fit: {fit['base']} µs + {fit['per_subscriber']} µs per subscribed gateway", ""])
    return [table("Redis CPU per event, pipelined (the server's own CPU time)", ["what", "µs/event"], rows)]


def _cluster(report: dict) -> list[str]:
    c = report["cluster"]
    rows = [
        [p["deployment"], p["publish"], p["subscribers"], p["batch"], p["redis_us_per_message"], p["primaries_us_per_message"],
         p["replicas_us_per_message"], f"{p['deliveries_received']:,} / {p['deliveries_expected']:,}", p["errors"],
         p["redis_runqueue_wait_seconds"]]
        for p in c["cost"]
    ]  # fmt: skip
    title = (
        f"Redis CPU per message, one server against a cluster (Sala's append script, {c['body_bytes']}-byte body, "
        "in pipelined batches or one\nper round trip; every node's CPU summed, replicas included, idle background "
        "taken off; Redis on the server CPU)"
    )
    headers = ["deployment", "publish", "gateways", "batch", "µs/msg", "primaries", "replicas", "delivered", "errors",
               "runq wait s"]  # fmt: skip
    parts = [table(title, headers, rows)]
    rows = []
    for t in c["throughput"]:
        loaded = [n for n in t["nodes"] if n["loaded"]]
        rows.append([
            t["primaries_loaded"], t["placement"], t["messages_per_second"], t["redis_us_per_message"],
            " ".join(_percent(n["cpu_utilization"]) for n in loaded),
            " ".join(_cell(n["messages_per_cpu_second"]) for n in loaded),
            _percent(t["loaders_cpu_utilization"]), _percent(t["subscribers_cpu_utilization"]), t["errors"],
            t["redis_runqueue_wait_seconds"],
        ])  # fmt: skip
    title = (
        "Cluster throughput, SPUBLISH (pinned: the loaded primary alone on the server CPU; unpinned: nodes and load\n"
        "generator share every CPU, so on a small machine the figure is the machine's, CPU per message is what scales)"
    )
    headers = ["primaries", "placement", "messages/s", "Redis µs/msg", "primary CPU", "msgs per primary CPU-s",
               "load-gen CPU", "stand-ins CPU", "errors", "runq wait s"]  # fmt: skip
    parts.append(table(title, headers, rows))
    shard = c.get("per_shard")
    if shard:
        rows = [
            ["messages per primary CPU-second, pipelined (the per-shard ceiling)", shard["messages_per_cpu_second"]],
            ["measured with the primary on its CPU / waiting for it",
             f"{_percent(shard['cpu_utilization'])} / {_percent(shard['runqueue_wait_share'])}"],
            ["messages per primary CPU-second, one message per round trip", shard["messages_per_cpu_second_unbatched"]],
        ]  # fmt: skip
        for users, counts in shard["shards_needed"].items():
            rows.append([
                f"primaries for {int(users):,} users at {shard['messages_per_user_per_second']:g} msg/s, "
                f"each at {shard['planned_utilization']:.0%} (pipelined / one per round trip)",
                " / ".join(_cell(count) for count in counts),
            ])  # fmt: skip
        parts.append(table("Per shard", ["what", "value"], rows))
    return parts


def _side_by_side(left: list[dict], right: list[dict]) -> list[list[str]]:
    blank = {"what": "", "share": None}
    rows = []
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else blank
        b = right[index] if index < len(right) else blank
        rows.append([a["what"], _share(a["share"]), b["what"][:90], _share(b["share"])])
    return rows


def _profiles(report: dict) -> list[str]:
    parts = []
    for p in report["profiles"]:
        name = f"Profile of {p['target']} under fan-out {p['shape']}@{p['rate_per_member']:g}"
        title = f"{name} ({p['samples']} busy samples, {p['flamegraph']}): self time"
        rows = _side_by_side(p["self_by_package"], p["self"])
        parts.append(table(title, ["package", "share", "function", "share "], rows))
        rows = [[entry["what"], _share(entry["share"])] for entry in p["own_code_inclusive"]]
        parts.append(
            table(f"{name}: time under the server's own functions, callees included", ["function", "share"], rows)
        )
    return parts


SECTIONS = [
    ("connect", _connect),
    ("fanout", _fanout),
    ("saturation", _saturation),
    ("ratios", _ratios),
    ("idle", _idle),
    ("idle", _connect_cost),
    ("storm", _storm),
    ("memprobe", _memprobe),
    ("login", _login),
    ("redis", _redis),
    ("cluster", _cluster),
    ("profiles", _profiles),
]


def render(report: dict) -> str:
    parts = _header(report)
    for key, section in SECTIONS:
        if report.get(key):
            parts += section(report)
    return "\n".join(parts) + "\n"


def write(report: dict, out_dir: Path) -> Path:
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path
