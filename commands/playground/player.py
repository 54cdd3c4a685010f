"""Plays Slack towards an app from async code: signed slash commands, button clicks, modal actions and events."""

from __future__ import annotations

from typing import Any

import httpx

from commands.playground.payloads import FORM, Payloads, find_element
from commands.playground.standin import SlackStandIn


class SlackPlayer(Payloads):
    """Sends requests exactly as Slack would: form-encoded or JSON bodies, signed with the signing secret."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        fake: SlackStandIn,
        team_id: str = "T0TEST",
        api_app_id: str = "A0TEST",
    ) -> None:
        super().__init__(fake, signing_secret, team_id, api_app_id)
        self.events_url = events_url
        self.http = httpx.AsyncClient(timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> SlackPlayer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def post(
        self,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        signed = self.sign(body, timestamp)
        if signature is not None:
            signed["X-Slack-Signature"] = signature
        return await self.http.post(
            self.events_url, content=body, headers={"Content-Type": content_type, **signed, **(headers or {})}
        )

    async def _interactive(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.post(self.interactive(payload), FORM)

    async def command(
        self, text: str, *, user: str = "U1", channel: str = "C1", command: str = "/experiment"
    ) -> httpx.Response:
        return await self.post(self.command_form(text, user, channel, command), FORM)

    _find = staticmethod(find_element)

    def has_button(self, channel: str, ts: str | None, action_id: str) -> bool:
        msg = self.fake.message(channel, ts)
        return bool(msg and find_element(msg.get("blocks") or [], action_id))

    async def click(
        self,
        channel: str,
        ts: str | None,
        action_id: str,
        *,
        user: str = "U1",
        value: str | None = None,
        seen: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Click a button on a message as it is now, or as a user's client still shows it (`seen`)."""
        msg = seen or self.fake.message(channel, ts)
        assert msg is not None, f"no message {channel}/{ts}"
        found = find_element(msg.get("blocks") or [], action_id)
        assert found is not None, f"message {ts} has no element {action_id}"
        element, block_id = found
        chosen = {"value": value} if value is not None else {}
        return await self._interactive(
            self.message_action(channel, {**msg, "ts": ts}, element, block_id, user, **chosen)
        )

    async def suggest(self, view_id: str, block_id: str, query: str = "", *, user: str = "U1") -> list[dict[str, Any]]:
        """Open an external select as Slack does (a `block_suggestion`) and return the options the app answered."""
        view = self.fake.views[view_id]
        block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
        resp = await self._interactive(self.suggestion(view_id, block_id, block["element"]["action_id"], query, user))
        assert resp.status_code == 200, resp.text
        options: list[dict[str, Any]] = resp.json()["options"]
        return options

    async def select_in_view(self, view_id: str, action_id: str, value: str, *, user: str = "U1") -> httpx.Response:
        blocks = self.fake.views[view_id].get("blocks", [])
        found = next(
            (b for b in blocks if isinstance(b.get("element"), dict) and b["element"].get("action_id") == action_id),
            None,
        )
        assert found is not None, f"view {view_id} has no element {action_id}"
        block_id, element = found["block_id"], found["element"]
        offered = element.get("options", [])
        if element["type"] == "external_select":
            offered = await self.suggest(view_id, block_id, "", user=user)
        option = next((o for o in offered if o["value"] == value), None)
        assert option is not None, f"{value!r} is not an option of {action_id}"
        state = self.state(view_id, {})
        state[block_id] = {action_id: {"type": element["type"], "selected_option": option}}
        action = {"action_id": action_id, "block_id": block_id, "type": element["type"], "selected_option": option}
        return await self._interactive(self.view_action(view_id, state, action, user))

    async def submit(self, view_id: str, values: dict[str, Any], *, user: str = "U1") -> httpx.Response:
        return await self._interactive(self.submission(view_id, self.state(view_id, values), user))

    async def event(self, event: dict[str, Any]) -> httpx.Response:
        return await self.post(self.event_body(event), "application/json")
