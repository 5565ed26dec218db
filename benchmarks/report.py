"""docs/performance.md and its plot from the figures of one run.py run. Only measured figures go in."""

from __future__ import annotations

import os

import bench_delivery_info
import bench_inventory
import bench_preview
import bench_scale
from module_profile import IMPORT_STAGES

GOAL_MODULE_VS_URI = 1.1
# Issue 13: the bulk send at most 4 x the bare requests script; the per-task play no dearer than the uri play.
GOAL_MODULE_VS_FLOOR = 4.0
GOAL_TASKS_VS_URI = 1.0
# Issue 24: a play of vz_sms_send tasks against the same number of ansible.builtin.debug tasks, the floor of any module.
GOAL_TASKS_VS_DEBUG = 1.5
GOAL_DIFF_SECONDS = 1.0
GOAL_CLAIM_SETTLE_SECONDS = 3.0
# "Linear or better": each x10 step in devices may cost at most x12 in time (x10 plus 20 % for the noise of
# these shared machines).
GOAL_GROWTH = 12.0
GROWTH_GOAL_PHASES = ("first_diff", "rerun_diff")
LEDGER_PHASES = (
    ("plan", "check the device list (plan_send)"),
    ("first_diff", "diff against an empty ledger (first run)"),
    ("claim_settle", "claim + settle, 10 batches"),
    ("rerun_diff", "diff against a full ledger (re-run)"),
    ("open_full", "open the full ledger (SQLite: PRAGMA quick_check, every task)"),
    ("reference", "reference, no ledger: a dict of the targets' states built and looked up once per target"),
)


def _growth_goal(ledger, step):
    """The growth allowed from one size to the next: linear, x10 plus 20 % for noise, or, where the machine's own
    dictionary work (the reference phase) grows faster at that size (caches), that growth plus 20 %."""
    return max(GOAL_GROWTH, ledger["growth"][step]["reference"] * GOAL_GROWTH / 10)


def _s(seconds):
    return "%.2f s" % seconds


def _ms(seconds):
    return "%.1f ms" % (seconds * 1000)


def _x(value):
    return "%.2f" % value


def _yes(flag):
    return "yes" if flag else "**no**"


def goals(results):
    """(item, measurement, figure, goal, met or None) rows of the summary."""
    bulk, tasks, ledger, emulator = results["bulk"], results["tasks"], results["ledger"], results["emulator"]
    wall = bulk["wall"]
    module_vs_uri = wall["module"]["median"] / wall["uri"]["median"]
    file_vs_floor = wall["file"]["median"] / wall["floor"]["median"]
    rows = [
        ("1", "bulk send, %s devices: vz_sms_send / uri playbook (wall)" % _n(bulk["devices"]), _x(module_vs_uri), "≤ %.1f" % GOAL_MODULE_VS_URI,
         module_vs_uri <= GOAL_MODULE_VS_URI),
        ("1", "bulk send: vz_sms_send with `devices_file` / requests script, the floor (wall)", _x(file_vs_floor), "≤ %.0f" % GOAL_MODULE_VS_FLOOR,
         file_vs_floor <= GOAL_MODULE_VS_FLOOR),
        ("1", "bulk send: vz_sms_send with the list templated into `devices` / requests script (wall)",
         _x(wall["module"]["median"] / wall["floor"]["median"]), "reported", None),
        ("1", "bulk send: Ansible alone, templating the list into a skipped task / requests script (wall)",
         _x(wall["ansible"]["median"] / wall["floor"]["median"]), "reported", None),
    ]
    if "before" in wall:
        rows.append(("1", "bulk send: vz_sms_send at `%s` (before, the list in `devices`) / requests script (wall)" % results["before"],
                     _x(wall["before"]["median"] / wall["floor"]["median"]), "reported", None))
    rows += [("1", "bulk send: uri playbook / requests script (wall)", _x(wall["uri"]["median"] / wall["floor"]["median"]), "reported", None)]
    for posts, label in (("rerun_sms_posts", "`devices`"), ("file_rerun_sms_posts", "`devices_file`")):
        rows.append(("2", "re-run, %s: POST /sms sent (every round)" % label, ", ".join(str(n) for n in bulk[posts]), "0", not any(bulk[posts])))
    rows.append(("2", "re-run / first run, `devices` (wall)", _x(wall["rerun"]["median"] / wall["module"]["median"]), "reported", None))
    module_logins = tasks["logins"]["module"]
    login_text = ", ".join("%d + %d" % (entry["oauth"], entry["session"]) for entry in module_logins)
    rows += [
        ("3", "play of %d vz_sms_send tasks: OAuth + session logins (every round)" % tasks["tasks"], login_text, "1 + 1",
         all(entry["oauth"] == 1 and entry["session"] == 1 for entry in module_logins)),
    ]
    for kind in ("wall", "cpu"):
        ratio = tasks[kind]["module"]["median"] / tasks[kind]["uri"]["median"]
        label = "play of %d vz_sms_send tasks / play of 2 + %d uri tasks (%s)" % (tasks["tasks"], tasks["tasks"], "CPU" if kind == "cpu" else kind)
        rows.append(("3", label, _x(ratio), "≤ %.1f" % GOAL_TASKS_VS_URI, ratio <= GOAL_TASKS_VS_URI))
    rows += debug_goals(tasks)
    if "before" in tasks["wall"]:
        rows.append(("3", "the same play at `%s` (before) / the uri play (wall)" % results["before"],
                     _x(tasks["wall"]["before"]["median"] / tasks["wall"]["uri"]["median"]), "reported", None))
    largest = str(ledger["sizes"][-1])
    for phase in ("first_diff", "rerun_diff"):
        seconds = ledger["seconds"][largest][phase]
        label = dict(LEDGER_PHASES)[phase]
        rows.append(("4", "ledger, %s devices: %s" % (_n(int(largest)), label), _s(seconds), "< %.0f s" % GOAL_DIFF_SECONDS, seconds < GOAL_DIFF_SECONDS))
    steps = ", ".join(_step(step) for step in ledger["growth"])
    for phase in ("first_diff", "rerun_diff", "claim_settle", "reference"):
        factors = [ledger["growth"][step][phase] for step in ledger["growth"]]
        label = dict(LEDGER_PHASES)[phase]
        met = all(factor <= _growth_goal(ledger, step) for factor, step in zip(factors, ledger["growth"])) if phase in GROWTH_GOAL_PHASES else None
        goal = "≤ x%.0f, or %.1f times the growth of the reference (linear)" % (GOAL_GROWTH, GOAL_GROWTH / 10) if met is not None else "reported"
        rows.append(("4", "growth per x10 devices (%s): %s" % (steps, label), ", ".join("x%.1f" % f for f in factors), goal, met))
    postgresql = results["ledger_postgresql"]
    for phase, goal in (("rerun_diff", GOAL_DIFF_SECONDS), ("claim_settle", GOAL_CLAIM_SETTLE_SECONDS), ("first_diff", None)):
        seconds = postgresql["seconds"][largest][phase]
        label = "ledger on PostgreSQL, %s devices: %s" % (_n(int(largest)), dict(LEDGER_PHASES)[phase])
        rows.append(("4", label, _s(seconds), "< %.0f s" % goal if goal else "reported", seconds < goal if goal else None))
    for name, label in (("sms_10k_seconds", "emulator: POST /sms with 10,000 devices (slowest of 5)"),
                        ("sms_100k_in_10_seconds", "emulator: 100,000 devices in 10 POST /sms"),
                        ("callbacks_per_second", "emulator: callback fan-out")):
        goal = emulator["goals"][name]
        figure = "%.0f callbacks/s" % emulator[name] if name == "callbacks_per_second" else _s(emulator[name])
        target = "≥ %.0f/s" % goal["goal"] if name == "callbacks_per_second" else "< %.0f s" % goal["goal"]
        rows.append(("5", label, figure, target, goal["met"]))
    controllers = results["controllers"]
    rows.append(("6", "%d controllers x %s devices / 1 controller x %s, ledger in PostgreSQL (wall)" % (
        controllers["controllers"], _n(controllers["devices"] // controllers["controllers"]), _n(controllers["devices"])),
        _x(controllers["wall"]["four"]["median"] / controllers["wall"]["one"]["median"]), "reported", None))
    rows += callback_goals(results)
    rows += campaign_goals(results)
    return rows


def debug_goals(tasks):
    """The rows of the vz_sms_send play against the debug play, the floor (none for figures from before it existed)."""
    rows = []
    for kind in ("wall", "cpu") if "debug" in tasks["wall"] else ():
        ratio = tasks[kind]["module"]["median"] / tasks[kind]["debug"]["median"]
        label = "play of %d vz_sms_send tasks / play of %d debug tasks, the floor (%s)" % (tasks["tasks"], tasks["tasks"], "CPU" if kind == "cpu" else kind)
        rows.append(("3", label, _x(ratio), "≤ %.1f" % GOAL_TASKS_VS_DEBUG, ratio <= GOAL_TASKS_VS_DEBUG))
    return rows


def tasks_text(tasks):
    """Phase 3 as text (``run.py --only tasks``)."""
    wall, cpu = tasks["wall"], tasks["cpu"]
    lines = ["%s: wall %s (median, %s - %s), CPU %s" % (name, _s(wall[name]["median"]), _s(wall[name]["min"]), _s(wall[name]["max"]), _s(cpu[name]["median"]))
             for name in wall]
    goals_met = ["%s: %s (goal %s, %s)" % (label, figure, goal, "met" if met else "NOT met") for _item, label, figure, goal, met in debug_goals(tasks)]
    return "\n".join(lines + goals_met)


CALLBACK_STORES = (("memory", "in memory"), ("sqlite", "into the SQLite ledger"), ("postgresql", "into the PostgreSQL ledger"))


def callback_goals(results):
    """The summary rows of section 7 (none for figures from before it existed)."""
    rows = []
    for store, label in CALLBACK_STORES:
        figures = results.get("callbacks", {}).get(store)
        if figures:
            goal = figures["goal_callbacks_per_second"]
            rows.append(("7", "callbacks source, %s: callbacks/s (median), none lost" % label, "%s/s" % _n(round(figures["callbacks_per_second"])),
                         "≥ %s/s" % _n(round(goal)) if goal else "reported, none lost", figures["met"]))
    stores = results.get("callbacks", {})
    if "postgresql" in stores and "sqlite" in stores:
        for key, label in (("callbacks_per_second", "wall"), ("callbacks_per_source_cpu_second", "per CPU second of the source")):
            ratio = stores["postgresql"][key] / stores["sqlite"][key]
            rows.append(("7", "callbacks source, PostgreSQL / SQLite ledger (%s, medians)" % label, _x(ratio), "≥ 1.0", ratio >= 1.0))
    for store, figures in sorted(results.get("callbacks_sustained", {}).items()):
        rows.append(("7", "callbacks source, %d s sustained from the emulator into the %s ledger: callbacks/s, none lost, memory flat" % (
            figures["seconds"], "PostgreSQL" if store == "postgresql" else "SQLite"), "%s/s" % _n(figures["received_per_second"]),
            "≥ %s/s" % _n(round(figures["goal_callbacks_per_second"])), figures["met"]))
    return rows


def campaign_goals(results):
    """The summary rows of section 8, the staged campaign (bench_campaign.py; none for figures from before it existed)."""
    campaign, rows = results.get("campaign"), []
    for store, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        figures = (campaign or {}).get(store)
        if figures:
            goal = campaign["goals"]
            rows += [
                ("8", "campaign, %s devices, 3 waves / vz_sms_send + the waits, %s ledger (wall)" % (_n(campaign["devices"]), label),
                 "%s (%s / %s)" % (_x(figures["ratio"]), _s(figures["campaign_seconds"]), _s(figures["send_seconds"])),
                 "≤ %.1f" % goal["campaign_vs_send"], figures["ratio"] <= goal["campaign_vs_send"]),
                ("8", "campaign: one gate evaluation over %s devices, %s ledger (median)" % (_n(campaign["devices"]), label),
                 _s(figures["gate_seconds"]), "< %.0f s" % goal["gate_seconds"], figures["gate_seconds"] < goal["gate_seconds"]),
                ("8", "campaign: max_per_minute %s, densest 10-minute window / 10 x max_per_minute, %s ledger (compressed clock)"
                 % (_n(figures["pace"]["max_per_minute"]), label), "%s / %s" % (_n(figures["pace"]["densest_window"]), _n(round(figures["pace"]["allowed"]))),
                 "within %.0f %%" % (100 * goal["pace_excess"]), abs(figures["pace"]["excess"]) <= goal["pace_excess"]),
            ]
    return rows


def campaign_section(results):
    """Section 8 of the report: the staged campaign (no lines for figures from before it existed)."""
    campaign = results.get("campaign")
    if not campaign:
        return []
    lines = [
        "",
        "## 8. A staged campaign",
        "",
        "`benchmarks/bench_campaign.py`, in-process against the emulator (clock x3600, no delivery delay): a campaign of %s devices"
        % _n(campaign["devices"]),
        "in three waves (%s, success: delivered), stepped as a playbook loop would (`campaign.step`, wait: none), against"
        % ", ".join(str(wave) for wave in campaign["waves"]),
        "one `vz_sms_send` of the same devices; in both, each delivery is recorded right after the send by the callbacks",
        "source's own recorder (the waits, without the network's delay). The gate evaluation is `campaign.reading` of the figures over the",
        "finished campaign (median of %d); the pace is a campaign of 70,000 devices at 6,000 a minute on `step`'s compressed" % results.get("rounds", 3),
        "clock (sends real), and the densest 10-minute window of the devices' `sent_at`.",
        "",
        "| ledger | vz_sms_send + waits | campaign | ratio (goal ≤ %.1f) | gate evaluation (goal < %.0f s) | densest 10 min / 10 x max_per_minute |"
        % (campaign["goals"]["campaign_vs_send"], campaign["goals"]["gate_seconds"]),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for store, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        figures = campaign.get(store)
        if figures:
            pace = figures["pace"]
            cells = (label, _s(figures["send_seconds"]), _s(figures["campaign_seconds"]), _x(figures["ratio"]), _s(figures["gate_seconds"]),
                     _n(pace["densest_window"]), _n(round(pace["allowed"])))
            lines.append("| %s | %s | %s | %s | %s | %s / %s |" % cells)
    return lines


def callback_section(results):
    """Section 7 of the report: the callbacks source into each store (no lines for figures from before it existed)."""
    callbacks = results.get("callbacks")
    if not callbacks:
        return []
    first = next(iter(callbacks.values()))
    lines = [
        "",
        "## 7. The callbacks event source",
        "",
        "`benchmarks/bench_callbacks.py`: the source `thingspace.m2m.callbacks` in a process of its own, drained as ansible-rulebook",
        "does; another process posts %s distinct callbacks over %d keep-alive connections, then every one again (ThingSpace's"
        % (_n(first["callbacks"]), first["connections"]),
        "retries). Each is recorded before it is answered: in memory, in the SQLite ledger (WAL, synchronous=FULL) or in PostgreSQL;",
        "%d rounds, each checked: every callback answered 200 and queued once, its repeat not queued, the ledger holding each once." % len(first["rounds"]),
        "",
        "| store | callbacks/s (median) | min - max | per CPU second of the source (median) | repeats/s (median) | none lost |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for store, label in CALLBACK_STORES:
        figures = callbacks.get(store)
        if figures:
            lines.append("| %s | %s | %s - %s | %s | %s | %s |" % (
                label, _n(round(figures["callbacks_per_second"])), _n(figures["callbacks_per_second_min"]), _n(figures["callbacks_per_second_max"]),
                _n(round(figures["callbacks_per_source_cpu_second"])), _n(round(figures["repeats_per_second"])), _yes(figures["none_lost"])))
    loads = [figures["load_average"] for figures in callbacks.values() if "load_average" in figures]
    if loads:
        low, high = min(pair[0] for pair in loads), max(pair[1] for pair in loads)
        lines += ["", "Load average (1 minute) at the start of the passes: %.1f - %.1f." % (low, high)]
    return lines + sustained_section(results)


def sustained_section(results):
    """The sustained run of section 7 (``make bench CALLBACKS_SUSTAINED=600``), when it ran."""
    runs = results.get("callbacks_sustained")
    if not runs:
        return []
    first = next(iter(runs.values()))
    lines = [
        "",
        "### Sustained, from the emulator",
        "",
        "`bench_callbacks.sustained` (`make bench CALLBACKS_SUSTAINED=%d`): the emulator sends the source callbacks for %d s," % (
            first["seconds"], first["seconds"]),
        "one POST /sms to %s devices a second (each device's \"sent\" callback and delivery confirmation, one" % _n(first["devices_per_send"]),
        "\"request complete\" per send: %s callbacks/s offered) with %d callback threads; then the backlog drains. Resident memory of the source" % (
            _n(first["offered_per_second"]), first["callback_workers"]),
        "process from /proc/PID/status. None lost: the ledger holds, per type, what the emulator's sends made, each marked",
        "queued, and the source queued exactly as many.",
        "",
        "| ledger | received/s (whole run) | 10-s windows: min / median | drain after the last send | VmRSS after 1 min / at the end | VmHWM "
        "| none lost | load average |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for store, figures in sorted(runs.items()):
        lines.append("| %s | %s | %s / %s | %.1f s | %s / %s | %s | %s | %.1f - %.1f |" % (
            "PostgreSQL" if store == "postgresql" else "SQLite", _n(figures["received_per_second"]), _n(figures["window_per_second_min"] or 0),
            _n(figures["window_per_second_median"] or 0), figures["drain_seconds"], _kb(figures["rss_kb_after_first_minute"] * 1024),
            _kb(figures["rss_kb_end"] * 1024), _kb(figures["hwm_kb"] * 1024), _yes(figures["none_lost"]), *figures["load_average"]))
    lines.append("")
    for store, figures in sorted(runs.items()):
        total = figures["source_cpu_per_callback_ms"] + figures["emulator_cpu_per_callback_ms"] + figures["database_cpu_per_callback_ms"]
        lines.append("- %s: CPU per callback %.3f ms in the source, %.3f ms in the emulator, %.3f ms in the source's database session: %s callbacks "
                     "per CPU second of the three." % ("PostgreSQL" if store == "postgresql" else "SQLite", figures["source_cpu_per_callback_ms"],
                                                       figures["emulator_cpu_per_callback_ms"], figures["database_cpu_per_callback_ms"],
                                                       _n(round(1000 / total)) if total else "?"))
    return lines


def _timing_rows(section, names):
    rows = []
    for key, label in names:
        wall, cpu = section["wall"][key], section["cpu"][key]
        rows.append("| %s | %s | %s - %s | %s |" % (label, _s(wall["median"]), _s(wall["min"]), _s(wall["max"]), _s(cpu["median"])))
    return rows


def module_parts(one, per_task):
    """A task run as a module, part by part (label, wall seconds), adding up to ``per_task``: the differences of the
    module-process timings of ``one`` (module_profile.profile) and the module's timers."""
    walls, stages = one["walls"], one["stages"]
    imports = {name: stages.get(name, 0.0) for name in IMPORT_STAGES}
    in_process = sum(imports.values()) + stages["module_run"]
    return [
        ("controller: ansible-playbook's work for the task", per_task - walls["payload"]),
        ("AnsiballZ wrapper: unpack the zip, zipimport", walls["payload"] - walls["exploded"]),
        ("Python process start-up and exit", walls["exploded"] - in_process),
        ("import ansible.module_utils.basic", imports["import_basic"]),
        ("import requests", imports["import_requests"]),
        ("import pydantic + build the models", imports["import_pydantic"] + imports["import_models"]),
        ("import sqlite3 + collection code", imports["import_collection"] + imports["import_sqlite3"]),
        ("module run: checks, ledger, tokens, HTTP, result", stages["module_run"]),
    ]


def controller_parts(controller, per_task):
    """A task the action plugin runs in the controller's worker, part by part, adding up to ``per_task``."""
    run = controller["stages"]["module_run"]
    return [
        ("controller: ansible-playbook's work for the task (a forked worker, templating, result, callbacks)", per_task - run),
        ("module code in the worker: checks, ledger, tokens, HTTP, result", run),
    ]


def task_parts(results):
    """(title, parts) of one task of section 3's play: before (when measured) and after."""
    profile, tasks = results["profile"], results["tasks"]
    n = tasks["tasks"]
    parts = []
    if "one_before" in profile:
        parts.append(("before (`%s`, a module)" % results["before"], module_parts(profile["one_before"], tasks["wall"]["before"]["median"] / n)))
    parts.append(("after (in the controller)", controller_parts(profile["one_controller"], tasks["wall"]["module"]["median"] / n)))
    return parts


def markdown(results, plot_name):
    machine, bulk, tasks, ledger, emulator, profile = (results[k] for k in ("machine", "bulk", "tasks", "ledger", "emulator", "profile"))
    rounds = results["rounds"]
    lines = [
        "# Performance",
        "",
        "What the collection costs against what a user would write instead (an `ansible.builtin.uri` playbook, a bare",
        "`requests` script), measured by `make bench` against the emulator on loopback with a fleet of %s devices. The figures"
        % _n(bulk["devices"]),
        "are from one run on %s: %s CPU(s) (%s), Python %s, ansible-core %s, SQLite %s, PostgreSQL %s (fsync on), checkout `%s`."
        % (machine["date"], machine["nproc"], machine["cpu"], machine["python"], machine["ansible_core"], machine["sqlite"], machine["postgresql"],
           machine["git"]),
        "These machines are shared and noisy, so every comparison is made side by side in the same run, %d rounds with the" % rounds,
        "order reversed every other round: tables give the median, the range and the median CPU time (user + system of the",
        "process tree, not the emulator's); ratios are ratios of the medians, and they are what carries over to other machines.",
        "",
        "## Reproduce",
        "",
        "`make bench` (about %.0f minutes here; it rewrites this page and `performance.png`; `BENCH_BEFORE=REF` also measures"
        % (results["runtime_seconds"] / 60),
        "the collection at REF, side by side). `benchmarks/run.py --rounds N --tasks N --keep --json-out FILE` keeps the playbooks,",
        "logs and payloads and writes every figure as JSON; `--from-json FILE` writes the page again from them; `--only inventory`",
        "measures section 9 alone. `benchmarks/bench_emulator.py`, `ledger_scaling.py [--postgresql]`, `bench_campaign.py` and",
        "`module_profile.py --driver DEBUG_DIR [--controller]` also run alone. The run starts its own PostgreSQL server",
        "(tests/utils/postgresql.py: PostgreSQL's binaries must be installed).",
        "",
        "## Summary",
        "",
        "The measurements with a goal (each section has the rest):",
        "",
        "| # | measurement | figure | goal | met |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for item, label, figure, goal, met in goals(results):
        if met is not None:
            lines.append("| %s | %s | %s | %s | %s |" % (item, label, figure, goal, _yes(met)))
    if plot_name:
        lines += ["", "![Benchmark figures of this run](%s)" % plot_name]

    wall = bulk["wall"]
    before = "before" in wall
    lines += [
        "",
        "## 1. Bulk send: %s devices by ID" % _n(bulk["devices"]),
        "",
        "- **vz_sms_send**: one task, `devices: \"{{ fleet.devices }}\"`, a fresh state dir per round; on localhost the action",
        "  plugin runs it in Ansible's worker (docs/design.md, \"Tasks on the controller\"). **With `devices_file`**: the same",
        "  task reading `devices.json` itself, so Ansible templates no list.",
        "- **uri playbook**: an OAuth token task, a login task, then one `uri` task looping over `fleet.devices | batch(%d)`." % bulk["batch"],
        "- **requests script** (`benchmarks/requests_floor.py`): the same token, login and %d POSTs on one Session, no checks, no"
        % (bulk["devices"] // bulk["batch"]),
        "  ledger: the floor. **Ansible alone**: the play with a skipped `debug` task taking the list, the cost of templating it.",
    ]
    if before:
        lines.append("- **vz_sms_send at `%s`**: the collection at that commit, in the same rounds." % results["before"])
    variants = [("file", "vz_sms_send with `devices_file`, first run"), ("module", "vz_sms_send, the list in `devices`, first run")]
    if before:
        variants.append(("before", "vz_sms_send at `%s`, first run" % results["before"]))
    variants += [("uri", "uri playbook"), ("floor", "requests script"), ("ansible", "Ansible alone (the list templated into a skipped task)")]
    lines += ["", "| variant | wall (median) | wall (min - max) | CPU (median) |", "| --- | ---: | ---: | ---: |"]
    lines += _timing_rows(bulk, variants)
    lines += [
        "",
        "Ratios of the medians (wall): vz_sms_send with `devices` / requests script %s, uri playbook / requests script %s, Ansible alone /"
        % (_x(wall["module"]["median"] / wall["floor"]["median"]), _x(wall["uri"]["median"] / wall["floor"]["median"])),
        "requests script %s%s. Every variant's requests were counted in the emulator's log (last round): %s."
        % (_x(wall["ansible"]["median"] / wall["floor"]["median"]),
           "; vz_sms_send / at `%s` %s" % (results["before"], _x(wall["module"]["median"] / wall["before"]["median"])) if before else "",
           _requests_text(bulk["requests"])),
        "What it means: a send to %s devices costs %s with `devices_file`, %s times the bare script; with the list in `devices`,"
        % (_n(bulk["devices"]), _s(wall["file"]["median"]), _x(wall["file"]["median"] / wall["floor"]["median"])),
        "%s of it is Ansible templating the list before any module runs (Ansible alone), which no task taking the list escapes."
        % _s(wall["ansible"]["median"]),
        "",
        "## 2. Re-run of the same rollout",
        "",
        "Each vz_sms_send playbook again, same inputs and state dir (same ledger), right after each first run (section 1).",
        "",
        "| variant | wall (median) | wall (min - max) | CPU (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += _timing_rows(bulk, (("rerun", "`devices`: re-run"), ("file_rerun", "`devices_file`: re-run")))
    lines += [
        "",
        "Requests of the re-runs, per round: %s with `devices`, %s with `devices_file` (POST /sms: %s and %s). Re-run / first run:"
        % (", ".join(str(n) for n in bulk["rerun_all_requests"]), ", ".join(str(n) for n in bulk["file_rerun_all_requests"]),
           ", ".join(str(n) for n in bulk["rerun_sms_posts"]), ", ".join(str(n) for n in bulk["file_rerun_sms_posts"])),
        "%s (wall) with `devices`, %s with `devices_file`: a re-run reads the ledger and sends nothing."
        % (_x(wall["rerun"]["median"] / wall["module"]["median"]), _x(wall["file_rerun"]["median"] / wall["file"]["median"])),
    ]

    n = tasks["tasks"]
    twall, tcpu = tasks["wall"], tasks["cpu"]
    plays = [("module", "%d vz_sms_send tasks" % n)] + ([("before", "%d vz_sms_send tasks at `%s`" % (n, results["before"]))] if "before" in twall else [])
    plays.append(("uri", "2 + %d uri tasks" % n))
    if "debug" in twall:
        plays.append(("debug", "%d debug tasks (the floor)" % n))
    lines += [
        "",
        "## 3. Per-task overhead: %d tasks of 1 device" % n,
        "",
        "A play of %d vz_sms_send tasks, each sending to another device, a fresh state dir per play (empty token cache), against" % n,
        "the OAuth token and login tasks and %d `uri` tasks, and %d `ansible.builtin.debug` tasks: Ansible's own cost per task," % (n, n),
        "the floor of any module.",
        "",
        "| play | wall (median) | wall (min - max) | CPU (median) | wall per task |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in plays:
        row = twall[key]
        cells = (label, _s(row["median"]), _s(row["min"]), _s(row["max"]), _s(tcpu[key]["median"]), _ms(row["median"] / n))
        lines.append("| %s | %s | %s - %s | %s | %s |" % cells)
    lines += [
        "",
        "vz_sms_send play / uri play: %s (wall), %s (CPU). Requests per round (OAuth, login, POST /sms): %s."
        % (_x(twall["module"]["median"] / twall["uri"]["median"]), _x(tcpu["module"]["median"] / tcpu["uri"]["median"]),
           "; ".join("%s play %s" % ({"module": "vz_sms_send", "before": "before", "uri": "uri"}[key], _logins_text(tasks["logins"][key]))
                     for key, _label in plays if key in tasks["logins"])),
        "What it means: the tokens are cached, so a play logs in once, and on the controller each task runs in Ansible's worker",
        "without a Python of its own: a task costs %s, against %s for a `uri` task." % (_ms(twall["module"]["median"] / n), _ms(twall["uri"]["median"] / n)),
    ]
    if "debug" in twall:
        lines.append("vz_sms_send play / debug play (the floor): %s (wall), %s (CPU)."
                     % (_x(twall["module"]["median"] / twall["debug"]["median"]), _x(tcpu["module"]["median"] / tcpu["debug"]["median"])))

    postgresql = results["ledger_postgresql"]
    lines += [
        "",
        "## 4. Ledger scaling",
        "",
        "The collection's own code (`plan_send`, `SmsSend.run`, `Ledger`), no HTTP, on a new SQLite file, then a new PostgreSQL",
        "schema, per size and round; median of %d rounds. Claim + settle is a first run's ledger work (10 batches); the re-run" % ledger["rounds"],
        "diff is what a re-run does before it finds nothing left to send. Linear is x10 per step; the goal allows x%.0f (noise), or" % GOAL_GROWTH,
        "1.2 times the growth of the reference (the diff's dictionary work alone, which outgrows the CPU's caches). PostgreSQL's",
        "table leaves out the two phases that do not touch the ledger.",
        "",
    ]
    for name, figures in (("SQLite", ledger), ("PostgreSQL", postgresql)):
        lines += [
            "| %s: phase | " % name + " | ".join("%s devices" % format(size, ",") for size in figures["sizes"]) + " | "
            + " | ".join("growth %s" % _step(step) for step in figures["growth"]) + " |",
            "| --- | " + " | ".join("---:" for _size in figures["sizes"]) + " | " + " | ".join("---:" for _step in figures["growth"]) + " |",
        ]
        for phase, label in LEDGER_PHASES if figures is ledger else LEDGER_PHASES[1:-1]:
            cells = [_ms(figures["seconds"][str(size)][phase]) for size in figures["sizes"]]
            factors = ["x%.1f" % figures["growth"][step][phase] for step in figures["growth"]]
            lines.append("| %s | %s | %s |" % (label, " | ".join(cells), " | ".join(factors)))
        lines.append("")
    largest = str(ledger["sizes"][-1])
    lines += [
        "What it means: the ledger's work grows with the devices, no faster than linearly within the goal; at %s devices a re-run's diff takes %s on"
        % (format(int(largest), ","), _s(ledger["seconds"][largest]["rerun_diff"])),
        "SQLite and %s on PostgreSQL, whose claim + settle (%s) is the price of sharing one ledger between controllers."
        % (_s(postgresql["seconds"][largest]["rerun_diff"]), _s(postgresql["seconds"][largest]["claim_settle"])),
        "",
        "## 5. Emulator",
        "",
        "`benchmarks/bench_emulator.py` on the same emulator (%s devices; callbacks go to a listener in another process):" % _n(bulk["devices"]),
        "",
        "| measurement | figure |",
        "| --- | ---: |",
        "| POST /sms with 10,000 devices, median of 5 | %s |" % _ms(emulator["sms_10k_median_seconds"]),
        "| POST /sms with 10,000 devices, slowest of 5 | %s |" % _ms(emulator["sms_10k_seconds"]),
        "| 100,000 devices in 10 POST /sms | %s |" % _s(emulator["sms_100k_in_10_seconds"]),
        "| callback fan-out (%s callbacks for one 10,000-device send) | %.0f callbacks/s (%s) |"
        % (_n(emulator["callbacks"]), emulator["callbacks_per_second"], _s(emulator["fan_out_seconds"])),
        "| API call during the fan-out, median / max | %.1f / %.1f ms |"
        % (emulator["api_during_fan_out_ms"]["median"], emulator["api_during_fan_out_ms"]["max"]),
        "| health call during the fan-out, median / max | %.1f / %.1f ms |"
        % (emulator["health_during_fan_out_ms"]["median"], emulator["health_during_fan_out_ms"]["max"]),
    ]

    controllers = results["controllers"]
    cwall, ccpu, count = controllers["wall"], controllers["cpu"], controllers["controllers"]
    share = controllers["devices"] // count
    lines += [
        "",
        "## 6. Several controllers, one PostgreSQL ledger",
        "",
        "`benchmarks/bench_controllers.py`: %d `ansible-playbook` processes started together (own state dirs, %d logins), each sending"
        % (count, count),
        "to its own %s devices under one key, against one process sending to all %s; the ledger in PostgreSQL. Each round was"
        % (_n(share), _n(controllers["devices"])),
        "checked: every device once in the emulator and `sent` in the ledger. The %d processes share %s CPU(s)." % (count, results["machine"]["nproc"]),
        "",
        "| variant | wall (median) | wall (min - max) | CPU (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += _timing_rows(controllers, (("one", "1 controller x %s devices" % _n(controllers["devices"])),
                                        ("four", "%d controllers x %s devices" % (count, _n(share)))))
    lines += [
        "",
        "%d controllers / 1 controller: %s (wall), %s (CPU); section 1's single controller with the SQLite ledger: %s wall."
        % (count, _x(cwall["four"]["median"] / cwall["one"]["median"]), _x(ccpu["four"]["median"] / ccpu["one"]["median"]),
           _s(results["bulk"]["wall"]["module"]["median"])),
    ]

    lines += callback_section(results)
    lines += campaign_section(results)
    lines += bench_inventory.section(results)
    lines += bench_scale.section(results)
    lines += bench_delivery_info.section(results)
    lines += bench_preview.section(results)

    one = profile["one"]
    walls, cpus = one["walls"], one["cpus"]
    controller = profile["one_controller"]["stages"]
    lines += [
        "",
        "## Profile: where a vz_sms_send task's time goes",
        "",
        "`benchmarks/module_profile.py` runs a real task's AnsiballZ payload again (ANSIBLE_KEEP_REMOTE_FILES=1), exploded and",
        "with timers around the module's hot path, and the same arguments as the action plugin runs them in the controller",
        "(`--controller`); it prints every stage. Token cache warm, a new ledger per run, median of %d runs, 1 device." % one["rounds"],
        "",
        "| what | wall | CPU |",
        "| --- | ---: | ---: |",
        "| one vz_sms_send task in the %d-task play (section 3, play / %d) | %s | %s |"
        % (n, n, _ms(twall["module"]["median"] / n), _ms(tcpu["module"]["median"] / n)),
        "| the same task run as a module process (`python AnsiballZ_vz_sms_send.py`) | %s | %s |" % (_ms(walls["payload"]), _ms(cpus["payload"])),
        "| Python start-up alone (`python -c pass`), for reference | %s | %s |" % (_ms(walls["python_start"]), _ms(cpus["python_start"])),
    ]
    parts = controller_parts(profile["one_controller"], twall["module"]["median"] / n)
    lines += [
        "",
        "As a module, a task pays an AnsiballZ unpack, a Python start and the imports of `ansible.module_utils.basic`, requests",
        "and pydantic every time; in the controller the imports are paid once per play (%s in the `--controller` run), in"
        % _ms(sum(controller.get(name, 0.0) for name in IMPORT_STAGES)),
        "ansible-playbook's main process before it forks the workers. Of a task's %s in the play, Ansible's own work (a forked"
        % _ms(twall["module"]["median"] / n),
        "worker, templating, the result) is %s and the module's code %s. In the bulk play (section 1) Ansible alone took %s of the"
        % (_ms(parts[0][1]), _ms(parts[1][1]), _s(wall["ansible"]["median"])),
        "%s: what remains, %s wall, is the vz_sms_send task itself (checks, ledger, %d requests)."
        % (_s(wall["module"]["median"]), _s(wall["module"]["median"] - wall["ansible"]["median"]), bulk["devices"] // bulk["batch"]),
    ]
    return "\n".join(lines) + "\n"


def _requests_text(requests):
    """The requests of the bulk variants: one list when every variant made the same, else each variant's."""
    texts = {name: ", ".join("%d %s" % (counts[request], request) for request in sorted(counts)) for name, counts in requests.items()}
    if len(set(texts.values())) == 1:
        return "each made " + next(iter(texts.values()))
    return "; ".join("%s: %s" % (name, text) for name, text in sorted(texts.items()))


def _logins_text(entries):
    """'1, 1, 50 in every round', or each round's."""
    rounds = ["%d, %d, %d" % (entry["oauth"], entry["session"], entry["sms"]) for entry in entries]
    return "%s in every round" % rounds[0] if len(set(rounds)) == 1 else "; ".join(rounds)


def _step(step):
    """'1000->10000' as '1k → 10k'."""
    return " → ".join("%dk" % (int(size) // 1000) for size in step.split("->"))


def _n(count):
    return format(count, ",")


def _kb(size):
    return "%.0f KB" % (size / 1000) if size < 1_000_000 else "%.1f MB" % (size / 1_000_000)


def plot(results, path):
    """The figures of the run as one PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    bulk, tasks, ledger = results["bulk"], results["tasks"], results["ledger"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    figure.suptitle("thingspace.m2m benchmarks, one run (%s, %s CPUs)" % (results["machine"]["date"], results["machine"]["nproc"]))

    def bars(axis, labels, section, keys, title):
        medians = [section["wall"][k]["median"] for k in keys]
        low = [m - section["wall"][k]["min"] for m, k in zip(medians, keys)]
        high = [section["wall"][k]["max"] - m for m, k in zip(medians, keys)]
        cpu = [section["cpu"][k]["median"] for k in keys]
        positions = range(len(keys))
        axis.barh([p + 0.2 for p in positions], medians, height=0.4, xerr=[low, high], label="wall (median, min-max)", color="#3b6ea8")
        axis.barh([p - 0.2 for p in positions], cpu, height=0.4, label="CPU (median)", color="#a8c4e0")
        axis.set_yticks(list(positions))
        axis.set_yticklabels(labels)
        axis.invert_yaxis()
        axis.set_xlabel("seconds")
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8, loc="lower right")
        for p, m, k in zip(positions, medians, keys):
            axis.annotate("%.1f s" % m, (section["wall"][k]["max"], p + 0.2), xytext=(4, -3), textcoords="offset points", fontsize=8)

    before = ["before"] if "before" in bulk["wall"] else []
    bars(axes[0][0], ["vz_sms_send, devices_file", "vz_sms_send, devices", "the same re-run"] + ["vz_sms_send before"] * len(before)
         + ["uri playbook", "requests script", "Ansible alone"],
         bulk, ["file", "module", "rerun", *before, "uri", "floor", "ansible"], "1-2. Bulk send, %s devices" % format(bulk["devices"], ","))
    bars(axes[0][1], ["%d vz_sms_send tasks" % tasks["tasks"]] + ["the same before"] * len(before) + ["2 + %d uri tasks" % tasks["tasks"]], tasks,
         ["module", *before, "uri"], "3. Play of %d one-device tasks" % tasks["tasks"])

    axis = axes[1][0]
    for phase, label in LEDGER_PHASES:
        axis.plot(ledger["sizes"], [ledger["seconds"][str(size)][phase] for size in ledger["sizes"]], marker="o", label=label)
    axis.plot(ledger["sizes"], [ledger["seconds"][str(ledger["sizes"][0])]["claim_settle"] * size / ledger["sizes"][0] for size in ledger["sizes"]],
              linestyle=":", color="grey", label="linear (from claim + settle at %s)" % format(ledger["sizes"][0], ","))
    postgresql = results["ledger_postgresql"]
    for phase, label in LEDGER_PHASES[1:-1]:
        axis.plot(postgresql["sizes"], [postgresql["seconds"][str(size)][phase] for size in postgresql["sizes"]], marker="s", linestyle="--",
                  label="PostgreSQL: " + label)
    axis.axhline(GOAL_DIFF_SECONDS, color="red", linewidth=0.8, linestyle="--", label="diff goal (1 s)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("devices")
    axis.set_ylabel("seconds")
    axis.set_title("4. Ledger scaling, SQLite (solid) and PostgreSQL (dashed), median of %d" % ledger["rounds"], fontsize=10)
    axis.legend(fontsize=7)

    axis = axes[1][1]
    parts = [("%s: %s" % (title.split(" (")[0], label), seconds) for title, group in task_parts(results) for label, seconds in group]
    axis.barh(range(len(parts)), [seconds * 1000 for _label, seconds in parts], color="#3b6ea8")
    axis.set_yticks(range(len(parts)))
    axis.set_yticklabels([label[:70] for label, _seconds in parts], fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("milliseconds (wall)")
    axis.set_title("One vz_sms_send task of section 3, part by part", fontsize=10)
    for position, (_label, seconds) in enumerate(parts):
        axis.annotate("%.0f ms" % (seconds * 1000), (max(seconds, 0) * 1000, position), xytext=(4, -3), textcoords="offset points", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def write(results, path):
    """Write the report to ``path`` and the plot next to it (same name, .png)."""
    png = os.path.splitext(path)[0] + ".png"
    plot_name = os.path.basename(png) if plot(results, png) else None
    text = markdown(results, plot_name)
    if plot_name is None:
        text = text.replace("## Summary\n", "## Summary\n\n(No plot: matplotlib is not installed.)\n", 1)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def summary_text(results):
    return "\n".join("%s %-75s %18s  goal %-16s %s" % (item, label, figure, goal, "" if met is None else ("met" if met else "NOT MET"))
                     for item, label, figure, goal, met in goals(results))
