"""A checkout form sent twice places one order: with JavaScript (app.js may
disable the button) and without it (the browser sends the form again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect

import storefront as shop

if TYPE_CHECKING:
    from conftest import Contexts


def fill_cart(page: Page) -> None:
    shop.sign_up(page)
    shop.add_to_cart(page, shop.in_stock(page)[0])
    shop.open_checkout(page)


def test_double_click_on_place_order_places_one_order(page: Page) -> None:
    fill_cart(page)

    page.get_by_role("button", name="Place order").dblclick()

    order_id = shop.wait_for_order_page(page)
    shop.expect_status(page, "confirmed")
    assert shop.order_ids(page) == [order_id]


def test_checkout_form_sent_twice_without_javascript_places_one_order(
    contexts: Contexts, base_url: str
) -> None:
    context = contexts.new(javascript=False)
    page = context.new_page()
    fill_cart(page)
    button = page.get_by_role("button", name="Place order")
    form = page.locator("form").filter(has=button)
    expect(form).to_have_count(1)
    fields = {
        field.get_attribute("name") or "": field.input_value()
        for field in form.locator("input[type=hidden]").all()
    }
    assert fields.get("idempotency_key"), f"no idempotency key in the checkout form: {fields}"
    fields["payment_token"] = "tok_visa"

    # Two quick clicks with no script to stop the second (Chromium itself
    # may send the form once or twice)...
    button.dblclick()
    order_id = shop.wait_for_order_page(page)

    # ...and, for certain, the same form once more, as sending it again from
    # the history does: the same idempotency key, so the same order.
    again = context.request.post("/checkout", form=fields, headers={"Origin": base_url})
    assert again.ok, f"resubmitting the checkout form answered {again.status}"
    assert again.url.endswith(f"/orders/{order_id}"), f"the resubmission led to {again.url}"

    shop.expect_status(page, "confirmed")
    assert shop.order_ids(page) == [order_id]
