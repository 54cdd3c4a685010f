"""The sentences users read (command answers, thread notes, DMs), built purely from models, text escaped."""

from __future__ import annotations

from typing import Any

from bot.models import AuditEvent, ChangeRequest, Experiment, ExperimentSummary, JournalEntry, RequestStatus
from bot.mrkdwn import clip, code, escape, pct

__all__ = ["USAGE", "code"]
from bot.views import change_table, variant_lines
from providers.models import Snapshot
from providers.plan import Plan

USAGE = {
    "help": "/experiment help",
    "new": "/experiment new [provider]",
    "track": "/experiment track <provider> <remote-id>",
    "list": "/experiment list [provider] [status]",
    "show": "/experiment show <ref>",
    "start": "/experiment start <ref>",
    "pause": "/experiment pause <ref>",
    "resume": "/experiment resume <ref>",
    "stop": "/experiment stop <ref>",
    "ramp": "/experiment ramp <ref> <percent>",
    "split": "/experiment split <ref> <variant>=<weight> ...",
    "ship": "/experiment ship <ref> <variant>",
    "archive": "/experiment archive <ref>",
    "restore": "/experiment restore <ref>",
    "audit": "/experiment audit <ref>",
}
_VERB = {
    RequestStatus.APPLIED: "was applied",
    RequestStatus.FAILED: "failed",
    RequestStatus.STALE: "went stale (nothing was sent)",
}


def help_text() -> str:
    lines = "\n".join(USAGE.values())
    return (
        "*expbot* runs A/B experiments from Slack; nothing moves traffic until someone approves it "
        f"in the experiment's thread. `<ref>` is `exp-N`, the provider's id, or `provider:id`.\n```{lines}```"
    )


def experiment_list(found: tuple[list[ExperimentSummary], int], labels: dict[str, str]) -> str:
    exps, total = found
    if not exps:
        return "No experiments tracked yet. Create one with `/experiment new`."
    rows = [
        f"`{e.ref}` *{escape(e.name)}* · {escape(labels.get(e.provider, e.provider))} · {e.status} · "
        f"exposure {pct(e.exposure)}"
        for e in exps
    ]
    more = f"\n…and {total - len(exps)} more; filter by provider or status." if total > len(exps) else ""
    return "\n".join(rows) + more


def experiment_detail(exp: Experiment, label: str, pending: list[ChangeRequest]) -> str:
    snap = exp.snapshot
    open_reqs = (
        "\n".join(
            f"• #{r.id} {escape(r.change.describe())} ({r.status.value}, {len(r.approvals)}/{r.required} approvals)"
            for r in pending
        )
        or "• none"
    )
    note = f"\nNote: {escape(snap.note)}" if snap.note else ""
    return (
        f"*{escape(exp.name)}* (`{exp.ref}`) on {escape(label)} {code(exp.remote_id)}\nStatus: {snap.status.value} · "
        f"exposure {pct(snap.exposure)}{note}\n{variant_lines(snap)}\nOpen requests:\n{open_reqs}"
    )


def audit_text(exp: Experiment, events: list[AuditEvent]) -> str:
    if not events:
        return f"No audit events for `{exp.ref}`."
    lines = []
    for e in events:
        req = f" #{e.request_id}" if e.request_id else ""
        who = f"<@{e.actor}>" if e.actor.startswith(("U", "W")) else escape(e.actor)
        lines.append(f"`{e.ts:%Y-%m-%d %H:%M:%S}` {who} {e.action}{req}{_audit_detail(e.detail)}")
    body = "\n".join(lines)
    while len(body) > 3800 and len(lines) > 1:
        lines.pop(0)
        body = "\n".join(lines)
    return f"*Audit log of {escape(exp.name)}* (`{exp.ref}`), latest last:\n{body}"


def _audit_detail(detail: dict[str, Any]) -> str:
    keys = ("call", "step", "status", "http_status", "change", "outcome", "error", "reason")
    parts = [f"{k}={detail[k]}" for k in keys if k in detail]
    return escape(clip(" · " + "; ".join(parts), 300)) if parts else ""


def already_tracked(exp: Experiment, link: str | None) -> str:
    where = f"<{link}|its card>" if link else f"its card in <#{exp.channel}>"
    return f"{code(exp.remote_id)} is already tracked as `{exp.ref}` ({escape(exp.name)}): see {where}."


def tracking(exp: Experiment, missing: list[str]) -> str:
    lack = f" Not everything was created: {escape('; '.join(missing))}." if missing else ""
    return f"Tracking *{escape(exp.name)}* as `{exp.ref}`; its card is posted.{lack}"


def missing_note(missing: list[str]) -> str:
    items = "\n".join(f"• {escape(m)}" for m in missing)
    return (
        f":warning: The experiment was created, but not all of it:\n{items}\n"
        "Add what is missing in the provider's console."
    )


def stale_note(req: ChangeRequest, now: Snapshot) -> str:
    return (
        f"Request #{req.id} is *stale*: the experiment changed after it was requested, so nothing was sent.\n"
        f"{change_table(req.before, now)}\nAsk again if it is still wanted."
    )


def refused_as_stale(detail: str) -> str:
    return f"the provider says the experiment changed ({detail}); nothing was applied"


def stale_refusal_note(req: ChangeRequest, why: str) -> str:
    return f"Request #{req.id} is *stale*: {escape(why)}."


def step_report(plan: Plan, journal: dict[int, JournalEntry]) -> str:
    """Exactly what went through: each step with its outcome, and the steps never sent."""
    done = sum(1 for e in journal.values() if e.status == "done")
    lines = [f"{done} of {len(plan.steps)} step(s) applied:"]
    marks = {"done": ":white_check_mark:", "failed": ":x:", "unknown": ":grey_question:", "sent": ":grey_question:"}
    for i, step in enumerate(plan.steps):
        entry = journal.get(i)
        mark = marks.get(entry.status, "") if entry else ":heavy_minus_sign:"
        said = ""
        if entry and entry.status != "done" and entry.error:
            said = f" — the provider answered: {entry.error}"
        elif entry is None:
            said = " — not sent"
        lines.append(f"{mark} {i + 1}. {step.label or step.method + ' ' + step.path}{said}")
    return escape("\n".join(lines))


def failed_note(req: ChangeRequest, why: str, report: str | None) -> str:
    steps = f"\n{report}" if report else ""
    return f"Request #{req.id} *failed*: {why}{steps}"


def outcome_dm(req: ChangeRequest, exp: Experiment, status: RequestStatus, outcome: str) -> str:
    verb = _VERB.get(status, status.value)
    return (
        f"Your request #{req.id} ({escape(req.change.describe())} on {exp.ref}, {escape(exp.name)}) {verb}: "
        f"{escape(outcome)}"
    )


def rejected_dm(req: ChangeRequest, exp: Experiment, user: str) -> str:
    return f"<@{user}> rejected your request #{req.id} ({escape(req.change.describe())} on {exp.ref})."


def expired_dm(req: ChangeRequest, exp: Experiment) -> str:
    return (
        f"Your request #{req.id} ({escape(req.change.describe())} on {exp.ref}) "
        "expired without a decision; ask again if it is still wanted."
    )


def asked(req: ChangeRequest, exp: Experiment) -> str:
    if not req.required:
        return f"Doing *{escape(req.change.describe())}* on `{exp.ref}`; the thread shows each step."
    return f"Asked for approval to {escape(req.change.describe())} on `{exp.ref}` in its thread."


def request_copy(request_id: int) -> str:
    return (
        f"This is a second copy of change request #{request_id}: Slack posted it twice when an answer was lost. "
        "Decide the request on its own message in this thread."
    )
