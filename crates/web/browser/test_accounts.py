"""Logging in and signing up: readable errors where they belong, never the
API's JSON."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

import storefront as shop

# What an API error would look like if it leaked into a page.
RAW_API_ERROR = re.compile(r'[{}]|"(type|title|status|detail|errors)"\s*:|problem\+json')


def expect_no_json(page: Page) -> None:
    text = page.locator("body").inner_text()
    assert not RAW_API_ERROR.search(text), f"the page shows raw API output: {text!r}"
    assert "problem+json" not in page.content()


def test_wrong_password_shows_a_readable_error(page: Page) -> None:
    user = shop.sign_up(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    page.get_by_role("link", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.get_by_label("Username or email", exact=True).fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password + "-wrong")
    page.get_by_role("button", name="Log in").click()

    alert = shop.main(page).get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_text(re.compile(r"[A-Za-z]{3,}.*[A-Za-z]{3,}"))
    expect_no_json(page)
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)

    # The right password still works (one failure does not lock the account).
    page.get_by_label("Username or email", exact=True).fill(user.email)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_visitor_is_sent_to_log_in_and_back(page: Page) -> None:
    user = shop.sign_up(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    page.goto("/cart")
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)cart$"))
    page.get_by_label("Username or email", exact=True).fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()


def test_sign_up_with_a_bad_email_shows_the_error_next_to_it(page: Page) -> None:
    user = shop.fresh_user()
    page.goto("/signup")
    page.get_by_label("Username", exact=True).fill(user.username)
    # Valid to the browser's own check of an email field, not to the shop.
    page.get_by_label("Email", exact=True).fill(f"{user.username}..x@example.com")
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign up").click()

    email = page.get_by_label("Email", exact=True)
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_attribute("aria-describedby", re.compile(r"\bemail-error\b"))
    error = page.locator("p.field-error#email-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(re.compile(r"[A-Za-z]{3,}.*[A-Za-z]{3,}"))
    expect(email).to_have_accessible_description(re.compile(r"\S"))
    expect(shop.main(page).get_by_role("alert")).to_be_visible()
    expect_no_json(page)
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
