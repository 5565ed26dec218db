"""docs/performance.md and its plot from the figures of one run.py run. Only measured figures go in."""

from __future__ import annotations

import os

import bench_inventory
import bench_scale
from common import LOGIN_PATH, OAUTH_PATH
from module_profile import IMPORT_STAGES, STAGES

GOAL_MODULE_VS_URI = 1.1
# Issue 13: the bulk send at most 4 x the bare requests script; the per-task play no dearer than the uri play.
GOAL_MODULE_VS_FLOOR = 4.0
GOAL_TASKS_VS_URI = 1.0
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
        "source's own recorder (the waits, without the network's delay). The gate evaluation is `campaign.current` over the",
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
        "`benchmarks/bench_callbacks.py`: the source `thingspace.m2m.callbacks` in a process of its own with a consumer that",
        "drains its queue, as ansible-rulebook runs it; another process posts %s distinct callbacks (half delivery" % _n(first["callbacks"]),
        "confirmations, half per-device \"sent\" messages) over %d keep-alive connections, then every one again (ThingSpace's" % first["connections"],
        "retries). Each callback is recorded before it is answered: in memory, in the SQLite ledger (the default ledger file of a",
        "new state_dir; WAL, synchronous=FULL) or in the PostgreSQL ledger (a new schema). The stores took turns, %d rounds;" % len(first["rounds"]),
        "every round was checked: every callback answered 200 and queued once, its repeat answered 200 and not queued, and the",
        "ledger's `callbacks` table holding each callback posted exactly once and nothing else.",
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


def _stage_table(columns):
    """Stages side by side: ``columns`` are (title, profile) of module_profile runs."""
    rows = ["| stage | %s |" % " | ".join(title for title, _profile in columns), "| --- |%s" % (" ---: |" * len(columns))]
    for name, label in STAGES:
        if any(name in profile["stages"] for _title, profile in columns):
            rows.append("| %s | %s |" % (label, " | ".join(_ms(profile["stages"][name]) if name in profile["stages"] else "—" for _title, profile in columns)))
    totals = [profile["stages"]["module_run"] + sum(profile["stages"].get(name, 0.0) for name in IMPORT_STAGES) for _title, profile in columns]
    rows.append("| **imports + module run** | %s |" % " | ".join("**%s**" % _ms(total) for total in totals))
    rows.append("| of which the module run (after the imports) | %s |" % " | ".join(_ms(profile["stages"]["module_run"]) for _title, profile in columns))
    return rows


def markdown(results, plot_name):
    machine, bulk, tasks, ledger, emulator, profile = (results[k] for k in ("machine", "bulk", "tasks", "ledger", "emulator", "profile"))
    rounds = results["rounds"]
    lines = [
        "# Performance",
        "",
        "Measured by `make bench` (`benchmarks/run.py`) against the emulator on loopback (127.0.0.1), with a generated",
        "fleet of %s devices. **All figures below are from one run** on %s: %s CPU(s) (%s), %s, Python %s, ansible-core %s,"
        % (_n(bulk["devices"]), machine["date"], machine["nproc"], machine["cpu"], machine["os"], machine["python"], machine["ansible_core"]),
        "requests %s, pydantic %s, SQLite %s, PostgreSQL %s (psycopg %s, a server on loopback started by the run, fsync on),"
        % (machine["requests"], machine["pydantic"], machine["sqlite"], machine["postgresql"], machine["psycopg"]),
        "checkout `%s`. The run took %.0f s." % (machine["git"], results["runtime_seconds"]),
        "",
        "These machines are shared and noisy: absolute times vary from run to run, so every comparison is made side by",
        "side in the same run, repeated %d times with the order reversed every other round. Tables give the median, the" % rounds,
        "range (min - max) and the median CPU time (user + system of the whole process tree: ansible-playbook, its workers",
        "and the modules, not the emulator); ratios are ratios of the medians.",
        "",
        "## Summary",
        "",
        "| # | measurement | figure | goal | met |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for item, label, figure, goal, met in goals(results):
        lines.append("| %s | %s | %s | %s | %s |" % (item, label, figure, goal, "—" if met is None else _yes(met)))
    if plot_name:
        lines += ["", "![Benchmark figures of this run](%s)" % plot_name]

    wall, cpu = bulk["wall"], bulk["cpu"]
    lines += [
        "",
        "## 1. Bulk send: %s devices by ID" % _n(bulk["devices"]),
        "",
        "- **vz_sms_send**: one task, `devices: \"{{ fleet.devices }}\"`, a fresh state dir (token cache and ledger) per round;",
        "  on localhost the action plugin runs it in Ansible's worker (docs/design.md, \"Tasks on the controller\").",
        "- **vz_sms_send with `devices_file`**: the same task with `devices_file: devices.json`, the file the other variants",
        "  load: the module reads and checks it itself, and Ansible templates no list.",
        "- **uri playbook**: an OAuth token task (`uri`, Basic auth, form body), a session login task, then one `uri` task",
        "  looping over `fleet.devices | batch(%d) | list` and POSTing `/api/m2m/v1/sms` with both headers." % bulk["batch"],
        "- **requests script** (`benchmarks/requests_floor.py`): the same token, login and %d POSTs on one `requests.Session`,"
        % (bulk["devices"] // bulk["batch"]),
        "  no checks, no ledger: the floor.",
        "- **Ansible alone**: the vz_sms_send play with the task replaced by a `debug` task with `msg: \"{{ fleet.devices }}\"` and",
        "  `verbosity: 1`: ansible-playbook loading the list and templating it into a task argument; the task is then skipped.",
    ]
    if "before" in wall:
        lines.append("- **vz_sms_send at `%s`** (before): the same play with the collection as it was at that commit, in the same rounds."
                     % results["before"])
    lines += [
        "",
        "The other playbooks load the device list with `lookup('ansible.builtin.file', 'devices.json') | from_json` (the playbooks",
        "are in `benchmarks/bench_playbooks.py`). Each variant's sends were checked in the emulator: %s devices in %d requests."
        % (_n(bulk["devices"]), bulk["devices"] // bulk["batch"]),
        "",
        "| variant | wall (median) | wall (min - max) | CPU (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    variants = [("file", "vz_sms_send with `devices_file`, first run"), ("module", "vz_sms_send, the list in `devices`, first run")]
    if "before" in wall:
        variants.append(("before", "vz_sms_send at `%s` (before), first run" % results["before"]))
    variants += [("uri", "uri playbook"), ("floor", "requests script"), ("ansible", "Ansible alone (the list templated into a skipped task)")]
    lines += _timing_rows(bulk, variants)
    ratios = [("file", "floor", "vz_sms_send with `devices_file` / requests script"), ("module", "floor", "vz_sms_send, `devices` / requests script"),
              ("file", "module", "vz_sms_send with `devices_file` / with `devices`"), ("module", "uri", "vz_sms_send, `devices` / uri playbook")]
    if "before" in wall:
        ratios += [("before", "floor", "vz_sms_send at `%s` / requests script" % results["before"]),
                   ("module", "before", "vz_sms_send / vz_sms_send at `%s`" % results["before"])]
    ratios += [("uri", "floor", "uri playbook / requests script"), ("ansible", "floor", "Ansible alone / requests script")]
    lines += ["", "| ratio | wall | CPU |", "| --- | ---: | ---: |"]
    for top, bottom, label in ratios:
        lines.append("| %s | %s | %s |" % (label, _x(wall[top]["median"] / wall[bottom]["median"]), _x(cpu[top]["median"] / cpu[bottom]["median"])))
    columns = ["file", "module"] + (["before"] if "before" in wall else []) + ["uri", "floor"]
    lines += [
        "",
        "Requests each variant made (last round), from the emulator's request log:",
        "",
        "| request | `devices_file` | `devices` | %suri playbook | requests script |" % ("before | " if "before" in wall else ""),
        "| --- | ---: | ---: | ---: | ---: |%s" % (" ---: |" if "before" in wall else ""),
    ]
    for request in sorted({key for counts in bulk["requests"].values() for key in counts}):
        lines.append("| %s | %s |" % (request, " | ".join(str(bulk["requests"].get(name, {}).get(request, 0)) for name in columns)))
    lines += [
        "",
        "## 2. Re-run of the same rollout",
        "",
        "Each vz_sms_send playbook again, same inputs and state dir (same ledger), right after each first run.",
        "",
        "| variant | wall (median) | wall (min - max) | CPU (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += _timing_rows(bulk, (("module", "`devices`: first run"), ("rerun", "`devices`: re-run"),
                                 ("file", "`devices_file`: first run"), ("file_rerun", "`devices_file`: re-run")))
    lines += [
        "",
        "- Requests the re-runs made, per round: %s with `devices` (POST /sms: %s), %s with `devices_file` (POST /sms: %s)."
        % (", ".join(str(n) for n in bulk["rerun_all_requests"]), ", ".join(str(n) for n in bulk["rerun_sms_posts"]),
           ", ".join(str(n) for n in bulk["file_rerun_all_requests"]), ", ".join(str(n) for n in bulk["file_rerun_sms_posts"])),
        "- Re-run / first run: %s (wall), %s (CPU) with `devices`; %s (wall), %s (CPU) with `devices_file`."
        % (_x(wall["rerun"]["median"] / wall["module"]["median"]), _x(cpu["rerun"]["median"] / cpu["module"]["median"]),
           _x(wall["file_rerun"]["median"] / wall["file"]["median"]), _x(cpu["file_rerun"]["median"] / cpu["file"]["median"])),
    ]

    n = tasks["tasks"]
    twall, tcpu = tasks["wall"], tasks["cpu"]
    lines += [
        "",
        "## 3. Per-task overhead: %d tasks of 1 device" % n,
        "",
        "- **vz_sms_send**: %d tasks, each sending to another device, a fresh state dir per play (empty token cache)." % n,
        "- **uri**: the OAuth token and login tasks, then %d `uri` tasks (%d tasks in all)." % (n, n + 2),
    ]
    plays = [("module", "%d vz_sms_send tasks" % n), ("uri", "2 + %d uri tasks" % n)]
    if "before" in twall:
        lines.append("- **before**: the vz_sms_send play with the collection at `%s`, in the same rounds." % results["before"])
        plays.insert(1, ("before", "%d vz_sms_send tasks at `%s` (before)" % (n, results["before"])))
    lines += [
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
        "- vz_sms_send play / uri play: %s (wall), %s (CPU)."
        % (_x(twall["module"]["median"] / twall["uri"]["median"]), _x(tcpu["module"]["median"] / tcpu["uri"]["median"])),
    ]
    if "before" in twall:
        lines.append("- Before (`%s`) / uri play: %s (wall), %s (CPU)." % (
            results["before"], _x(twall["before"]["median"] / twall["uri"]["median"]), _x(tcpu["before"]["median"] / tcpu["uri"]["median"])))
    for key, label in [("module", "vz_sms_send play")] + ([("before", "play before")] if "before" in twall else []) + [("uri", "uri play")]:
        lines.append("- Requests of the %s, per round (OAuth %s, session %s, POST /sms): %s." % (
            label, OAUTH_PATH, LOGIN_PATH, "; ".join("%d, %d, %d" % (e["oauth"], e["session"], e["sms"]) for e in tasks["logins"][key])))

    postgresql = results["ledger_postgresql"]
    largest = str(ledger["sizes"][-1])
    lines += [
        "",
        "## 4. Ledger scaling",
        "",
        "The collection's own code (`plan_send`, `SmsSend.run`, `Ledger`), no HTTP, on a new SQLite file per size and",
        "round, then on PostgreSQL (a new schema per size and round, one connection as a module has); the median of %d" % ledger["rounds"],
        "rounds. Claim + settle is the ledger work of a first run (10 batches, each a claim transaction and a settle",
        "transaction); the re-run diff is what a re-run does before it finds that nothing is left to send.",
        "",
        "Linear growth is x10 per step; the goal in the summary allows x%.0f (20 %% for noise), or 1.2 times the growth of the" % GOAL_GROWTH,
        "reference where that is more: the reference is the diff's dictionary work alone (no ledger, no SQL), and it grows",
        "faster than x10 where the dictionaries outgrow the CPU's caches, which no linear algorithm escapes.",
        "",
    ]
    for name, figures in (("SQLite", ledger), ("PostgreSQL", postgresql)):
        lines += [
            "| %s: phase | " % name + " | ".join("%s devices" % format(size, ",") for size in figures["sizes"]) + " | "
            + " | ".join("growth %s" % _step(step) for step in figures["growth"]) + " |",
            "| --- | " + " | ".join("---:" for _size in figures["sizes"]) + " | " + " | ".join("---:" for _step in figures["growth"]) + " |",
        ]
        for phase, label in LEDGER_PHASES:
            cells = [_ms(figures["seconds"][str(size)][phase]) for size in figures["sizes"]]
            factors = ["x%.1f" % figures["growth"][step][phase] for step in figures["growth"]]
            lines.append("| %s | %s | %s |" % (label, " | ".join(cells), " | ".join(factors)))
        lines.append("")
    lines += [
        "At %s devices, side by side:" % format(int(largest), ","),
        "",
        "| phase | SQLite | PostgreSQL | PostgreSQL / SQLite | per device on PostgreSQL |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for phase, label in LEDGER_PHASES[1:-1]:
        lite, pg = ledger["seconds"][largest][phase], postgresql["seconds"][largest][phase]
        lines.append("| %s | %s | %s | %s | %.2f µs |" % (label, _ms(lite), _ms(pg), _x(pg / lite), 1e6 * pg / int(largest)))
    lines += [
        "",
        "Per device at %s devices on SQLite: diff %.2f µs (first run), %.2f µs (re-run); claim + settle %.2f µs." % (
            format(int(largest), ","), 1e6 * ledger["seconds"][largest]["first_diff"] / int(largest),
            1e6 * ledger["seconds"][largest]["rerun_diff"] / int(largest), 1e6 * ledger["seconds"][largest]["claim_settle"] / int(largest)),
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
        "`benchmarks/bench_controllers.py`: %d `ansible-playbook` processes started together, each with its own state dir" % count,
        "(token cache, so %d logins), each sending to its own %s devices of the fleet under one idempotency key, against" % (count, _n(share)),
        "one process sending to all %s; the ledger in PostgreSQL, a new schema per round. Wall from the first start to" % _n(controllers["devices"]),
        "the last end; CPU of all the processes. Each round was checked: every device once in the emulator, every device",
        "recorded `sent` in the ledger. These machines have %s CPU(s), which the %d processes share." % (results["machine"]["nproc"], count),
        "",
        "| variant | wall (median) | wall (min - max) | CPU (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += _timing_rows(controllers, (("one", "1 controller x %s devices" % _n(controllers["devices"])),
                                        ("four", "%d controllers x %s devices" % (count, _n(share)))))
    lines += [
        "",
        "- %d controllers / 1 controller: %s (wall), %s (CPU). The single controller with the SQLite ledger is section 1's"
        % (count, _x(cwall["four"]["median"] / cwall["one"]["median"]), _x(ccpu["four"]["median"] / ccpu["one"]["median"])),
        "  vz_sms_send first run: %s wall (median)." % _s(results["bulk"]["wall"]["module"]["median"]),
    ]

    lines += callback_section(results)
    lines += campaign_section(results)
    lines += bench_inventory.section(results)
    lines += bench_scale.section(results)

    one, big = profile["one"], profile["bulk"]
    walls, cpus = one["walls"], one["cpus"]
    lines += [
        "",
        "## Profile: where a vz_sms_send task's time goes",
        "",
        "`benchmarks/module_profile.py` keeps the AnsiballZ payload of a real task run as a module (ANSIBLE_KEEP_REMOTE_FILES=1;",
        "a task `environment` makes the action plugin hand it to the module), explodes it and runs it again in new processes:",
        "as the controller runs it, exploded without timers, and exploded with timers around the module's hot path; then the",
        "same arguments as the action plugin runs them in the controller (`--controller`: Ansible's argument validator and the",
        "module's code, no AnsiballZ), with the same timers. Token cache warm (as for every task of a play but the first), a new",
        "ledger per run so every run sends. Median of %d runs, 1 device." % one["rounds"],
        "",
        "| what | wall | CPU |",
        "| --- | ---: | ---: |",
    ]
    for key, label in [("module", "one vz_sms_send task in the %d-task play (section 3, play / %d)" % (n, n))] + \
            ([("before", "the same at `%s` (before)" % results["before"])] if "before" in twall else []):
        lines.append("| %s | %s | %s |" % (label, _ms(twall[key]["median"] / n), _ms(tcpu[key]["median"] / n)))
    lines += [
        "| the module process as the controller runs it (`python AnsiballZ_vz_sms_send.py`) | %s | %s |"
        % (_ms(walls["payload"]), _ms(cpus["payload"])),
        "| the same module run from the exploded payload (no zip) | %s | %s |" % (_ms(walls["exploded"]), _ms(cpus["exploded"])),
        "| Python start-up alone (`python -c pass`), for reference | %s | %s |" % (_ms(walls["python_start"]), _ms(cpus["python_start"])),
        "",
        "One task of section 3's play (wall), part by part: as a module, the differences of the module-process timings and",
        "the module's timers; in the controller, the module's code in the worker (the `--controller` run) and Ansible's own",
        "work for the task, the rest (differences of medians: on a loaded machine a small part can come out negative):",
    ]
    for title, parts in task_parts(results):
        total = sum(seconds for _label, seconds in parts)
        lines += ["", "| %s: part | wall | share |" % title, "| --- | ---: | ---: |"]
        lines += ["| %s | %s | %.0f %% |" % (label, _ms(seconds), 100 * seconds / total) for label, seconds in parts]
        lines.append("| **one task** | **%s** | |" % _ms(total))
    controller = profile["one_controller"]["stages"]
    lines += [
        "",
        "In the controller the imports are paid once per play, not per task: the strategy loads the action plugin in",
        "ansible-playbook's main process, and the workers it forks for the tasks find them loaded (%s in the `--controller`"
        % _ms(sum(controller.get(name, 0.0) for name in IMPORT_STAGES)),
        "run: requests %s, pydantic and the models %s, the action plugin's code with ansible.plugins.action %s)."
        % (_ms(controller["import_requests"]), _ms(controller["import_pydantic"] + controller["import_models"]), _ms(controller["import_controller"])),
        "",
        "The timers side by side (imports are timed in this order, a shared dependency counts for the first group that needs",
        "it; payload %s, arguments %s):" % (_kb(one["payload_bytes"]), _kb(one["args_bytes"])),
        "",
    ]
    columns = ([("before: module (`%s`)" % results["before"], profile["one_before"])] if "one_before" in profile else []) + \
        [("after: module", one), ("after: in the controller", profile["one_controller"])]
    lines += _stage_table(columns)
    bwalls = big["walls"]
    lines += [
        "",
        "### The %s-device run" % _n(bulk["devices"]),
        "",
        "The bulk task's payload (%s, of which arguments %s; the result it prints: %s), run as the controller runs it (%s wall,"
        % (_kb(big["payload_bytes"]), _kb(big["args_bytes"]), _kb(big["result_bytes"]), _s(bwalls["payload"])),
        "%s CPU), then exploded with timers, and its arguments as the action plugin runs them in the controller; the last"
        % _s(big["cpus"]["payload"]),
        "column is the task with `devices_file` in the controller (its arguments %s):" % _kb(profile["bulk_file"]["args_bytes"]),
        "",
    ]
    columns = ([("before: module (`%s`)" % results["before"], profile["bulk_before"])] if "bulk_before" in profile else []) + \
        [("after: module", big), ("after: in the controller", profile["bulk_controller"]),
         ("after: `devices_file`, in the controller", profile["bulk_file_controller"])]
    lines += _stage_table(columns)
    ansible_alone = wall["ansible"]["median"]
    lines += [
        "",
        "The bulk play (section 1, medians) took %s wall, %s CPU. Ansible alone, starting, loading the list and templating it"
        % (_s(wall["module"]["median"]), _s(cpu["module"]["median"])),
        "into a task's argument (the skipped `debug` task), took %s wall, %s CPU, %s times the requests script: what any task"
        % (_s(ansible_alone), _s(cpu["ansible"]["median"]), _x(ansible_alone / wall["floor"]["median"])),
        "that takes the list as an argument pays before it runs. The difference, %s wall and %s CPU, is what the vz_sms_send"
        % (_s(wall["module"]["median"] - ansible_alone), _s(cpu["module"]["median"] - cpu["ansible"]["median"])),
        "task adds to the play. With `devices_file` the play took %s wall, %s CPU: ansible-playbook's start and the task,"
        % (_s(wall["file"]["median"]), _s(cpu["file"]["median"])),
        "without a list to template into the task's arguments and to validate as an argument.",
        "",
        "## What was tried",
        "",
        _tried(),
        "## Reproduce",
        "",
        "`make bench` (about %.0f minutes here; `BENCH_BEFORE=REF` picks the commit measured as \"before\")."
        % (results["runtime_seconds"] / 60),
        "`benchmarks/run.py --rounds N --tasks N --before REF --keep --json-out FILE` keeps the playbooks, logs and payloads of a run and writes every",
        "figure as JSON; `--from-json FILE` writes the report again from them. `benchmarks/bench_emulator.py`,",
        "`benchmarks/ledger_scaling.py [--postgresql]` and `benchmarks/module_profile.py --driver DEBUG_DIR [--controller]` also run alone.",
        "The run starts its own PostgreSQL server (tests/utils/postgresql.py: the binaries of PostgreSQL must be installed).",
    ]
    return "\n".join(lines) + "\n"


def _tried():
    """The levers of issue 13 and what each measured (benchmarks/tried.md, written by hand)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tried.md"), encoding="utf-8") as handle:
        return handle.read()


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
