"""What the browser is told to protect the shopper: security headers, the
cookies' flags, forms that refuse to be forged, pages the CSP leaves
whole."""

from __future__ import annotations

import re
import time

from playwright.sync_api import BrowserContext, Page, expect

import storefront as shop

CSP = {
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
}


def directives(policy: str) -> set[str]:
    return {" ".join(part.split()) for part in policy.split(";") if part.strip()}


def test_pages_and_assets_carry_the_security_headers(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.ok
    headers = response.headers
    assert "content-security-policy" in headers, f"no CSP: {headers}"
    assert directives(headers["content-security-policy"]) == CSP
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "same-origin"
    assert headers.get("x-frame-options", "").upper() == "DENY"
    assert "no-store" in headers.get("cache-control", "")
    assert headers.get("content-type", "").startswith("text/html")

    # The stylesheet the page links to comes from the shop itself.
    stylesheet = page.locator("link[rel=stylesheet]").first.get_attribute("href") or ""
    assert stylesheet.startswith("/assets/"), stylesheet
    asset = page.request.get(stylesheet)
    assert asset.ok
    assert asset.headers.get("content-type", "").startswith("text/css")
    assert directives(asset.headers.get("content-security-policy", "")) == CSP
    assert "max-age" in asset.headers.get("cache-control", "")


def test_session_and_csrf_cookies_are_httponly_and_same_site_lax(
    page: Page, context: BrowserContext
) -> None:
    shop.sign_up(page)
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert "shop_session" in cookies, f"no session cookie: {sorted(cookies)}"
    assert "shop_csrf" in cookies, f"no CSRF cookie: {sorted(cookies)}"
    for name in ("shop_session", "shop_csrf"):
        cookie = cookies[name]
        assert cookie["httpOnly"], f"{name} is readable by scripts"
        assert cookie["sameSite"] == "Lax", f"{name}: SameSite={cookie['sameSite']}"
        assert cookie["path"] == "/", f"{name}: Path={cookie['path']}"
        # Plain HTTP on loopback: `Secure` would keep the browser from
        # sending it back (cookies.secure = "auto").
        assert not cookie["secure"], f"{name} is Secure over plain HTTP"
    # The session lasts as long as the token (Max-Age), not "until the
    # browser closes" and not forever.
    assert cookies["shop_session"]["expires"] > time.time()


def test_forms_without_the_csrf_token_or_from_another_origin_are_refused(
    page: Page, context: BrowserContext, base_url: str
) -> None:
    shop.sign_up(page)
    product = shop.in_stock(page)[0]
    product_id = product.path.rsplit("/", 1)[-1]

    forged = context.request.post("/cart/items", form={"product_id": product_id, "quantity": "1"})
    assert forged.status == 403, f"a form without its CSRF token answered {forged.status}"
    assert "expired" in forged.text()

    token = next(c["value"] for c in context.cookies() if c["name"] == "shop_csrf")
    foreign = context.request.post(
        "/cart/items",
        form={"product_id": product_id, "quantity": "1", "csrf_token": token},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403, f"a form from another origin answered {foreign.status}"

    page.goto("/cart")
    expect(shop.main(page)).to_contain_text("Your cart is empty.")


def test_unknown_page_is_an_html_404(page: Page) -> None:
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    assert response.headers.get("content-type", "").startswith("text/html")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Page not found"))


def test_pages_log_no_console_error_or_csp_violation(page: Page) -> None:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(str(err)))

    page.goto("/login")
    shop.sign_up(page)
    product = shop.in_stock(page)[0]
    shop.add_to_cart(page, product)
    shop.open_checkout(page)
    page.get_by_role("button", name="Place order").click()
    shop.wait_for_order_page(page)
    shop.expect_status(page, "confirmed")
    page.goto("/orders")
    expect(page.get_by_role("heading", level=1, name="Your orders")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    # CSP violations and failed loads (a missing icon) are console errors.
    assert not problems, f"console errors: {problems}"
