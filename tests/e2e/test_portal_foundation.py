"""Browser journey: log in, create an API key, see its secret once, reload — gone; switch to 简体中文."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_a_key_sees_the_secret_once_and_switches_to_chinese(world, live_server, browser_page) -> None:
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alpha-admin")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/t/alpha/")
    assert page.locator("h1").inner_text() == "Alpha Secret Co"

    page.click("text=Projects & keys")
    page.click("text=Alpha Chatbot")
    page.fill("#id_name", "browser key")
    page.click("text=Create key")

    secret = page.locator("#new-key-value").inner_text()
    assert secret.startswith("mlk_") and len(secret) == 57
    page.screenshot(path=str(ARTIFACTS / "foundation-new-api-key.png"), full_page=True)

    page.reload()
    assert page.locator("#new-key-value").count() == 0
    assert secret not in page.content()
    assert secret.rsplit("_", 1)[0] in page.content()  # the prefix stays visible

    page.click("button[lang=zh-hans]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    nav = page.locator("nav.mainnav").inner_text()
    assert "项目与密钥" in nav and "成员" in nav
    assert page.locator("text=API 密钥").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "foundation-zh-hans.png"), full_page=True)
