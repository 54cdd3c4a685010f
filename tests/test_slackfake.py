"""The fake Slack Web API itself: state, faults and the player's signatures behave like Slack's."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.slackfake.player import SlackPlayer
from tests.slackfake.web_api import FakeSlack


async def test_messages_threads_views_and_faults() -> None:
    with FakeSlack(bot_token="xoxb-t") as fake:
        client = AsyncWebClient(token="xoxb-t", base_url=fake.api_url)
        parent = await client.chat_postMessage(channel="C1", text="card")
        reply = await client.chat_postMessage(channel="C1", text="req", thread_ts=parent["ts"])
        await client.chat_update(channel="C1", ts=reply["ts"], text="edited", blocks=[])
        assert [m["text"] for m in fake.thread("C1", parent["ts"])] == ["edited"]
        dm = await client.chat_postMessage(channel="U7", text="hi")
        assert dm["channel"] == "D7"

        fake.add_usergroup("S1", ["U1", "U2"])
        assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
        with pytest.raises(SlackApiError) as err:
            await client.usergroups_users_list(usergroup="S9")
        assert err.value.response["error"] == "no_such_subteam"

        view = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
        await client.views_open(trigger_id="1.2.x", view=view)
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id="1.2.x", view=view)
        assert err.value.response["error"] == "exchanged_trigger_id"

        fake.fail_next("chat.postMessage", status=429, retry_after=1)
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C1", text="x")
        assert err.value.response.status_code == 429 and err.value.response.headers["Retry-After"] == "1"
        bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
        with pytest.raises(SlackApiError) as err:
            await bad.auth_test()
        assert err.value.response["error"] == "invalid_auth"


def test_player_signatures_verify_with_slack_sdk() -> None:
    with FakeSlack() as fake:
        player = SlackPlayer("http://127.0.0.1:9/slack/events", "s3cret", fake)
        headers = player.sign(b"a=b")
        verifier = SignatureVerifier("s3cret")
        assert verifier.is_valid(b"a=b", headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
        assert not verifier.is_valid(b"a=c", headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
