"""Pure Block Kit builders for the card and change-request messages; every user or provider text is escaped."""

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

from bot.models import ChangeRequest, Experiment, RequestStatus
from bot.mrkdwn import clip, code, escape, pct
from providers.base import Capabilities
from providers.models import ChangeKind, Snapshot

BUTTON_LABELS = {
    ChangeKind.START: "Start",
    ChangeKind.PAUSE: "Pause",
    ChangeKind.RESUME: "Resume",
    ChangeKind.STOP: "Stop",
    ChangeKind.EXPOSURE: "Ramp",
    ChangeKind.WEIGHTS: "Re-split",
    ChangeKind.SHIP: "Ship a winner",
    ChangeKind.ARCHIVE: "Archive",
    ChangeKind.RESTORE: "Restore",
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


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks][:50]


def bar(weight: float, width: int = 20) -> str:
    filled = round(weight * width / 100)
    return "█" * filled + "░" * (width - filled)


def variant_lines(snap: Snapshot) -> str:
    if not snap.variants:
        return "_no variants_"
    width = max(len(v.key) for v in snap.variants)
    rows = [
        f"{v.key:<{width}}  {bar(v.weight)} {pct(v.weight):>6}{'  (control)' if v.is_control else ''}"
        for v in snap.variants
    ]
    return "```" + escape("\n".join(rows)) + "```"


def card(exp: Experiment, caps: Capabilities, label: str) -> Message:
    snap = exp.snapshot
    blocks: list[Block] = [
        HeaderBlock(text=clip(f"🧪 {exp.name}", 150)),
        SectionBlock(
            fields=[
                _md(f"*Ref*\n`{exp.ref}`"),
                _md(f"*Provider*\n{escape(label)} {code(clip(exp.remote_id, 200))}"),
                _md(f"*Status*\n{snap.status.value}"),
                _md(f"*Exposure*\n{pct(snap.exposure)}"),
            ]
        ),
        SectionBlock(text=_md("*Variant weights*\n" + variant_lines(snap))),
    ]
    buttons = [
        ButtonElement(text=BUTTON_LABELS[k], action_id=f"card_{k.value}", value=str(exp.id))
        for k in BUTTON_LABELS
        if k in caps.changes
    ]
    buttons += [
        ButtonElement(text=clip(a.label, 75), action_id="card_action", value=f"{exp.id}:{a.key}"[:2000])
        for a in caps.actions
    ]
    if snap.url:
        buttons.append(ButtonElement(text="Open in console", action_id="card_console", url=snap.url[:3000]))
    if buttons:
        blocks.append(ActionsBlock(block_id="card_actions", elements=buttons[:25]))
    note = f"{escape(snap.note)} · " if snap.note else ""
    blocks.append(
        ContextBlock(
            elements=[
                _md(
                    f"{note}Created by <@{exp.created_by}> · changes need approval in this thread · "
                    f"`/experiment audit {exp.ref}`"
                )
            ]
        )
    )
    weights = ", ".join(f"{v.key} {pct(v.weight)}" for v in snap.variants)
    text = f"{exp.name} ({exp.ref}, {label}): {snap.status.value}, exposure {pct(snap.exposure)}, {weights}"
    return Message(clip(escape(text), 3000), _dicts(blocks))


def change_table(before: Snapshot, after: Snapshot) -> str:
    rows = [
        ("", "before", "after"),
        ("status", before.status.value, after.status.value),
        ("exposure", pct(before.exposure), pct(after.exposure)),
    ]
    after_w = after.weights()
    rows += [(v.key, pct(v.weight), pct(after_w.get(v.key, v.weight))) for v in before.variants]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for r in rows:
        arrow = "→" if r[0] else " "
        mark = "  *" if r[1] != r[2] and r[0] else ""
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}} {arrow} {r[2]:<{widths[2]}}{mark}")
    return "```" + escape("\n".join(lines)) + "```"


def request_message(req: ChangeRequest, exp: Experiment, after: Snapshot) -> Message:
    """The request in the thread; `after` is the provider's preview of the change."""
    what = escape(req.change.describe())
    approvers = ", ".join(f"<@{a.user}>" for a in req.approvals) or "none yet"
    calls = "\n".join(f"{i + 1}. {s.render()}" for i, s in enumerate(req.plan.steps)) or "(no calls)"
    blocks: list[Block] = [
        SectionBlock(
            text=_md(
                f"*Change request #{req.id}*: <@{req.requested_by}> asks to *{what}* on *{escape(exp.name)}* "
                f"(`{exp.ref}`)"
            )
        ),
        SectionBlock(text=_md("*Before → after*\n" + change_table(req.before, after))),
        SectionBlock(text=_md("*Provider calls on approval*\n```" + clip(escape(calls), SECTION_LIMIT - 40) + "```")),
    ]
    if req.plan.notes:
        blocks.append(ContextBlock(elements=[_md("\n".join(f":memo: {escape(n)}" for n in req.plan.notes))]))
    if req.required:
        stamp = int(req.expires_at.timestamp())
        when = f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{req.expires_at:%Y-%m-%d %H:%M} UTC>"
        blocks.append(
            ContextBlock(elements=[_md(f"Approvals {len(req.approvals)}/{req.required}: {approvers} · expires {when}")])
        )
    if req.status is RequestStatus.PENDING:
        blocks.append(_decision_buttons(req, what, escape(exp.name)))
    else:
        deciders = [u for u in (req.decided_by or "").split(",") if u and u != "expbot"]
        by = " by " + ", ".join(f"<@{u}>" for u in deciders) if deciders else ""
        outcome = f": {escape(req.outcome)}" if req.outcome else ""
        blocks.append(
            SectionBlock(
                block_id="request_outcome", text=_md(f"*{_OUTCOME.get(req.status, req.status.value)}*{by}{outcome}")
            )
        )
    text = f"Change request #{req.id} on {exp.ref}: {req.change.describe()} ({req.status.value})"
    return Message(escape(text), _dicts(blocks))


def _decision_buttons(req: ChangeRequest, what: str, name: str) -> ActionsBlock:
    confirm = ConfirmObject(
        title="Approve this change?",
        text=clip(f"{what} on {name}. expbot will send the calls shown once enough people approve.", 300),
        confirm="Approve",
        deny="Not yet",
    )
    return ActionsBlock(
        block_id="request_actions",
        elements=[
            ButtonElement(
                text="Approve", action_id="request_approve", value=str(req.id), style="primary", confirm=confirm
            ),
            ButtonElement(text="Reject", action_id="request_reject", value=str(req.id), style="danger"),
            ButtonElement(text="Cancel", action_id="request_cancel", value=str(req.id)),
        ],
    )


def notice(text: str) -> Message:
    """A message of one section and no buttons (what a second post of a request becomes)."""
    return Message(clip(text, 3900), _dicts([SectionBlock(text=_md(text))]))


def ephemeral(text: str) -> dict[str, Any]:
    """An ack body: an ephemeral answer to the user who typed the command."""
    return {"response_type": "ephemeral", "text": clip(text, 3900)}
