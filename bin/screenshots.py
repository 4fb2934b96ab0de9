"""README screenshots of the main pages, taken with Debian's Chromium from a running demo portal.

make demo            # in one terminal (demo data, portal on :8000)
make screenshots     # in another: writes docs/screenshots/*.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = os.environ.get("METERLINE_URL", "http://127.0.0.1:8000")
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM = os.environ.get("METERLINE_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "meterline-demo"

SHOTS = [
    # (user, locale, path, file)
    ("acme-owner", "en-US", "/t/acme/", "dashboard.png"),
    ("acme-owner", "zh-CN", "/t/acme/", "dashboard-zh.png"),
    ("acme-owner", "en-US", "/t/acme/usage/?preset=30d&group_by=model", "usage-explorer.png"),
    ("acme-owner", "en-US", "/t/acme/bills/", "bills.png"),
    ("acme-owner", "en-US", "/t/acme/budgets/", "budgets.png"),
    ("finance", "en-US", "/staff/invoices/", "finance-invoices.png"),
    ("finance", "en-US", "/staff/bills/", "finance-bills.png"),
    ("am", "en-US", "/t/acme/contracts/", "contracts.png"),
    ("am", "en-US", "/staff/tenants/", "account-manager.png"),
    ("acme-owner", "en-US", "/t/acme/insights/", "insights.png"),
    (
        "acme-owner",
        "en-US",
        "/t/acme/estimate/?requests=20000&unit=day&days=30&input_tokens=1500&cached_input_tokens=500"
        "&output_tokens=400&reasoning_tokens=0&model_0=gpt-4o-mini&share_0=70&model_1=claude-sonnet-4&share_1=30",
        "estimator.png",
    ),
    ("finance", "en-US", "/staff/reconciliation/", "reconciliation.png"),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for user, locale, path, name in SHOTS:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
            page = context.new_page()
            page.goto(f"{BASE}/accounts/login/")
            page.fill("#id_username", user)
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit].primary")
            page.wait_for_load_state()
            response = page.goto(BASE + path)
            if response is None or response.status != 200:
                print(f"{path}: HTTP {response.status if response else '?'}", file=sys.stderr)
                return 1
            page.screenshot(path=str(OUT / name), full_page=False)
            print(f"docs/screenshots/{name}")
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
