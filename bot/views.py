"""Pure Block Kit builders for cards, change requests and command answers; no I/O here."""

from __future__ import annotations

from typing import Any, NamedTuple

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.models import AuditEvent, ChangeRequest, Experiment, RequestStatus
from providers.base import ChangeKind, Snapshot

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
    "audit": "/experiment audit <ref>",
}
BUTTON_LABELS = {
    ChangeKind.START: "Start",
    ChangeKind.PAUSE: "Pause",
    ChangeKind.RESUME: "Resume",
    ChangeKind.STOP: "Stop",
    ChangeKind.EXPOSURE: "Ramp",
    ChangeKind.WEIGHTS: "Re-split",
    ChangeKind.SHIP: "Ship a winner",
}
_OUTCOME = {
    RequestStatus.APPLIED: ":white_check_mark: Applied",
    RequestStatus.FAILED: ":x: Failed",
    RequestStatus.REJECTED: ":no_entry_sign: Rejected",
    RequestStatus.CANCELLED: ":leftwards_arrow_with_hook: Cancelled",
    RequestStatus.EXPIRED: ":hourglass: Expired",
    RequestStatus.STALE: ":warning: Stale",
    RequestStatus.APPROVED: ":gear: Approved, applying…",
    RequestStatus.APPLYING: ":gear: Applying…",
}
SECTION_LIMIT = 3000


class Message(NamedTuple):
    """A message: its notification/screen-reader text and its blocks."""

    text: str
    blocks: list[dict[str, Any]]


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, SECTION_LIMIT))


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks][:50]


def bar(weight: int, width: int = 20) -> str:
    filled = round(weight * width / 100)
    return "█" * filled + "░" * (width - filled)


def variant_lines(snap: Snapshot) -> str:
    if not snap.variants:
        return "_no variants_"
    width = max(len(v.key) for v in snap.variants)
    rows = [
        f"{v.key:<{width}}  {bar(v.weight)} {v.weight:>3}%{'  (control)' if v.is_control else ''}"
        for v in snap.variants
    ]
    return "```" + "\n".join(rows) + "```"


def exposure_text(snap: Snapshot) -> str:
    return "—" if snap.exposure is None else f"{snap.exposure}%"


def card(exp: Experiment, allowed: frozenset[ChangeKind], label: str) -> Message:
    snap = exp.snapshot
    blocks: list[Block] = [
        HeaderBlock(text=clip(f"🧪 {exp.name}", 150)),
        SectionBlock(
            fields=[
                _md(f"*Ref*\n`{exp.ref}`"),
                _md(f"*Provider*\n{label} `{clip(exp.remote_id, 200)}`"),
                _md(f"*Status*\n{snap.status.value}"),
                _md(f"*Exposure*\n{exposure_text(snap)}"),
            ]
        ),
        SectionBlock(text=_md("*Variant weights*\n" + variant_lines(snap))),
    ]
    buttons = [
        ButtonElement(text=BUTTON_LABELS[k], action_id=f"card_{k.value}", value=str(exp.id))
        for k in ChangeKind
        if k in allowed
    ]
    if snap.url:
        buttons.append(ButtonElement(text="Open in console", action_id="card_console", url=snap.url[:3000]))
    if buttons:
        blocks.append(ActionsBlock(block_id="card_actions", elements=buttons))
    blocks.append(
        ContextBlock(
            elements=[
                _md(
                    f"Created by <@{exp.created_by}> · changes need approval in this thread · "
                    f"`/experiment audit {exp.ref}`"
                )
            ]
        )
    )
    text = f"{exp.name} ({exp.ref}, {label}): {snap.status.value}, exposure {exposure_text(snap)}, " + ", ".join(
        f"{v.key} {v.weight}%" for v in snap.variants
    )
    return Message(text, _dicts(blocks))


def change_table(before: Snapshot, after: Snapshot) -> str:
    rows = [
        ("", "before", "after"),
        ("status", before.status.value, after.status.value),
        ("exposure", exposure_text(before), exposure_text(after)),
    ]
    after_w = after.weights()
    rows += [(f"{v.key}", f"{v.weight}%", f"{after_w.get(v.key, v.weight)}%") for v in before.variants]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for r in rows:
        arrow = "→" if r[0] else " "
        mark = "  *" if r[1] != r[2] and r[0] else ""
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}} {arrow} {r[2]:<{widths[2]}}{mark}")
    return "```" + "\n".join(lines) + "```"


def request_message(req: ChangeRequest, exp: Experiment) -> Message:
    after = req.change.preview(req.before)
    what = req.change.describe()
    approvers = ", ".join(f"<@{a.user}>" for a in req.approvals) or "none yet"
    calls = "\n".join(c.render() for c in req.plan) or "(no calls)"
    blocks: list[Block] = [
        SectionBlock(
            text=_md(
                f"*Change request #{req.id}*: <@{req.requested_by}> asks to *{what}* on *{exp.name}* (`{exp.ref}`)"
            )
        ),
        SectionBlock(text=_md("*Before → after*\n" + change_table(req.before, after))),
        SectionBlock(text=_md("*Provider calls on approval*\n```" + clip(calls, SECTION_LIMIT - 40) + "```")),
        ContextBlock(
            elements=[
                _md(
                    f"Approvals {len(req.approvals)}/{req.required}: {approvers} · "
                    f"expires <!date^{int(req.expires_at.timestamp())}^{{date_short_pretty}} "
                    f"{{time}}|{req.expires_at:%Y-%m-%d %H:%M} UTC>"
                )
            ]
        ),
    ]
    if req.status is RequestStatus.PENDING:
        blocks.append(
            ActionsBlock(
                block_id="request_actions",
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id="request_approve",
                        value=str(req.id),
                        style="primary",
                        confirm=ConfirmObject(
                            title="Approve this change?",
                            text=clip(
                                f"{what} on {exp.name}. expbot will send the calls shown once enough people approve.",
                                300,
                            ),
                            confirm="Approve",
                            deny="Not yet",
                        ),
                    ),
                    ButtonElement(text="Reject", action_id="request_reject", value=str(req.id), style="danger"),
                    ButtonElement(text="Cancel", action_id="request_cancel", value=str(req.id)),
                ],
            )
        )
    else:
        by = f" by <@{req.decided_by}>" if req.decided_by and req.decided_by != "expbot" else ""
        outcome = f": {req.outcome}" if req.outcome else ""
        blocks.append(
            SectionBlock(
                block_id="request_outcome", text=_md(f"*{_OUTCOME.get(req.status, req.status.value)}*{by}{outcome}")
            )
        )
    text = f"Change request #{req.id} on {exp.ref}: {what} ({req.status.value})"
    return Message(text, _dicts(blocks))


def ephemeral(text: str) -> dict[str, Any]:
    """An ack body: an ephemeral answer to the user who typed the command."""
    return {"response_type": "ephemeral", "text": clip(text, 3900)}


def help_text() -> str:
    lines = "\n".join(USAGE.values())
    return (
        "*expbot* runs A/B experiments from Slack; nothing moves traffic until someone approves it "
        f"in the experiment's thread.\n```{lines}```"
    )


def experiment_list(exps: list[Experiment], labels: dict[str, str]) -> str:
    if not exps:
        return "No experiments tracked yet. Create one with `/experiment new`."
    rows = [
        f"`{e.ref}` *{e.name}* · {labels.get(e.provider, e.provider)} · {e.snapshot.status.value} · "
        f"exposure {exposure_text(e.snapshot)}"
        for e in exps[:40]
    ]
    more = f"\n…and {len(exps) - 40} more; filter by provider or status." if len(exps) > 40 else ""
    return "\n".join(rows) + more


def experiment_detail(exp: Experiment, label: str, pending: list[ChangeRequest]) -> str:
    snap = exp.snapshot
    open_reqs = (
        "\n".join(
            f"• #{r.id} {r.change.describe()} ({r.status.value}, {len(r.approvals)}/{r.required} approvals)"
            for r in pending
        )
        or "• none"
    )
    return (
        f"*{exp.name}* (`{exp.ref}`) on {label} `{exp.remote_id}`\nStatus: {snap.status.value} · "
        f"exposure {exposure_text(snap)}\n{variant_lines(snap)}\nOpen requests:\n{open_reqs}"
    )


def audit_text(exp: Experiment, events: list[AuditEvent]) -> str:
    if not events:
        return f"No audit events for `{exp.ref}`."
    lines = []
    for e in events:
        req = f" #{e.request_id}" if e.request_id else ""
        detail = _audit_detail(e.detail)
        lines.append(
            f"`{e.ts:%Y-%m-%d %H:%M:%S}` <@{e.actor}> {e.action}{req}{detail}"
            if e.actor.startswith(("U", "W"))
            else f"`{e.ts:%Y-%m-%d %H:%M:%S}` {e.actor} {e.action}{req}{detail}"
        )
    body = "\n".join(lines)
    while len(body) > 3800 and len(lines) > 1:
        lines.pop(0)
        body = "\n".join(lines)
    return f"*Audit log of {exp.name}* (`{exp.ref}`), latest last:\n{body}"


def _audit_detail(detail: dict[str, Any]) -> str:
    keys = ("call", "status", "change", "outcome", "reason")
    parts = [f"{k}={detail[k]}" for k in keys if k in detail]
    return clip(" · " + "; ".join(parts), 300) if parts else ""
