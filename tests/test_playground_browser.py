"""The whole approval story in a real headless Chromium against `expbot playground` started as a process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARGS += ["--disable-sync", "--no-first-run"]
SHOT = Path(__file__).resolve().parent.parent / "docs" / "playground.png"
WAIT = 30_000  # ms Playwright waits for a condition (the sandbox takes 1.5 s per call in the playground)


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`expbot playground --port 0` as a process, in an empty folder (no `.env`, no provider credentials)."""
    folder = tmp_path_factory.mktemp("playground")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "EXPBOT_", "APPSTORE_", "AMPLITUDE_"))}
    env = {k: v for k, v in env.items() if not k.startswith(("AUTH0_", "LAUNCHDARKLY_"))}
    cmd = [sys.executable, "-m", "commands.cli", "playground", "--port", "0", "--data", str(folder / "data")]
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(cmd, cwd=folder, env={**env, "PYTHONPATH": root}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("expbot playground: open http://127.0.0.1:"), line
    yield line.split("open ", 1)[1].strip()
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium first: bash scripts/install-chromium.sh"
    with sync_playwright() as play:
        found = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield found
        found.close()


def act_as(page: Page, user: str) -> None:
    page.select_option("#who", user)
    expect(page.locator("#who")).to_have_value(user)


def type_command(page: Page, text: str) -> None:
    page.fill("#compose", text)
    page.press("#compose", "Enter")


def approve(page: Page) -> None:
    page.locator("#thread [data-action-id=request_approve]").click()
    expect(page.get_by_role("dialog", name="Approve this change?")).to_be_visible()
    page.locator("[data-confirm=yes]").click()


def open_as(browser: Browser, address: str, user: str) -> Page:
    """A page on the playground, acting as `user`, in the channel where commands are typed."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(WAIT)
    expect.set_options(timeout=WAIT)
    page.goto(address)
    act_as(page, user)
    expect(page.locator("#title")).to_have_text("# product")
    return page


def submit_modal(modal: Locator, name: str) -> None:
    modal.locator("[data-block-id=name] input").fill(name)
    modal.locator("[data-submit]").click()
    expect(modal).to_be_hidden()


def test_the_approval_story_in_a_browser(address: str, browser: Browser) -> None:
    page = open_as(browser, address, "U0ALICE")
    type_command(page, "/experiment new sandbox")
    modal = page.get_by_role("dialog", name="New experiment")
    expect(modal.locator("[data-block-id=exposure] input")).to_be_visible()
    modal.locator("[data-block-id=template] button.pick").click()  # an external select: block_suggestion
    modal.get_by_role("option", name="A/B/C: control and two treatments").click()  # dispatches; views.update
    expect(modal.locator("[data-block-id=variants] input")).to_have_value("control, a, b")
    submit_modal(modal, "Checkout <v2>")

    page.click("[data-nav=C0STATUS]")
    card = page.locator("#messages .msg").filter(has=page.locator(".block-header"))
    expect(card.locator(".block-header")).to_have_text("🧪 Checkout <v2>")  # escaped text shown literally
    expect(card).to_contain_text("draft")
    expect(card).to_contain_text("(control)")

    type_command(page, "/experiment ramp exp-1 25")
    expect(page.locator("#messages .msg.ephemeral")).to_contain_text("Asked for approval")
    card.locator("button.replies").click()
    request = page.locator("#thread .msg").filter(has=page.locator("[data-action-id=request_approve]"))
    expect(request).to_contain_text("@alice asks to")  # a user mention shown as a name

    approve(page)  # alice asked, so she may not approve
    expect(page.locator("#thread .msg.ephemeral")).to_contain_text("someone else has to approve")

    act_as(page, "U0DAVE")
    expect(page.locator("#thread .msg.ephemeral")).to_have_count(0)  # alice's ephemeral is hers alone
    approve(page)
    expect(page.locator("#thread .msg.ephemeral")).to_contain_text("Only approvers can approve")

    act_as(page, "U0BOB")
    expect(page.locator("#thread .msg.ephemeral")).to_have_count(0)
    approve(page)
    outcome = page.locator("#thread [data-block-id=request_outcome]")
    expect(outcome).to_contain_text("Applied", timeout=60_000)
    expect(outcome).to_contain_text("@bob")
    expect(card).to_contain_text("25%")
    SHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOT))

    act_as(page, "U0ALICE")
    page.click("[data-nav=D0ALICE]")
    expect(page.locator("#messages .msg")).to_contain_text("Your request #1")
    type_command(page, "/experiment audit exp-1")
    expect(page.locator("#messages .msg.ephemeral").last).to_contain_text("applied")
    page.click("[data-nav=home]")
    expect(page.locator(".home .block-header")).to_have_text("expbot")
    page.close()


def test_the_renderer_shows_mrkdwn_and_unknown_blocks(address: str, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(address)
    expect(page.locator("#title")).to_have_text("# product")
    text = "*b* _i_ ~s~ `c &lt;x&gt;` &lt;!channel&gt; <https://example.test|a link> "
    text += "<@U0BOB> <#C0STATUS> <!subteam^S0APPROVERS>"
    html = page.evaluate("(t) => mrkdwn(t).innerHTML", text)
    assert "<b>b</b> <i>i</i> <s>s</s> <code>c &lt;x&gt;</code> &lt;!channel&gt; " in html
    assert '<a href="https://example.test" target="_blank" rel="noopener">a link</a>' in html
    assert "@bob</span>" in html and "#experiments</span>" in html and "@experiment-approvers</span>" in html
    assert page.evaluate("mrkdwn('```a &amp; *b*```').innerHTML") == "<pre>a &amp; *b*</pre>"
    shown = page.evaluate(
        "blocks({kind: 'message'}, [{type: 'rich_text'}, {type: 'actions', elements: [{type: 'x'}]}])"
        ".map((el) => el.textContent)"
    )
    assert shown == ["Unsupported block: rich_text", "Unsupported element: x"]
    fallback = page.evaluate(
        "message({ts: '1.0', channel: 'C0PRODUCT', text: 'only *text*', user: 'U0BOB'}, false)"
        ".querySelector('.mrkdwn').innerHTML"
    )
    assert fallback == "only <b>text</b>"
    page.close()


def test_reject_cancel_and_a_group_approver_in_a_browser(address: str, browser: Browser) -> None:
    page = open_as(browser, address, "U0ALICE")
    type_command(page, "/experiment new sandbox")
    submit_modal(page.get_by_role("dialog", name="New experiment"), "Onboarding")
    page.click("[data-nav=C0STATUS]")
    card = page.locator("#messages .msg").filter(has=page.locator(".block-header", has_text="Onboarding"))
    expect(card).to_contain_text("draft")
    found = re.search(r"exp-\d+", card.inner_text())
    assert found is not None
    ref = found.group(0)  # this test may run alone or after the story

    def request(what: str) -> Locator:
        return page.locator("#thread .msg").filter(has=page.locator(".mrkdwn", has_text=what)).last

    type_command(page, f"/experiment ramp {ref} 30")
    card.locator("button.replies").click()
    rejected = request("ramp exposure to 30%")
    expect(rejected.locator("[data-action-id=request_reject]")).to_be_visible()
    act_as(page, "U0CAROL")
    rejected.locator("[data-action-id=request_reject]").click()
    expect(rejected.locator("[data-block-id=request_outcome]")).to_contain_text("Rejected")
    expect(rejected.locator("[data-block-id=request_outcome]")).to_contain_text("@carol")

    act_as(page, "U0ALICE")
    type_command(page, f"/experiment ramp {ref} 35")
    cancelled = request("ramp exposure to 35%")
    cancelled.locator("[data-action-id=request_cancel]").click()
    expect(cancelled.locator("[data-block-id=request_outcome]")).to_contain_text("Cancelled")

    type_command(page, f"/experiment start {ref}")
    started = request("asks to start on")
    act_as(page, "U0CAROL")  # an approver through the user group, not by id
    started.locator("[data-action-id=request_approve]").click()
    page.locator("[data-confirm=yes]").click()
    expect(started.locator("[data-block-id=request_outcome]")).to_contain_text("Applied", timeout=60_000)
    expect(card).to_contain_text("running")
    page.close()
