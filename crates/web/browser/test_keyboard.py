"""A checkout with the keyboard alone, and a focus ring a person can see."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

import storefront as shop

# More Tab presses than any page of the shop needs to reach a control: a
# control further away than this is not usable by keyboard.
MAX_TABS = 80

FOCUS_RING = """el => {
    const style = getComputedStyle(el);
    return {
        focusVisible: el.matches(':focus-visible'),
        outlineStyle: style.outlineStyle,
        outlineWidth: style.outlineWidth,
    };
}"""


def tab_to(page: Page, target: Locator) -> None:
    """Presses Tab until `target` has the focus, and checks that the focus
    shows."""
    expect(target).to_have_count(1)
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            ring = target.evaluate(FOCUS_RING)
            assert ring["focusVisible"], "the keyboard focus does not match :focus-visible"
            assert ring["outlineStyle"] != "none", f"no visible focus outline: {ring}"
            assert ring["outlineWidth"] not in ("0px", ""), f"no visible focus outline: {ring}"
            return
    raise AssertionError(f"{MAX_TABS} Tab presses never reached {target}")


def test_keyboard_only_from_the_list_to_a_placed_order(page: Page) -> None:
    shop.sign_up(page)
    page.goto("/")
    product = next(p for p in shop.products_on_page(page) if p.stock > 0)

    # The skip link comes first.
    tab_to(page, page.get_by_role("link", name="Skip to content"))

    tab_to(page, page.get_by_role("button", name=f"Add {product.name} to cart", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()
    expect(shop.cart_row(page, product.name)).to_be_visible()

    # Two of them, typed into the line's quantity field.
    quantity = page.get_by_label(f"Quantity of {product.name}", exact=True)
    tab_to(page, quantity)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("2")
    tab_to(page, page.get_by_role("button", name=f"Update {product.name}", exact=True))
    page.keyboard.press("Space")
    expect(page.get_by_label(f"Quantity of {product.name}", exact=True)).to_have_value("2")

    tab_to(page, page.get_by_role("link", name="Checkout", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Checkout")).to_be_visible()

    # The card that pays is chosen already; arrow keys move between cards.
    tab_to(page, page.get_by_label(shop.VISA, exact=True))
    expect(page.get_by_label(shop.VISA, exact=True)).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Place order"))
    page.keyboard.press("Enter")

    shop.wait_for_order_page(page)
    shop.expect_status(page, "confirmed")
