"""Results beside their targets: the JSON of a run, and the table in bench/README.md."""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

Row = tuple[str, str, str, bool | None]  # benchmark, target, measured, met (None: no target)

START, END = "<!-- results:start -->", "<!-- results:end -->"


def machine(kafka_version: str, postgres_version: str) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka_version,
        "postgres": postgres_version,
    }


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# Results of runs before sealing have no "sealing": they are of unsealed runs.
SEALING_LABELS = {"off": "", "twins": " of sealed runs with v1 twins",
                  "v2-only": " of sealed runs, v2 events only"}  # fmt: skip


def _engine(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for replicas, result in (_get(r, "engine-throughput") or {}).items():
        sealing = SEALING_LABELS[result.get("sealing", "off")]
        label = f"engine throughput{sealing}, {replicas} executor replica(s), 4 partitions"
        met = result["runs_per_s"] >= 2000 and result["events_per_s"] >= 10_000
        measured = (f"{_n(result['runs_per_s'])} runs/s ({_n(result['events_per_s'])} "
                    f"events/s), {result['ended']:,}/{result['runs']:,} runs ended")  # fmt: skip
        if result.get("sealing", "off") == "twins":
            measured += (f"; {_n(result['event_records_per_s'])} event records/s written, "
                         "v1 twins included")  # fmt: skip
        rows.append((label, "≥ 2,000 runs/s (≥ 10,000 events/s)", measured, met))
    for rate, latency in (_get(r, "engine-latency") or {}).items():
        lat = latency["latency"]
        measured = (f"p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, max "
                    f"{lat.get('max_ms')} ms; {latency['achieved_runs_per_s']} runs/s sent, "
                    f"{latency['missing']} not completed")  # fmt: skip
        on_target = latency["missing"] == 0 and lat.get("p99_ms", 1e9) <= 250
        met = on_target if int(rate) >= 500 else None
        rows.append((f"engine latency at {rate} runs/s, trigger to completed",
                     "p99 ≤ 250 ms at 500 runs/s", measured, met))  # fmt: skip
    return rows


def _api(r: dict[str, Any]) -> list[Row]:
    api = _get(r, "api")
    if not api:
        return []
    most = api["max"]
    rows: list[Row] = [
        ("API triggers, open-ended", "≥ 3,000 req/s",
         f"{_n(most['accepted_per_s'])} req/s accepted, p50 {most['latency'].get('p50_ms')} ms,"
         f" p99 {most['latency'].get('p99_ms')} ms ({most['workers']} connections)",
         most["accepted_per_s"] >= 3000),
    ]  # fmt: skip
    for rate, steady in api["steady"].items():
        lat = steady["latency"]
        failed = {code: n for code, n in steady["status"].items() if code != "202"}
        answers = ", ".join(f"{n:,} answered {'nothing in 10 s' if code == '0' else code}"
                            for code, n in failed.items()) or "every answer 202"  # fmt: skip
        measured = (f"p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms of the 202s; "
                    f"{answers}")  # fmt: skip
        met = not failed and lat.get("p99_ms", 1e9) <= 50 if int(rate) >= 1500 else None
        rows.append((f"API triggers at {rate} req/s", "p99 ≤ 50 ms at 1,500 req/s", measured, met))
    return rows


def _timers(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    punctual = _get(r, "timer-punctuality")
    if punctual:
        lat = punctual["lateness"]
        measured = (f"p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, max "
                    f"{lat.get('max_ms')} ms; {punctual['early']} early, {punctual['missing']} "
                    f"missing, {punctual['duplicates']} duplicates")  # fmt: skip
        met = (punctual["early"] == 0 and punctual["missing"] == 0
               and lat.get("p99_ms", 1e9) <= 50 and lat.get("p50_ms", 1e9) <= 10)  # fmt: skip
        rows.append((f"timer punctuality, {punctual['count']:,} due within "
                     f"{punctual['window_seconds']:.0f} s",
                     "lateness p99 ≤ 50 ms, p50 ≤ 10 ms, none early", measured, met))  # fmt: skip
    for pending, step in (_get(r, "timer-scale", "steps") or {}).items():
        lat = step["lateness"]
        measured = (f"{step['expected']:,} near timers: p50 {lat.get('p50_ms')} ms, p99 "
                    f"{lat.get('p99_ms')} ms, {step['early']} early, {step['missing']} missing;"
                    f" scheduler RSS {step['scheduler_rss_mb']} MB")  # fmt: skip
        met = (step["early"] == 0 and step["missing"] == 0 and lat.get("p99_ms", 1e9) <= 50
               and step["scheduler_rss_mb"] <= 250)  # fmt: skip
        rows.append(
            (
                f"timer scale, {int(pending):,} pending far-future timers",
                "RSS ≤ 250 MB; near timers within the punctuality target",
                measured,
                met,
            )
        )
    return rows


def _projection(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    projection = _get(r, "projection")
    if projection:
        measured = (f"{_n(projection['events_per_s'])} events/s from start "
                    f"({_n(projection['events_per_s_after_first_batch'])} after the first "
                    f"batch), {projection['events']:,} events")  # fmt: skip
        rows.append(("projection catch-up", "≥ 10,000 events/s", measured,
                     projection["events_per_s"] >= 10_000))  # fmt: skip
    for rate, latency in (_get(r, "engine-latency") or {}).items():
        lag = latency["projection_lag"]
        rows.append((f"projection lag under the engine-latency load, {rate} runs/s",
                     "p99 ≤ 1 s at 500 runs/s",
                     f"p50 {lag.get('p50_ms')} ms, p99 {lag.get('p99_ms')} ms",
                     lag.get("p99_ms", 1e9) <= 1000 if int(rate) >= 500 else None))  # fmt: skip
    return rows


def _references(r: dict[str, Any]) -> list[Row]:
    ref = _get(r, "references")
    if not ref:
        return []
    k, pg = ref["kafka"], ref["postgres"]
    return [
        ("reference: aiokafka produce", "reported",
         f"{_n(k['produce_per_s'])} records/s ({k['record_bytes']} B, acks=all)", None),
        ("reference: aiokafka consume", "reported", f"{_n(k['consume_per_s'])} records/s", None),
        ("reference: PostgreSQL insert", "reported",
         f"{_n(pg['executemany_rows_per_s'])} rows/s executemany, "
         f"{_n(pg['copy_rows_per_s'])} rows/s COPY", None),
    ]  # fmt: skip


def _forgetting(r: dict[str, Any]) -> list[Row]:
    f = _get(r, "forgetting")
    if not f:
        return []
    first, compacted = f["restore"], f["restore_compacted"]
    measured = (f"{f['forgotten']:,}/{f['runs']:,} forgotten; restore {first['seconds']} s "
                f"({f['changelog_records']:,} records, {first['runs']:,} runs back), executor "
                f"RSS {first['rss_mb']} MB; compacted: restore {compacted['seconds']} s "
                f"({f['changelog_records_compacted']:,} records), "
                f"RSS {compacted['rss_mb']} MB")  # fmt: skip
    return [(f"run table after {f['runs']:,} ended runs", "restore and RSS follow active runs",
             measured, None)]  # fmt: skip


def _ingest(r: dict[str, Any]) -> list[Row]:
    ingest = _get(r, "events-ingest")
    if not ingest:
        return []
    rows: list[Row] = []
    for name, run in ingest.items():
        if name == "reference":
            continue
        lat = run["latency"]
        failed = {code: n for code, n in run["status"].items() if code != "202"}
        answers = "; " + ", ".join(f"{n:,} answered {'nothing in 10 s' if code == '0' else code}"
                                   for code, n in failed.items()) if failed else ""  # fmt: skip
        api_rss = (run.get("rss") or {}).get("api", {}).get("peak_mb")
        measured = (f"{_n(run['events_per_s'])} events/s ({run['requests_per_s']} req/s of "
                    f"{run['batch']}), batch p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')}"
                    f" ms ({run['workers']} connections); {run['commands_in_kafka']:,} commands "
                    f"in Kafka for {run['events_accepted'] + run['warmup_events']:,} accepted; "
                    f"API RSS peak {api_rss} MB{answers}")  # fmt: skip
        sealed = name.startswith("sealed")
        label = "sealed (the default)" if sealed else "sealing off"
        replicas = run.get("api_replicas", 1)
        label += f", {replicas} API replicas" if replicas > 1 else ""
        if run.get("returning_patients"):
            label += f", events of {run['returning_patients']:,} patients with a key already"
        rows.append((f"patient events ingest, POST /events, {label}",
                     "≥ 20,000 events/s accepted into Kafka", measured,
                     run["events_per_s"] >= 20_000 if sealed else None))  # fmt: skip
    ref = ingest.get("reference")
    if ref:
        measured = ", ".join(f"{_n(ref[n]['records_per_s'])} records/s {n} "
                             f"({ref[n]['record_bytes']} B)" for n in ("sealed", "clear")
                             if n in ref)  # fmt: skip
        rows.append(("reference: aiokafka produce of the same event commands", "reported",
                     f"{measured} (acks=all, idempotent)", None))  # fmt: skip
    return rows


def _resume(r: dict[str, Any]) -> list[Row]:
    resume = _get(r, "event-resume-latency")
    if not resume:
        return []
    lat = resume["latency"]
    measured = (f"p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, max "
                f"{lat.get('max_ms')} ms; {resume['matched']:,}/{resume['accepted']:,} matched, "
                f"{resume['missing']} missing")  # fmt: skip
    lost = resume.get("requests_skipped", 0) + resume.get("requests_failed", 0)
    if lost:
        measured += f"; {lost:,} requests skipped or not answered 202"
    sent, answer = resume.get("latency_from_send"), resume.get("answer_latency")
    if sent and answer:
        measured += (f"; from the request sent: p50 {sent.get('p50_ms')} ms, p99 "
                     f"{sent.get('p99_ms')} ms (the 202 itself p50 {answer.get('p50_ms')} ms, "
                     f"p99 {answer.get('p99_ms')} ms)")  # fmt: skip
    met = resume["missing"] == 0 and lat.get("p99_ms", 1e9) <= 100
    per_request = resume.get("events_per_request", 1)
    return [(f"event resume latency, 202 to event.matched, {resume['rate']} events/s "
             f"({per_request} a request) to {resume['runs']:,} waiting runs", "p99 ≤ 100 ms",
             measured, met)]  # fmt: skip


def _patients(r: dict[str, Any]) -> list[Row]:
    memory = _get(r, "patient-memory")
    if not memory:
        return []
    restore, bounded, cap = memory["restore"], memory["bounded"], memory["cap"]
    rows: list[Row] = [
        (f"executor holding {memory['patients']:,} patients, {memory['events_per_patient']} "
         "sealed events each", "reported",
         f"restore {restore['seconds']} s ({memory['changelog_mb']} MB of records, "
         f"{memory['record_bytes_mean']:,} B each), RSS once restored {restore['rss_mb']} MB",
         None),
    ]  # fmt: skip
    kept = cap["events_kept_max"]
    first_full = (f"{bounded['bytes_first_full_max']:,} B at {kept} events"
                  if bounded["bytes_first_full_max"] else f"never {kept} kept")  # fmt: skip
    measured = (f"{bounded['patients']} patients holding {bounded['events_before']} events, "
                f"{bounded['events_per_patient']} more each: at most {bounded['recent_max']} "
                f"kept, {bounded['seen_final']} receipt ids; {first_full}, "
                f"{bounded['bytes_final_max']:,} B at the last; cap {cap['bytes']:,} B "
                f"({kept} events, {cap['event_dedup_max']:,} receipt ids)")  # fmt: skip
    # Bounded, and not below the cap either: a patient with more events than the cap keeps
    # exactly the cap, as many as a wait may look back over.
    should_keep = min(kept, bounded["events_before"] + bounded["events_per_patient"])
    met = bounded["all_recorded"] and bounded["recent_max"] == should_keep
    rows.append(("patient record with events ever seen",
                 f"bounded per patient; the last {kept} events kept", measured, met))  # fmt: skip
    return rows


def _delivery(r: dict[str, Any]) -> list[Row]:
    d = _get(r, "delivery-throughput")
    if not d or not d.get("reported"):
        return []
    gateway = d.get("gateway", {})
    measured = (f"{_n(d['messages_per_s'])} messages/s ({_n(d['steady_messages_per_s'])} over "
                f"the middle 80%), {d['reported']:,}/{d['messages']:,} reported; the gateway "
                f"took {gateway.get('received', 0):,} once each, "
                f"{gateway.get('attempts', 0) - gateway.get('received', 0):,} repeats, "
                f"{gateway.get('bad_signatures', 0):,} bad signatures")  # fmt: skip
    met = d["finished"] and d["messages_per_s"] >= 2000
    return [("delivery throughput, one delivery service to a loopback webhook gateway",
             "≥ 2,000 messages/s sustained", measured, met)]  # fmt: skip


def _isolation(r: dict[str, Any]) -> list[Row]:
    d = _get(r, "delivery-isolation")
    if not d or "p99_ms" not in d.get("healthy", {}):
        return []
    healthy, hanging = d["healthy"], d["sms_hanging"]
    if "p99_ms" not in hanging:
        return [("delivery isolation: email runs while the SMS gateway hangs",
                 "p99 unchanged", "no email run ended", False)]  # fmt: skip
    measured = (
        f"email runs trigger to end p99 {hanging['p99_ms']:,} ms with the SMS gateway "
        f"hanging ({hanging['email_runs_ended']:,}/{d['runs']:,} ended), "
        f"{healthy['p99_ms']:,} ms healthy (p50 {hanging['p50_ms']:,} / "
        f"{healthy['p50_ms']:,} ms); {d['rate']:g} email and {d['rate']:g} SMS runs/s, the "
        f"SMS gateway holding each request past the channel's {d['sms_timeout_seconds']:g} s "
        f"timeout"
    )
    met = (hanging["email_runs_ended"] == d["runs"]
           and hanging["p99_ms"] <= 1.5 * healthy["p99_ms"] + 50)  # fmt: skip
    return [("delivery isolation: email runs while the SMS gateway hangs",
             "p99 at most 1.5 times (+50 ms) the healthy p99", measured, met)]  # fmt: skip


def _console(r: dict[str, Any]) -> list[Row]:
    d = _get(r, "console")
    if not d or "paging" not in d:
        return []
    paging = d["paging"]
    first = paging["first_page"]
    deep_name, deep = next((k, v) for k, v in paging.items() if k != "first_page")
    measured = (f"first page p99 {first['p99_ms']:,} ms (p50 {first['p50_ms']:,}), "
                f"{deep_name.replace('_', ' ')} p99 {deep['p99_ms']:,} ms, of {d['runs']:,} "
                "runs of one journey, signed in, client time")  # fmt: skip
    rows: list[Row] = [
        (
            "console: runs of a journey, paged",
            "first page ≤ 200 ms, no slower deep in",
            measured,
            first["p99_ms"] <= 200 and deep["p99_ms"] <= 200,
        )
    ]
    v = d.get("viewers") or {}
    if "p99_ms_with" in v:
        measured = (f"engine p99 {v['p99_ms_with']:,} ms with {v['opened']} live timelines open, "
                    f"{' and '.join(f'{x:,}' for x in v['p99_ms_without'])} ms without "
                    f"(before, after): {v['increase']:+.1%}; {v['rate']} runs/s for "
                    f"{v['seconds']:g} s each, {v['missing']} runs missing")  # fmt: skip
        met = v["opened"] == v["viewers"] and v["increase"] is not None and v["increase"] <= 0.10
        rows.append((f"console: {v['viewers']} live timelines beside the engine",
                     "engine p99 up ≤ 10%", measured, met))  # fmt: skip
    return rows


SECTIONS: list[Callable[[dict[str, Any]], list[Row]]] = [
    _engine, _api, _ingest, _resume, _delivery, _isolation, _timers, _projection, _patients,
    _forgetting, _console, _references]  # fmt: skip


def rows(results: dict[str, Any]) -> list[Row]:
    return [row for section in SECTIONS for row in section(results)]


def _met(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


def table(results: dict[str, Any]) -> str:
    lines = ["| benchmark | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {b} | {t} | {m} | {_met(met)} |" for b, t, m, met in rows(results)]
    return "\n".join(lines)


def memory_table(results: dict[str, Any]) -> str:
    """Each service's RSS at rest (before the load) and at peak, per benchmark."""
    lines = ["| benchmark | service | at rest (MB) | peak (MB) |", "|---|---|---|---|"]
    for name, result in results.get("benchmarks", {}).items():
        per_setting = name in ("engine-throughput", "engine-latency", "events-ingest")
        runs = result.items() if per_setting else [("", result)]
        for setting, run in runs:
            label = f"{name} ({setting})" if per_setting else name
            for service, rss in sorted((run.get("rss") or {}).items()):
                lines.append(f"| {label} | {service} | {rss['rest_mb']} | {rss['peak_mb']} |")
    return "\n".join(lines)


def render(run: dict[str, Any]) -> str:
    m = run["machine"]
    head = (f"Run of {run['started']} ({run['minutes']} min) on {m['cores']} cores "
            f"({m['cpu']}), {m['memory_gb']} GB, {m['os']}, Python {m['python']}, Kafka "
            f"{m['kafka']}, {m['postgres']}. Everything (broker, database, services, load) "
            f"on that one machine.")  # fmt: skip
    return "\n\n".join([head, table(run["benchmarks"]),
                        "Memory (RSS) of each service:", memory_table(run)])  # fmt: skip


def write(run: dict[str, Any], results_dir: Path, readme: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{run['started'][:10]}.json"
    path.write_text(json.dumps(run, indent=2) + "\n")
    text = readme.read_text()
    block = f"{START}\n{render(run)}\n\nRaw figures: `{path.name}`.\n{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                             flags=re.S))  # fmt: skip
    return path
