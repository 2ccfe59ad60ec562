"""The monitor page: what pilots did with the development server's jobs, as server-rendered HTML.

``GET /`` or ``/monitor`` shows every job (PandaID, name, state, error code and diagnostics, the pilots that took it)
and, per job, its updates in order, the stage timeline from the final update's ``pilotTiming``
(``getjob|stagein|payload|stageout|initial_setup|setup``, :func:`pilotlib.report.pilot_timing`) as a bar, the
transfer figures of the final update's ``xml`` field (:func:`pilotlib.transfer.report.output_file_info_json`) and
the job's event ranges with their states. ``GET /monitor/job/<PandaID>`` shows one job.

No JavaScript; inline CSS. Everything shown comes from pilots, so every value is escaped (:func:`html.escape`), free
text goes through pilotlib's redaction (:func:`pilotlib._redact.redact_text`) and fields whose name says they hold a
secret (a token, a proxy, a password) are not shown.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from panda_devserver._store import Store
from pilotlib._redact import is_secret_key, redact_text

__all__ = ["TIMELINE_ORDER", "final_update", "render_job_page", "render_monitor", "timeline"]

#: ``pilotTiming``'s keys in the order the pilot sends them (``pilotlib.pipeline.TIMING_KEYS``).
_WIRE_KEYS = ("getjob", "stagein", "payload", "stageout", "initial_setup", "setup")

#: The order the stages happen in, left to right on the bar.
TIMELINE_ORDER = ("initial_setup", "setup", "getjob", "stagein", "payload", "stageout")

_COLOURS = {"initial_setup": "#9e9e9e", "setup": "#607d8b", "getjob": "#8e24aa", "stagein": "#1e88e5",
            "payload": "#43a047", "stageout": "#fb8c00"}

_STATE_COLOURS = {"finished": "#2e7d32", "failed": "#c62828", "running": "#1565c0", "starting": "#6a1b9a",
                  "holding": "#ef6c00", "sent": "#555", "activated": "#555", "ready": "#555"}

#: The update fields shown in the updates table (the rest is in the final update's details).
_UPDATE_COLUMNS = ("state", "pilotErrorCode", "pilotErrorDiag", "exeErrorCode", "transExitCode")

_SECRET_NAMES = ("proxy", "cert", "key")

_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-top:1px solid #ccc;padding-top:.6em}
h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.3em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eee}.state{font-weight:bold;color:#fff;padding:.1em .4em;border-radius:3px}
.bar{display:flex;width:900px;height:1.6em;border:1px solid #888;background:#fff}
.seg{height:100%;overflow:hidden;white-space:nowrap;font-size:.75em;color:#fff;line-height:1.6em;
text-indent:.3em}.diag{color:#b71c1c;font-family:monospace}.none{color:#888}
"""


def _e(value: object) -> str:
    """A value from a pilot as HTML text: redacted, then escaped."""
    return html.escape(redact_text(str(value)))


def _shown(field: str) -> bool:
    """Whether an update field may be shown (not a secret by its name)."""
    lowered = field.lower()
    return not is_secret_key(field) and not any(name in lowered for name in _SECRET_NAMES)


def _state(state: object) -> str:
    colour = _STATE_COLOURS.get(str(state), "#555")
    return f'<span class="state" style="background:{colour}">{_e(state)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """A table; ``rows`` are already HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def final_update(updates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last update with a final state (``finished``/``failed``/``holding``), or None."""
    finals = [u for u in updates if u.get("state") in ("finished", "failed", "holding")]
    return finals[-1] if finals else None


def timeline(pilot_timing: object) -> dict[str, int]:
    """The seconds of each stage of a ``pilotTiming`` value (``a|b|c|d|e|f``), by stage; empty when malformed."""
    parts = str(pilot_timing or "").split("|")
    if len(parts) != len(_WIRE_KEYS):
        return {}
    try:
        return {key: max(0, round(float(part))) for key, part in zip(_WIRE_KEYS, parts, strict=True)}
    except ValueError:
        return {}


def _timeline_html(pilot_timing: object) -> str:
    """The stage bar: one labelled segment per stage that took time, widths proportional to seconds."""
    seconds = timeline(pilot_timing)
    total = sum(seconds.values())
    if not seconds:
        return '<p class="none">no stage timing reported</p>'
    if not total:
        return f'<p class="none">every stage took under a second (pilotTiming {_e(pilot_timing)})</p>'
    segments = "".join(
        f'<div class="seg" data-stage="{key}" data-seconds="{seconds[key]}" title="{key} {seconds[key]} s" '
        f'style="width:{100 * seconds[key] / total:.2f}%;background:{_COLOURS[key]}">{key} {seconds[key]} s</div>'
        for key in TIMELINE_ORDER if seconds[key] > 0)
    legend = ", ".join(f"{key} {seconds[key]} s" for key in TIMELINE_ORDER)
    return f'<div class="bar" data-total="{total}">{segments}</div><p class="legend">{legend} (total {total} s)</p>'


def _pilots(job: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """The distinct ``(pilotID, node, batchID)`` of the pilots that reported on a job, in order (the node that took
    it when no update came)."""
    seen = [(str(u.get("pilotID", "")), str(u.get("node", "")), str(u.get("batchID", ""))) for u in updates]
    pilots = list(dict.fromkeys(seen))
    if not pilots and job.get("pilot"):
        pilots = [("", str(job["pilot"]), "")]
    return pilots


def _pilots_html(pilots: Sequence[tuple[str, str, str]]) -> str:
    if not pilots:
        return '<span class="none">not taken</span>'
    return "<br>".join(f"{_e(pid or '-')} on {_e(node or '-')} (batch {_e(batch or '-')})"
                       for pid, node, batch in pilots)


def _current_state(job: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]) -> str:
    """The pilot's last reported state, else the server-side status."""
    return str(job.get("final_state") or (updates[-1].get("state") if updates else None) or job["status"])


def _error_html(update: Mapping[str, Any] | None) -> str:
    if update is None or not int(update.get("pilotErrorCode") or 0):
        return '<span class="none">-</span>'
    return (f'<span class="code">{_e(update.get("pilotErrorCode"))}</span> '
            f'<span class="diag">{_e(update.get("pilotErrorDiag", ""))}</span>')


def _summary_row(job: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]) -> list[str]:
    panda_id = int(job["panda_id"])
    last = final_update(updates) or (updates[-1] if updates else None)
    return [f'<a href="/monitor/job/{panda_id}">{panda_id}</a>', _e(job["definition"].get("jobName", "")),
            _state(_current_state(job, updates)), _error_html(last), _pilots_html(_pilots(job, updates)),
            str(len(updates))]


def _clock(seconds: float | None) -> str:
    """An arrival time as ``HH:MM:SS.mmm`` UTC."""
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def _updates_html(updates: Sequence[Mapping[str, Any]], times: Sequence[float | None]) -> str:
    if not updates:
        return '<p class="none">no update received</p>'
    rows = ([str(n), _clock(when)] + [_state(u.get(c, "")) if c == "state" else _e(u.get(c, ""))
                                      for c in _UPDATE_COLUMNS]
            for n, (u, when) in enumerate(zip(updates, times, strict=False), start=1))
    return _table(("#", "received (UTC)", *_UPDATE_COLUMNS), rows, "updates")


def _files(update: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-file info of an update's ``xml`` field (empty when absent or not JSON)."""
    try:
        info = json.loads(str(update.get("xml") or "{}"))
    except ValueError:
        return {}
    return {str(k): v for k, v in info.items() if isinstance(v, dict)} if isinstance(info, dict) else {}


def _rates(update: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``jobMetrics`` entries and fields named like a rate, as ``(name, value)``."""
    pairs = [(k, str(v)) for k, v in update.items() if "rate" in k.lower() and _shown(k)]
    for metric in str(update.get("jobMetrics") or "").split():
        name, _, value = metric.partition("=")
        if value and _shown(name):
            pairs.append((name, value))
    return pairs


def _transfers_html(update: Mapping[str, Any] | None) -> str:
    if update is None:
        return '<p class="none">no final update</p>'
    files = _files(update)
    columns = sorted({key for info in files.values() for key in info if _shown(key)})
    parts = [_table(("lfn", *columns), ([_e(lfn)] + [_e(info.get(c, "")) for c in columns]
                                        for lfn, info in files.items()), "files")
             if files else '<p class="none">no output file reported</p>']
    total = sum(int(info.get("fsize") or 0) for info in files.values())
    stageout = timeline(update.get("pilotTiming")).get("stageout", 0)
    rate = f", {total / stageout / 1e6:.3f} MB/s" if stageout else ""
    parts.append(f'<p class="volume">{len(files)} file(s), {total} bytes out in {stageout} s{rate}</p>')
    rates = _rates(update)
    if rates:
        parts.append(_table(("jobMetrics / rate", "value"), ([_e(k), _e(v)] for k, v in rates), "rates"))
    return "".join(parts)


def _ranges_html(statuses: Mapping[str, str]) -> str:
    if not statuses:
        return '<p class="none">no event ranges</p>'
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{_e(s)}: {n}" for s, n in sorted(counts.items()))
    rows = ([_e(range_id), _state(status)] for range_id, status in statuses.items())
    return f'<p class="range-summary">{summary}</p>' + _table(("eventRangeID", "status"), rows, "ranges")


def _job_section(store: Store, job: Mapping[str, Any]) -> str:
    """One job's details: summary, updates, timeline, transfers, event ranges."""
    panda_id = int(job["panda_id"])
    updates = store.updates(panda_id)
    final = final_update(updates)
    return (f'<section class="job" id="job-{panda_id}" data-panda-id="{panda_id}">'
            f"<h2>Job {panda_id} {_e(job['definition'].get('jobName', ''))} {_state(_current_state(job, updates))}"
            f"</h2><p>error: {_error_html(final or (updates[-1] if updates else None))}</p>"
            f"<p>pilots: {_pilots_html(_pilots(job, updates))}</p>"
            f"<h3>Stage timeline</h3>{_timeline_html(final.get('pilotTiming') if final else None)}"
            f"<h3>Updates</h3>{_updates_html(updates, store.update_times(panda_id))}"
            f"<h3>Transfers</h3>{_transfers_html(final)}"
            f"<h3>Event ranges</h3>{_ranges_html(store.event_range_statuses(panda_id))}</section>")


def _page(title: str, body: str) -> bytes:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>").encode()


def render_monitor(store: Store) -> bytes:
    """The whole page: the jobs' table, then every job's details."""
    jobs = store.jobs()
    if not jobs:
        return _page("pilot-devserver monitor", '<p class="none">no jobs</p>')
    rows = [_summary_row(job, store.updates(int(job["panda_id"]))) for job in jobs]
    table = _table(("PandaID", "name", "state", "error", "pilots", "updates"), rows, "jobs")
    return _page("pilot-devserver monitor", table + "".join(_job_section(store, job) for job in jobs))


def render_job_page(store: Store, panda_id: int) -> bytes | None:
    """One job's page; None when the server has no such job."""
    job = next((j for j in store.jobs() if int(j["panda_id"]) == panda_id), None)
    if job is None:
        return None
    return _page(f"job {panda_id}", '<p><a href="/monitor">all jobs</a></p>' + _job_section(store, job))
