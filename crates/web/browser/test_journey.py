"""The whole journey a shopper takes: sign up, browse, fill the cart, check
out, find the order, cancel it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

import storefront as shop


def test_sign_up_browse_buy_and_cancel(page: Page) -> None:
    shop.sign_up(page)

    # Browse: the list, and its next page when the catalog has one.
    page.get_by_role("link", name="ferroshop").click()
    expect(page.get_by_role("heading", level=1, name="Products")).to_be_visible()
    expect(page.locator("article.product").first).to_be_visible()
    first_page = shop.products_on_page(page)
    next_page = page.get_by_role("link", name="Next page")
    if next_page.count() > 0:
        expect(next_page).to_have_attribute("rel", re.compile(r"\bnext\b"))
        next_page.click()
        expect(page).to_have_url(re.compile(r"[?&]cursor="))
        later = shop.products_on_page(page)
        assert later, "the next page lists no product"
        assert not {p.path for p in later} & {p.path for p in first_page}, "a product on two pages"
        page.get_by_role("link", name="First page").click()
        expect(page.get_by_role("heading", level=1, name="Products")).to_be_visible()

    stocked = [p for p in first_page if p.stock > 0]
    assert len(stocked) >= 2, f"fewer than two products in stock on the first page: {first_page}"
    first, second = stocked[0], stocked[1]

    # Open a product from the list and add it from its page.
    page.get_by_role("link", name=first.name, exact=True).click()
    expect(page.get_by_role("heading", level=1, name=first.name)).to_be_visible()
    expect(page.get_by_label("Quantity", exact=True)).to_have_value("1")
    page.get_by_role("button", name="Add to cart", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()
    expect(shop.cart_row(page, first.name)).to_be_visible()

    # Add a second, different product from the list's own button.
    page.get_by_role("link", name="ferroshop").click()
    page.get_by_role("button", name=f"Add {second.name} to cart", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()
    expect(shop.cart_row(page, first.name)).to_be_visible()
    expect(shop.cart_row(page, second.name)).to_be_visible()

    # Change one quantity: the line and the total follow the catalog's price.
    unit = shop.line_total(page, second.name)
    shop.set_quantity(page, second.name, 3)
    expect(page.get_by_label(f"Quantity of {second.name}", exact=True)).to_have_value("3")
    assert shop.line_total(page, second.name) == 3 * unit
    lines = [shop.line_total(page, first.name), shop.line_total(page, second.name)]
    assert shop.cart_total(page) == sum(lines)

    # Check out with the card that pays.
    page.get_by_role("link", name="Checkout").click()
    expect(page.get_by_role("heading", level=1, name="Checkout")).to_be_visible()
    expect(page.get_by_label(shop.VISA, exact=True)).to_be_checked()
    assert shop.cart_total(page) == sum(lines)
    page.get_by_role("button", name="Place order").click()
    order_id = shop.wait_for_order_page(page)
    shop.expect_status(page, "confirmed")
    expect(shop.order_status(page)).to_contain_text("Confirmed")
    assert shop.cart_total(page) == sum(lines)

    # The cart is empty once the order is placed.
    page.get_by_role("link", name="Cart", exact=True).click()
    expect(shop.main(page)).to_contain_text("Your cart is empty.")

    # "Orders" lists it; its link leads back to it.
    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Your orders")).to_be_visible()
    link = shop.main(page).locator(f"a[href='/orders/{order_id}']")
    expect(link).to_have_count(1)
    # With its status word beside it.
    expect(link.locator("xpath=..")).to_contain_text("confirmed", ignore_case=True)
    link.click()
    shop.wait_for_order_page(page)

    # Cancel it (app.js may ask to confirm first).
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel order").click()
    expect(shop.order_status(page)).to_have_attribute(
        "data-status", re.compile(r"^(cancelling|cancelled)$"), timeout=shop.ORDER_TIMEOUT_MS
    )
    shop.expect_status(page, "cancelled")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
