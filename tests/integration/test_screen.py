"""The management screen in a real browser (Debian's Chromium via Playwright) on a real stack.

Seeded once per module: 6 orders delivered to /ok and 2 failing for good at /reject (400),
so the period holds 8 attempts, 2 failed (25 %). Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import html
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.integration.conftest import Stack, add_key, eventually, order_event, running_stack
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def screen(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("screen")) as stack:
        stack.active_rule(name="ok", event_types=["order.dispatched"], url=f"{receiver.url}/ok")
        stack.active_rule(
            name="rejected", event_types=["tracking.updated"], url=f"{receiver.url}/reject"
        )
        events = [order_event(f"SCR-{n}", "order.dispatched") for n in range(1, 7)]
        events += [order_event(f"SCR-{n}", "tracking.updated") for n in (1, 2)]
        stack.publisher.publish_many(events)
        stack.rows_eventually(8)
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, screen: Stack) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, locale="en-US", timezone_id="America/Sao_Paulo"
    )
    opened = context.new_page()
    opened.set_default_timeout(15000)
    opened.goto(f"{screen.api}/")
    sign_in(opened, screen.key)
    yield opened
    context.close()


def sign_in(page: Page, key: str) -> None:
    """Fill the sign-in form (Enter signs in) and wait until the screen is there."""
    page.locator("input[name=api_key]").fill(key)
    page.locator("input[name=api_key]").press("Enter")
    expect(page.get_by_test_id("who")).to_be_visible()


def rows(page: Page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#rows tr",
        "trs => trs.map(tr => ({order: tr.cells[0].innerText, status: tr.dataset.status, "
        "manual: tr.dataset.manual, at: tr.dataset.dispatchedAt, date: tr.cells[2].innerText}))",
    )


def test_tabs_show_the_failed_count_and_percentage_and_the_total(page: Page) -> None:
    expect(page.get_by_test_id("failed-count")).to_have_text("2")
    expect(page.get_by_test_id("failed-pct")).to_have_text("(25%)")
    expect(page.get_by_test_id("total-count")).to_have_text("8")
    expect(page.locator("#rows tr")).to_have_count(2)  # the failed tab opens first
    assert {r["status"] for r in rows(page)} == {"failure"}
    expect(page.get_by_test_id("by-reason")).to_contain_text("HTTP 4xx")
    expect(page.get_by_test_id("by-rule").locator("button")).to_have_count(1)
    page.get_by_test_id("tab-all").click()
    expect(page.locator("#rows tr")).to_have_count(8)
    page.screenshot(path=ARTIFACTS / "webhooks-all-1280.png", full_page=True)


def test_search_narrows_to_one_order_and_the_row_opens_its_attempts(page: Page) -> None:
    page.get_by_test_id("tab-all").click()
    page.get_by_test_id("order-search").fill("SCR-2")
    page.get_by_test_id("order-search").press("Enter")
    # Retried until the search's rows are shown: the failed tab's first rows are also two.
    expect(page.locator("#rows tr td:first-child")).to_have_text(["SCR-2", "SCR-2"])
    expect(page.get_by_test_id("total-count")).to_have_text("2")
    expect(page.get_by_test_id("failed-count")).to_have_text("1")
    assert "order=SCR-2" in page.url
    page.locator("#rows tr[data-status=failure] td").nth(4).click()  # not on a link
    detail = page.get_by_test_id("detail")
    expect(detail.get_by_test_id("attempt")).to_have_count(1)
    expect(detail).to_contain_text("400")
    expect(detail.get_by_test_id("request-headers")).to_contain_text("webhook-id: msg_")
    page.screenshot(path=ARTIFACTS / "webhooks-order-detail.png", full_page=True)


def test_failure_breakdown_filters_the_list_and_exports_it_as_csv(
    page: Page, screen: Stack
) -> None:
    page.get_by_test_id("by-reason").locator("button").first.click()
    expect(page.get_by_test_id("filter-reason")).to_be_visible()
    expect(page.locator("#rows tr")).to_have_count(2)
    href = page.get_by_test_id("export").get_attribute("href")
    assert href is not None
    assert "reason=http_4xx" in href
    assert "status=failure" in href
    csv = screen.http.get(f"{screen.api}{href}", timeout=30)
    assert csv.status_code == 200
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("dispatched_at,order_id,")
    assert len(lines) == 3
    assert all(",failure,http_4xx," in line for line in lines[1:])


def test_the_manual_send_modal_validates_then_resends_and_the_row_appears(page: Page) -> None:
    page.get_by_test_id("send-manually").click()
    modal = page.get_by_test_id("resend-modal")
    modal.get_by_test_id("resend-submit").click()
    expect(modal).to_contain_text("Enter the order number.")
    modal.get_by_test_id("resend-order").fill("NO-SUCH-ORDER")
    modal.get_by_test_id("resend-submit").click()
    expect(modal.get_by_test_id("resend-error")).to_contain_text("no dispatch found")
    clicked = datetime.now(UTC)
    modal.get_by_test_id("resend-order").fill("SCR-5")
    modal.get_by_test_id("resend-event").fill("order.dispatched")
    modal.get_by_test_id("resend-submit").click()
    expect(modal).to_be_hidden()
    # The queued toast, or already the next one: the row can be listed before this reads it.
    expect(page.get_by_test_id("toast")).to_contain_text(
        re.compile(r"1 webhook\(s\) queued for order SCR-5|The resent webhook is in the list")
    )
    manual = page.locator("#rows tr[data-manual=true]")
    expect(manual).to_have_count(1, timeout=30000)  # no reload: the list polls for it
    [row] = [r for r in rows(page) if r["manual"] == "true"]
    assert row["order"] == "SCR-5"
    assert datetime.fromisoformat(row["at"].replace("Z", "+00:00")) >= clicked.replace(
        microsecond=0
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    page.screenshot(path=ARTIFACTS / "webhooks-after-resend.png", full_page=True)


def test_a_rule_created_in_the_rules_page_triggers_dispatches(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    page.get_by_test_id("nav-rules").click()
    expect(page.locator("#rule-rows tr")).to_have_count(2)
    page.get_by_test_id("new-rule").click()
    modal = page.get_by_test_id("rule-modal")
    modal.get_by_test_id("rule-name").fill("from the screen")
    modal.get_by_test_id("rule-event-types").fill("pre_invoice.created")
    modal.get_by_test_id("rule-url").fill("not a url")
    modal.get_by_test_id("rule-timeout").fill("500")
    modal.get_by_test_id("rule-save").click()
    expect(modal.locator("[data-error=url]")).not_to_be_empty()
    expect(modal.locator("[data-error=timeout_s]")).to_contain_text("60")
    modal.get_by_test_id("rule-url").fill(f"{receiver.url}/ok")
    modal.get_by_test_id("rule-timeout").fill("5")
    modal.get_by_test_id("rule-headers").fill("X-Tenant: acme")
    _filter_row(modal, "payload.kg", "gte", "heavy")  # a number operator needs a number
    _filter_row(modal, "order_id", "prefix", "SCR-9")
    modal.get_by_test_id("rule-max-per-second").fill("25")
    modal.get_by_test_id("rule-save").click()
    expect(modal.locator("[data-error=filters]")).to_contain_text("payload.kg")
    modal.get_by_test_id("filter-value").first.fill("10")
    modal.get_by_test_id("rule-save").click()
    expect(modal).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("whsec_")
    expect(page.locator("#rule-rows tr")).to_have_count(3)
    page.screenshot(path=ARTIFACTS / "rules.png", full_page=True)

    created = [
        r
        for r in screen.http.get(f"{screen.api}/api/v1/rules").json()["items"]
        if r["name"] == "from the screen"
    ]
    [rule] = created
    assert rule["headers"] == {"X-Tenant": "********"}  # masked on every read
    assert rule["secret"].startswith("whsec_… (sha256 ")
    assert rule["filters"] == {"payload.kg": {"gte": 10}, "order_id": {"prefix": "SCR-9"}}
    assert rule["max_per_second"] == 25
    expect(
        page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}'] [data-testid=rule-rate]")
    ).to_have_text("≤ 25/s")
    screen.wait_rule_applied(rule["id"], active=True)
    light = order_event("SCR-90", "pre_invoice.created", payload={"kg": 3})
    screen.publisher.publish_many(
        [light, order_event("SCR-9", "pre_invoice.created", payload={"kg": 12})]
    )
    delivered = screen.rows_eventually(1, rule_id=rule["id"])
    assert (delivered[0]["order_id"], delivered[0]["status"]) == ("SCR-9", "success")
    story = eventually(lambda: _story_rule(screen, "SCR-90", rule["id"]))
    assert story == {"outcome": "not_matched", "why": 'payload.kg is 3, rule wants {"gte": 10}'}
    assert any(r.headers.get("x-tenant") == "acme" for r in receiver.on("/ok"))

    page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}']").get_by_test_id("rule-edit").click()
    shown = modal.get_by_test_id("filter-row")
    expect(shown).to_have_count(2)  # the saved operators come back as rows
    expect(shown.first.get_by_test_id("filter-op")).to_have_value("gte")
    expect(shown.last.get_by_test_id("filter-value")).to_have_value("SCR-9")
    modal.get_by_text("Cancel").click()
    page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}']").get_by_test_id(
        "rule-toggle"
    ).click()
    expect(page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}']")).to_contain_text("Inactive")
    screen.wait_rule_applied(rule["id"], active=False)


def _filter_row(modal: Locator, path: str, op: str, value: str) -> None:
    modal.get_by_test_id("add-filter").click()
    row = modal.get_by_test_id("filter-row").last
    row.get_by_test_id("filter-path").fill(path)
    row.get_by_test_id("filter-op").select_option(op)
    row.get_by_test_id("filter-value").fill(value)


def _story_rule(screen: Stack, order_id: str, rule_id: int) -> dict[str, str] | None:
    story = screen.http.get(f"{screen.api}/api/v1/orders/{order_id}").json()
    for e in story.get("events", []):
        for r in e["rules"]:
            if r["rule_id"] == rule_id:
                return {"outcome": r["outcome"], "why": r["why"]}
    return None


def test_portuguese_and_english_switch_texts_numbers_and_dates(page: Page) -> None:
    expect(page.get_by_test_id("total-count")).to_have_text(re.compile(r"\d"))
    page.get_by_test_id("tab-all").click()
    date_cell = page.locator("#rows tr").first.locator("td").nth(2)
    expect(date_cell).to_have_text(re.compile(r"^\d{1,2}/\d{1,2}/\d{2},? "))  # en-US: m/d/yy
    page.get_by_test_id("lang").select_option("pt-BR")
    expect(page.get_by_test_id("tab-failed")).to_contain_text("Entregas com falha")
    expect(page.get_by_test_id("tab-all")).to_contain_text("Todos os webhooks enviados")
    expect(page.get_by_test_id("send-manually")).to_have_text("Enviar webhook manualmente")
    expect(date_cell).to_have_text(re.compile(r"^\d{2}/\d{2}/\d{4},? "))  # pt-BR: dd/mm/yyyy
    assert page.evaluate("document.documentElement.lang") == "pt-BR"
    page.screenshot(path=ARTIFACTS / "webhooks-pt-BR.png", full_page=True)
    page.reload()  # the choice is remembered
    expect(page.get_by_test_id("tab-failed")).to_contain_text("Entregas com falha")
    page.get_by_test_id("lang").select_option("en")
    expect(page.get_by_test_id("tab-failed")).to_contain_text("Failed deliveries")


def test_phone_width_stacks_the_table_and_states_say_what_happened(
    browser: Browser, screen: Stack
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{screen.api}/#/webhooks?tab=all&order=NOBODY")
    sign_in(phone, screen.key)
    expect(phone.get_by_test_id("list-state")).to_have_text(
        "No webhooks for order NOBODY in this period."
    )
    phone.goto(f"{screen.api}/#/webhooks?tab=all")
    expect(phone.locator("#rows tr").first).to_be_visible()
    assert phone.locator("table.grid thead").first.is_hidden()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    phone.screenshot(path=ARTIFACTS / "webhooks-phone.png", full_page=True)
    phone.goto(f"{screen.api}/#/webhooks?from=2020-01-01&to=2020-01-02")
    expect(phone.get_by_test_id("list-state")).to_contain_text("Only the last 30 days are kept")
    context.close()


def test_sign_in_refuses_bad_keys_and_a_viewer_sees_no_changing_controls(
    browser: Browser, screen: Stack
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{screen.api}/#/rules")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("dispatch-table")).to_be_hidden()
    page.locator("input[name=api_key]").fill("dsp_not-a-key")
    page.locator("input[name=api_key]").press("Enter")
    expect(page.get_by_test_id("signin-error")).to_contain_text("unknown API key")
    publisher = add_key(screen.settings, "screen-publisher", "publisher")
    viewer = add_key(screen.settings, "screen-viewer", "viewer")
    page.locator("input[name=api_key]").fill(publisher)
    page.locator("input[name=api_key]").press("Enter")
    expect(page.get_by_test_id("signin-error")).to_contain_text("only publish events")
    sign_in(page, viewer)
    expect(page.get_by_test_id("who")).to_have_text("screen-viewer · viewer")
    expect(page.locator("#rule-rows tr")).not_to_have_count(0)
    expect(page.get_by_test_id("rule-edit")).to_have_count(0)
    expect(page.get_by_test_id("rule-toggle")).to_have_count(0)
    expect(page.get_by_test_id("new-rule")).to_be_hidden()
    page.get_by_test_id("nav-webhooks").click()
    expect(page.locator("#rows tr").first).to_be_visible()
    expect(page.get_by_test_id("send-manually")).to_be_hidden()
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("sessionStorage.getItem('disparo.key')") == viewer
    page.screenshot(path=ARTIFACTS / "viewer.png", full_page=True)
    context.close()


def test_the_audit_view_lists_a_rule_change_made_by_another_key(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    other = add_key(screen.settings, "night-shift", "admin")
    eventually(
        lambda: (
            screen.http.get(
                f"{screen.api}/api/v1/me", headers={"Authorization": f"Bearer {other}"}
            ).status_code
            == 200
        ),
        10,
    )
    made = screen.http.post(
        f"{screen.api}/api/v1/rules",
        headers={"Authorization": f"Bearer {other}"},
        json={"name": "by night", "event_types": ["x.y"], "url": f"{receiver.url}/ok"},
    )
    assert made.status_code == 201
    page.get_by_test_id("nav-audit").click()
    row = page.locator("#audit-rows tr", has_text="night-shift")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("rule.create")
    expect(row).to_contain_text(str(made.json()["id"]))
    expect(row).not_to_contain_text(made.json()["secret"])
    page.get_by_test_id("lang").select_option("pt-BR")
    expect(page.get_by_test_id("audit-table").locator("th").nth(1)).to_have_text("Quem")
    page.get_by_test_id("lang").select_option("en")
    page.screenshot(path=ARTIFACTS / "audit.png", full_page=True)


def test_a_401_brings_the_sign_in_back_with_the_reason(browser: Browser, screen: Stack) -> None:
    key = add_key(screen.settings, "revoked-in-session", "viewer")
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{screen.api}/")
    sign_in(page, key)
    key_id = screen.http.get(
        f"{screen.api}/api/v1/me", headers={"Authorization": f"Bearer {key}"}
    ).json()["id"]
    assert screen.http.delete(f"{screen.api}/api/v1/keys/{key_id}").status_code == 200
    eventually(
        lambda: (
            screen.http.get(
                f"{screen.api}/api/v1/me", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 401
        ),
        10,
    )
    # The next request with the key meets the 401. The live feed's reconnect may get there
    # before the click does: the tabs are then hidden behind the sign-in already.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.get_by_test_id("tab-all").click(timeout=3000)
    expect(page.get_by_test_id("signin-error")).to_contain_text("revoked")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('disparo.key')") is None
    context.close()


def test_an_account_key_gets_its_own_portal_and_a_platform_key_switches_accounts(
    browser: Browser, screen: Stack, receiver: Receiver
) -> None:
    """Runs last: it adds rows of two more accounts, which the counts above do not expect."""
    made = screen.http.post(
        f"{screen.api}/api/v1/accounts", json={"id": "acct-pa", "name": "Portal A"}
    )
    assert made.status_code == 201, made.text
    for account, path in (("acct-pa", "/ok/pa"), ("acct-pb", "/ok/pb")):
        screen.active_rule(
            name=f"{account} rule", event_types=["order.dispatched"],
            url=f"{receiver.url}{path}", account_id=account,
        )  # fmt: skip
    screen.publisher.publish_many(
        [
            order_event("PA-1", "order.dispatched", account_id="acct-pa"),
            order_event("PA-2", "order.dispatched", account_id="acct-pa"),
            order_event("PB-1", "order.dispatched", account_id="acct-pb"),
        ]
    )
    screen.rows_eventually(2, account_id="acct-pa")
    screen.rows_eventually(1, account_id="acct-pb")
    viewer = add_key(screen.settings, "portal-a-viewer", "viewer", "acct-pa")
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{screen.api}/")
    sign_in(page, viewer)
    expect(page.get_by_test_id("account-name")).to_have_text("Portal A")
    expect(page.get_by_test_id("account-select")).to_be_hidden()
    page.get_by_test_id("tab-all").click()
    expect(page.locator("#rows tr")).to_have_count(2)
    assert {r["order"] for r in rows(page)} == {"PA-1", "PA-2"}
    expect(page.get_by_test_id("total-count")).to_have_text("2")
    page.get_by_test_id("nav-rules").click()
    expect(page.locator("#rule-rows tr")).to_have_count(1)
    expect(page.locator("#rule-rows")).to_contain_text("acct-pa rule")
    page.screenshot(path=ARTIFACTS / "account-portal.png", full_page=True)
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{screen.api}/#/webhooks?tab=all")
    sign_in(page, screen.key)
    expect(page.get_by_test_id("account-name")).to_be_hidden()
    select = page.get_by_test_id("account-select")
    expect(select.locator("option[value=acct-pa]")).to_have_text("Portal A (acct-pa)")
    select.select_option("acct-pb")
    expect(page.locator("#rows tr")).to_have_count(1)
    assert [r["order"] for r in rows(page)] == ["PB-1"]
    expect(page.get_by_test_id("total-count")).to_have_text("1")
    select.select_option("acct-pa")
    expect(page.locator("#rows tr")).to_have_count(2)
    assert {r["order"] for r in rows(page)} == {"PA-1", "PA-2"}
    assert "account=acct-pa" in page.url
    select.select_option("")
    expect(page.locator("#rows tr", has_text="PB-1")).to_have_count(1)
    orders = {r["order"] for r in rows(page)}
    assert {"PA-1", "PA-2", "PB-1", "SCR-1"} <= orders
    context.close()


def test_a_paused_rule_shows_its_held_webhooks_and_releases_them(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    rule = screen.active_rule(
        name="paused", event_types=["pre_invoice.updated"], url=f"{receiver.url}/ok",
        paused=True, paused_reason="carrier migration", ordering="per_order", supersede=True,
    )  # fmt: skip
    events = [order_event(f"SCR-H{n}", "pre_invoice.updated") for n in (1, 2, 3)]
    screen.publisher.publish_many(events)
    screen.rows_eventually(3, rule_id=rule["id"], status="held")
    page.get_by_test_id("tab-held").click()  # counts and rows load again
    expect(page.get_by_test_id("held-count")).to_have_text("3")
    expect(page.locator("#rows tr")).to_have_count(3)
    assert {r["status"] for r in rows(page)} == {"held"}

    page.get_by_test_id("nav-rules").click()
    row = page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}']")
    expect(row.get_by_test_id("rule-status")).to_have_attribute("data-state", "paused")
    expect(row.get_by_test_id("rule-held")).to_have_text("3 held")
    row.get_by_test_id("rule-edit").click()
    modal = page.get_by_test_id("rule-modal")
    expect(modal.get_by_test_id("rule-ordering")).to_have_value("per_order")
    expect(modal.get_by_test_id("rule-supersede")).to_be_checked()
    expect(modal.get_by_test_id("rule-paused")).to_be_checked()
    expect(modal.get_by_test_id("rule-paused-reason")).to_have_value("carrier migration")
    expect(modal.get_by_test_id("rule-release-rate")).to_have_value("50")
    page.screenshot(path=ARTIFACTS / "rule-paused.png", full_page=True)
    modal.get_by_text("Cancel").click()

    row.get_by_test_id("rule-release").click()
    expect(page.get_by_test_id("toast")).to_contain_text("3 held webhook(s)")
    delivered = screen.rows_eventually(3, rule_id=rule["id"], status="success")
    assert sorted(r["order_id"] for r in delivered) == ["SCR-H1", "SCR-H2", "SCR-H3"]
    expect(row.get_by_test_id("rule-status")).to_have_attribute("data-state", "active")


def test_undelivered_orders_are_resent_pasted_and_rules_previewed_and_tested(
    page: Page, screen: Stack
) -> None:
    """Runs last: it resends orders, which the counts above do not expect."""
    page.get_by_test_id("tab-undelivered").click()
    # SCR-1 and SCR-2's tracking updates went to /reject (a 400 is final): their latest state.
    failed = page.locator("#coverage-rows tr[data-state=failed]")
    expect(failed).to_have_count(2)
    expect(page.get_by_test_id("undelivered-count")).to_have_text("2")
    assert sorted(failed.evaluate_all("trs => trs.map(tr => tr.dataset.orderId)")) == [
        "SCR-1",
        "SCR-2",
    ]
    expect(page.locator("#coverage-rows")).to_contain_text("tracking.updated")
    page.screenshot(path=ARTIFACTS / "undelivered.png", full_page=True)
    page.get_by_test_id("coverage-all").check()
    expect(page.get_by_test_id("resend-latest")).to_have_text("Resend latest state (2)")
    page.get_by_test_id("resend-latest").click()
    expect(page.get_by_test_id("toast")).to_contain_text("2 webhook(s) queued")
    expect(page.locator("#rows tr.fresh")).to_have_count(2, timeout=30000)  # in "All", no reload

    page.get_by_test_id("send-manually").click()
    modal = page.get_by_test_id("resend-modal")
    modal.get_by_test_id("resend-orders").fill("SCR-3\nSCR-4, SCR-5 SCR-6\nSCR-1\nSCR-404")
    modal.get_by_test_id("resend-submit").click()
    expect(modal).to_be_hidden()
    toast = page.get_by_test_id("toast")
    expect(toast).to_contain_text("6 webhook(s) queued with the latest state of 5 order(s)")
    expect(toast).to_contain_text("SCR-404")
    expect(page.locator("#rows tr.fresh")).to_have_count(8, timeout=30000)
    fresh = page.eval_on_selector_all(
        "#rows tr.fresh", "trs => trs.map(tr => tr.cells[0].innerText)"
    )
    assert sorted(fresh) == sorted(
        ["SCR-1", "SCR-2", "SCR-1", "SCR-1", "SCR-3", "SCR-4", "SCR-5", "SCR-6"]
    )

    page.get_by_test_id("nav-rules").click()
    page.get_by_test_id("new-rule").click()
    rule_modal = page.get_by_test_id("rule-modal")
    expect(rule_modal.get_by_test_id("rule-test")).to_be_hidden()  # a test needs a saved rule
    rule_modal.get_by_test_id("rule-event-types").fill("tracking.updated")
    _filter_row(rule_modal, "order_id", "in", "SCR-1,SCR-2,SCR-3")
    rule_modal.get_by_test_id("rule-preview").click()
    expect(rule_modal.get_by_test_id("preview-counts")).to_have_text(
        "2 event(s) of 2 order(s) in the last 30 days match this rule."
    )
    expect(rule_modal.get_by_test_id("rule-preview-result").locator("li")).to_have_count(2)
    rule_modal.get_by_text("Cancel").click()

    name_ok = page.locator("td:nth-child(2)", has_text=re.compile("^ok$"))
    ok_rule = page.locator("#rule-rows tr").filter(has=name_ok)
    ok_rule.get_by_test_id("rule-edit").click()
    rule_modal.get_by_test_id("rule-test").click()
    outcome = rule_modal.get_by_test_id("test-outcome")
    expect(outcome).to_have_attribute("data-status", "success", timeout=30000)
    expect(outcome).to_contain_text("HTTP 200")
    page.screenshot(path=ARTIFACTS / "rule-test.png", full_page=True)


def test_the_history_is_live_while_open_and_stops_while_paused(page: Page, screen: Stack) -> None:
    # The count a live row adds to is the one the tab loaded: wait for that answer first.
    expect(page.get_by_test_id("total-count")).to_have_text(re.compile(r"^[\d,]+$"))
    with page.expect_response(lambda r: "/api/v1/dispatches/summary" in r.url):
        page.get_by_test_id("tab-all").click()
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
    total = int(page.get_by_test_id("total-count").inner_text().replace(",", ""))
    screen.publisher.publish(order_event("SCR-LIVE-1", "order.dispatched"))
    expect(page.locator("#rows tr").first).to_contain_text("SCR-LIVE-1", timeout=5000)
    expect(page.get_by_test_id("total-count")).to_have_text(f"{total + 1:,}")
    page.get_by_test_id("live-toggle").click()
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "paused")
    screen.publisher.publish(order_event("SCR-LIVE-2", "order.dispatched"))
    screen.rows_eventually(1, order_id="SCR-LIVE-2")  # stored: it would have been streamed
    expect(page.locator("#rows")).not_to_contain_text("SCR-LIVE-2")
    page.get_by_test_id("live-toggle").click()  # resumed: the list reloads with it
    expect(page.locator("#rows tr").first).to_contain_text("SCR-LIVE-2")
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
    assert len(page.locator("#rows tr", has_text="SCR-LIVE-1").all()) == 1
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_an_orders_page_tells_its_story_rule_by_rule(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    common = {"account_id": "scr-story", "url": f"{receiver.url}/ok"}
    fires = screen.active_rule(name="fires", event_types=["order.dispatched"], **common)
    picky = screen.active_rule(
        name="picky", event_types=["*"], filters={"payload.carrier": ["acme"]}, **common
    )
    paused = screen.active_rule(name="paused", event_types=["*"], paused=True, **common)
    kinds = ["order.dispatched", "tracking.updated", "pre_invoice.created"]
    for kind in kinds:
        screen.publisher.publish(
            order_event("SCR-STORY", kind, account_id="scr-story", payload={"carrier": "correios"})
        )
    screen.rows_eventually(4, order_id="SCR-STORY")  # one delivery and three held
    page.goto(f"{screen.api}/#/webhooks?tab=all&order=SCR-STORY")
    # Waits for the search's rows: the page's first list (other orders) is there before them.
    page.get_by_test_id("order-link").filter(has_text="SCR-STORY").first.click()
    expect(page).to_have_url(re.compile(r"#/orders/SCR-STORY$"))
    events = page.get_by_test_id("order-event")
    expect(events).to_have_count(3)
    first = events.nth(0)
    expect(first).to_have_attribute("data-event-type", "order.dispatched")
    fired = first.locator(f"[data-rule-id='{fires['id']}']")
    expect(fired).to_have_attribute("data-outcome", "dispatched")
    expect(fired.get_by_test_id("order-attempt")).to_have_attribute("data-status", "success")
    expect(fired.get_by_test_id("order-attempt")).to_contain_text("200")
    for n in range(3):
        picky_row = events.nth(n).locator(f"[data-rule-id='{picky['id']}']")
        expect(picky_row).to_have_attribute("data-outcome", "not_matched")
        expect(picky_row.get_by_test_id("order-why")).to_contain_text(
            'payload.carrier is "correios", rule wants ["acme"]'
        )
        held = events.nth(n).locator(f"[data-rule-id='{paused['id']}']")
        expect(held).to_have_attribute("data-outcome", "held")
    expect(events.nth(1).locator(f"[data-rule-id='{fires['id']}']")).to_have_attribute(
        "data-outcome", "not_matched"
    )
    expect(page.get_by_test_id("order-latest")).to_be_visible()  # an admin may resend
    page.screenshot(path=ARTIFACTS / "order-story.png", full_page=True)
    page.locator("#lang").select_option("pt-BR")
    expect(first.get_by_test_id("order-outcome").first).to_be_visible()
    expect(page.get_by_test_id("order-event").nth(0)).to_contain_text("disparado")
    expect(page.get_by_test_id("order-event").nth(0)).to_contain_text("não corresponde")
    page.screenshot(path=ARTIFACTS / "order-story-pt-BR.png", full_page=True)


def test_an_event_no_rule_matched_shows_every_rules_reason(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    picky = screen.active_rule(
        name="picky-none",
        event_types=["*"],
        filters={"payload.carrier": ["acme"]},
        url=f"{receiver.url}/ok",
        account_id="scr-none",
    )
    screen.publisher.publish(
        order_event(
            "SCR-NONE", "tracking.updated", account_id="scr-none", payload={"carrier": "jadlog"}
        )
    )
    eventually(
        lambda: screen.http.get(f"{screen.api}/api/v1/orders/SCR-NONE").status_code == 200,
        30,
        "the event in the events table",
    )
    page.goto(f"{screen.api}/#/orders/SCR-NONE")
    event = page.get_by_test_id("order-event")
    expect(event).to_have_count(1)
    rule_row = event.locator(f"[data-rule-id='{picky['id']}']")
    expect(rule_row).to_have_attribute("data-outcome", "not_matched")
    expect(rule_row).to_contain_text('payload.carrier is "jadlog", rule wants ["acme"]')
    expect(event.get_by_test_id("order-attempt")).to_have_count(0)


def test_the_search_box_finds_an_order_by_its_tracking_code_and_says_so(
    page: Page, screen: Stack, receiver: Receiver
) -> None:
    made = screen.http.post(
        f"{screen.api}/api/v1/accounts",
        json={"id": "scr-trk", "name": "Trk", "search_keys": ["payload.tracking_code"]},
    )
    assert made.status_code == 201, made.text
    rule = screen.active_rule(
        name="trk", event_types=["*"], url=f"{receiver.url}/ok", account_id="scr-trk"
    )
    screen.publisher.publish(
        order_event("SCR-TRK", account_id="scr-trk", payload={"tracking_code": "QB123BR"})
    )
    screen.rows_eventually(1, rule_id=rule["id"])
    page.get_by_test_id("tab-all").click()
    page.get_by_test_id("order-search").fill("QB123BR")
    page.get_by_test_id("order-search").press("Enter")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#rows tr").first).to_contain_text("SCR-TRK")
    expect(page.get_by_test_id("searched")).to_contain_text(
        "found order SCR-TRK (by payload.tracking_code)"
    )
    page.get_by_test_id("order-search").fill("SCR-2")
    page.get_by_test_id("order-search").press("Enter")
    expect(page.get_by_test_id("searched")).to_contain_text("no other order carries it")
    expect(page.locator("#rows tr").first).to_contain_text("SCR-2")

    # Once its personal data is erased, the order's attempts show "expunged" for bodies.
    erased = screen.http.post(f"{screen.api}/api/v1/orders/SCR-TRK/expunge")
    assert erased.json()["expunged_attempts"] == 1
    page.get_by_test_id("order-search").fill("SCR-TRK")
    page.get_by_test_id("order-search").press("Enter")
    expect(page.locator("#rows tr td:first-child")).to_have_text(["SCR-TRK"])
    page.locator("#rows tr td").nth(4).click()
    detail = page.get_by_test_id("detail")
    expect(detail.locator("pre")).to_contain_text(["expunged", "expunged"])
    page.goto(f"{screen.api}/#/orders/SCR-TRK")
    expect(page.get_by_test_id("order-expunged")).to_have_text(
        "Payload expunged (personal data erased on request)."
    )


class _Shipper:
    """A shipper's own site on another origin: a page that frames the link in `?src=`."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
                body = (
                    f'<h1>Shipper</h1><iframe id="portal" src="{html.escape(src)}" '
                    'width="1300" height="900"></iframe>'
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def frame(self, browser: Browser, link: str) -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(f"{self.origin}/?{urlencode({'src': link})}")
        return page

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shippers() -> Iterator[tuple[_Shipper, _Shipper]]:
    """Two sites on origins of their own: the account's, and a stranger's."""
    pair = (_Shipper(), _Shipper())
    yield pair
    for site in pair:
        site.close()


def test_a_portal_link_is_framed_by_its_accounts_origins_only_and_ends(
    browser: Browser, screen: Stack, receiver: Receiver, shippers: tuple[_Shipper, _Shipper]
) -> None:
    acct, api = "scr-portal", screen.api
    shipper, stranger = shippers
    made = screen.http.post(
        f"{api}/api/v1/accounts",
        json={"id": acct, "name": "Portal Co", "embed_origins": [shipper.origin]},
    )
    assert made.status_code == 201, made.text
    rule = screen.active_rule(
        name="portal", event_types=["*"], url=f"{receiver.url}/ok", account_id=acct
    )
    screen.publisher.publish(order_event("SCR-PORTAL", account_id=acct))
    screen.rows_eventually(1, rule_id=rule["id"])
    links = f"{api}/api/v1/accounts/{acct}/portal-links"
    viewer = screen.http.post(links, json={"role": "viewer", "ttl_s": 600}).json()
    assert viewer["url"].startswith(f"{api}/portal/key_")

    framed = shipper.frame(browser, viewer["url"])
    portal = framed.frame_locator("#portal")
    expect(portal.get_by_test_id("who")).to_contain_text("viewer")
    expect(portal.get_by_test_id("account-name")).to_have_text("Portal Co")
    portal.get_by_test_id("tab-all").click()
    expect(portal.locator("#rows tr").first).to_contain_text("SCR-PORTAL")
    expect(portal.locator("#rows tr")).to_have_count(1)  # the account's history only
    expect(portal.get_by_test_id("send-manually")).to_be_hidden()  # a viewer resends nothing
    framed.screenshot(path=ARTIFACTS / "portal.png")

    # Another origin's page cannot frame it: the browser refuses the frame's page.
    other = stranger.frame(browser, viewer["url"])
    eventually(
        lambda: any(f.url.startswith("chrome-error://") for f in other.frames),
        15,
        "the frame refused",
    )
    assert other.frame_locator("#portal").get_by_test_id("who").count() == 0
    other.context.close()

    # An operator link may resend; once it expires, the frame shows the sign-in and why.
    operator = screen.http.post(links, json={"role": "operator", "ttl_s": 5}).json()
    ending = shipper.frame(browser, operator["url"])
    frame = ending.frame_locator("#portal")
    expect(frame.get_by_test_id("send-manually")).to_be_visible()
    ends = datetime.fromisoformat(operator["expires_at"]).timestamp()
    time.sleep(max(0.0, ends - time.time()) + 0.5)  # past its end, whatever the rounding
    ending.reload()
    expect(frame.locator("input[name=api_key]")).to_be_visible()
    expect(frame.locator("#signin-error")).to_contain_text("this portal link expired")
    ending.context.close()

    # A revoked link: the same, saying so.
    revoked = screen.http.delete(f"{links}/{viewer['id']}")
    assert revoked.json()["state"] == "revoked"
    framed.reload()
    expect(portal.locator("#signin-error")).to_contain_text("this portal link was revoked")
    framed.context.close()


def test_the_regressions_tab_counts_late_scans_by_carrier_and_edits_the_lifecycle(
    browser: Browser, screen: Stack, receiver: Receiver
) -> None:
    lifecycle = {"statuses": ["dispatched", "in_transit", "delivered"], "allowed_back": []}
    made = screen.http.post(
        f"{screen.api}/api/v1/accounts",
        json={"id": "scr-guard", "name": "Guard", "lifecycle": lifecycle},
    )
    assert made.status_code == 201, made.text
    rule = screen.active_rule(
        name="guarded", event_types=["*"], url=f"{receiver.url}/ok", account_id="scr-guard",
        status_guard="forward_only",
    )  # fmt: skip
    for status, carrier in (("delivered", "acme"), ("in_transit", "late-co")):
        screen.publisher.publish(
            order_event("SCR-G1", "tracking.updated", account_id="scr-guard",
                        order_status=status, payload={"carrier": carrier})
        )  # fmt: skip
        screen.rows_eventually(1, rule_id=rule["id"], order_id="SCR-G1", status=(
            "success" if status == "delivered" else "regressed"
        ))  # fmt: skip
    key = add_key(screen.settings, "scr-guard-admin", "admin", "scr-guard")
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(f"{screen.api}/")
        sign_in(page, key)
        page.get_by_test_id("tab-regressed").click()
        expect(page.get_by_test_id("regressed-count")).to_have_text("1")
        expect(page.locator("#rows tr")).to_have_count(1)
        assert rows(page)[0]["status"] == "regressed"
        expect(page.get_by_test_id("by-value")).to_have_text("late-co1")
        expect(page.get_by_test_id("by-after")).to_have_text("delivered1")
        expect(page.get_by_test_id("lifecycle-shown")).to_have_text(
            "dispatched → in_transit → delivered"
        )
        page.locator("#rows tr td").nth(4).click()
        expect(page.get_by_test_id("detail")).to_contain_text("After delivered")
        page.locator("[data-close=detail]").click()

        page.get_by_test_id("lifecycle-edit").click()
        page.get_by_test_id("lifecycle-back").fill("delivered - in_transit")
        page.get_by_test_id("lifecycle-save").click()
        expect(page.get_by_test_id("lifecycle-error")).to_contain_text("write it as from > to")
        page.get_by_test_id("lifecycle-statuses").fill("created\ndispatched\nin_transit\ndelivered")
        page.get_by_test_id("lifecycle-back").fill("in_transit > delivered")
        page.get_by_test_id("lifecycle-save").click()
        expect(page.get_by_test_id("lifecycle-error")).to_contain_text("is not a step back")
        page.get_by_test_id("lifecycle-back").fill("delivered > in_transit")
        page.get_by_test_id("lifecycle-save").click()
        expect(page.get_by_test_id("toast")).to_have_text("Lifecycle saved.")
        expect(page.get_by_test_id("lifecycle-shown")).to_have_text(
            "created → dispatched → in_transit → delivered"
            " · allowed steps back: delivered → in_transit"
        )
        saved = screen.http.get(f"{screen.api}/api/v1/accounts/scr-guard").json()["lifecycle"]
        assert saved == {
            "statuses": ["created", "dispatched", "in_transit", "delivered"],
            "allowed_back": [["delivered", "in_transit"]],
        }
        page.screenshot(path=ARTIFACTS / "regressions.png", full_page=True)

        page.get_by_test_id("lang").select_option("pt-BR")
        expect(page.get_by_test_id("tab-regressed")).to_contain_text("Regressões")
        expect(page.get_by_test_id("regressions")).to_contain_text("O cliente já tinha")
        page.get_by_test_id("nav-rules").click()
        page.locator(f"#rule-rows tr[data-rule-id='{rule['id']}']").get_by_test_id(
            "rule-edit"
        ).click()
        guard = page.get_by_test_id("rule-modal").get_by_test_id("rule-status-guard")
        expect(guard).to_have_value("forward_only")
        expect(guard.locator("option:checked")).to_have_text(
            "Nunca enviar um status mais antigo que um já entregue"
        )
    finally:
        context.close()


def test_the_live_history_reconnects_after_an_api_restart_without_repeating_rows(
    page: Page, screen: Stack
) -> None:
    """Runs last: it restarts the API the module shares."""
    page.get_by_test_id("tab-all").click()
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
    screen.publisher.publish(order_event("SCR-RE-1", "order.dispatched"))
    expect(page.locator("#rows tr").first).to_contain_text("SCR-RE-1", timeout=5000)
    screen.restart("analytics")
    # The stream of before is gone (the page says so), then a new one is open.
    expect(page.get_by_test_id("live-state")).not_to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live", timeout=60000)
    screen.publisher.publish(order_event("SCR-RE-2", "order.dispatched"))
    expect(page.locator("#rows tr").first).to_contain_text("SCR-RE-2", timeout=10000)
    assert len(page.locator("#rows tr", has_text="SCR-RE-1").all()) == 1
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
