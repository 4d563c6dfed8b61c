"""Checkouts that do not end in a confirmed order: a declined card, a sold-out
product, an order for more than the stock."""

from __future__ import annotations

from playwright.sync_api import Page, expect

import storefront as shop


def test_declined_card_rejects_the_order(page: Page) -> None:
    shop.sign_up(page)
    product = shop.in_stock(page)[0]
    shop.add_to_cart(page, product)

    shop.place_order(page, shop.DECLINED)

    shop.expect_status(page, "rejected")
    expect(shop.order_status(page)).to_contain_text("declined")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)


def test_sold_out_product_has_no_add_button(page: Page) -> None:
    sold_out = [p for p in shop.catalog(page) if p.stock == 0]
    assert sold_out, "the demo catalog has no sold-out product"
    product = sold_out[0]

    # On the list (found again on whichever page holds it).
    article = None
    page.goto("/")
    while article is None:
        candidates = page.locator("article.product").filter(
            has=page.get_by_role("link", name=product.name, exact=True)
        )
        if candidates.count() == 1:
            article = candidates
        else:
            next_page = page.get_by_role("link", name="Next page")
            assert next_page.count() > 0, f"{product.name} is on no list page"
            next_page.click()
            expect(page.get_by_role("link", name="First page")).to_be_visible()
    expect(article).to_contain_text("Out of stock")
    expect(article.get_by_role("button")).to_have_count(0)

    # On its own page.
    shop.open_product(page, product)
    expect(shop.main(page)).to_contain_text("Out of stock")
    expect(page.get_by_role("button", name="Add to cart")).to_have_count(0)


def test_order_for_more_than_the_stock_is_rejected(page: Page) -> None:
    shop.sign_up(page)
    # The scarcest product the cart can hold more of than there is.
    product = min((p for p in shop.in_stock(page) if p.stock < 99), key=lambda p: p.stock)
    shop.add_to_cart(page, product)
    shop.set_quantity(page, product.name, product.stock + 1)
    expect(page.get_by_label(f"Quantity of {product.name}", exact=True)).to_have_value(
        str(product.stock + 1)
    )

    shop.place_order(page)

    shop.expect_status(page, "rejected")
    status = shop.order_status(page)
    expect(status).to_contain_text("out of stock", ignore_case=True)
    expect(status).to_contain_text(product.name)
