"""How a person moves through the storefront, for the tests to share.

Everything here finds elements by their role and accessible name or by
their label (the markup contract of issue #21), the way assistive
technology would, and waits with Playwright's auto-waiting `expect`, never
with sleeps.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

# An order's final state may need the saga to finish behind a page that
# refreshes itself while the order is pending.
ORDER_TIMEOUT_MS = 45_000

ORDER_PATH = re.compile(r"^/orders/([0-9a-fA-F-]{36})$")
ORDER_URL = re.compile(r"/orders/([0-9a-fA-F-]{36})$")
IN_STOCK = re.compile(r"In stock:\s*(\d+)")
# An amount as the pages print it: digits with two decimals, whichever
# separators the locale uses ("€12.50", "1,234.50 €", "EUR 12,50").
AMOUNT = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f]?\d{3})*[.,]\d{2}(?!\d)")

# The viewports the pages are checked (and photographed) at.
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

VISA = "Card that pays (tok_visa)"
DECLINED = "Card that is declined (tok_declined)"


@dataclass(frozen=True)
class User:
    """A shopper's credentials."""

    username: str
    email: str
    password: str


@dataclass(frozen=True)
class Product:
    """A product as the list shows it."""

    name: str
    path: str
    stock: int


def fresh_user() -> User:
    """Credentials nobody has used yet (each test makes its own user)."""
    tag = uuid.uuid4().hex[:12]
    return User(f"shopper{tag}", f"shopper{tag}@example.com", f"pw-{uuid.uuid4().hex}")


def cents(text: str) -> int:
    """The last amount in `text`, in minor units (an assertion error when
    there is none)."""
    amounts = AMOUNT.findall(text)
    assert amounts, f"no amount in {text!r}"
    return int(re.sub(r"\D", "", amounts[-1]))


def main(page: Page) -> Locator:
    """The page's main region."""
    return page.locator("main#main")


def sign_up(page: Page, user: User | None = None) -> User:
    """Creates an account through the sign-up form; the page ends logged in."""
    user = user or fresh_user()
    page.goto("/signup")
    page.get_by_label("Username", exact=True).fill(user.username)
    page.get_by_label("Email", exact=True).fill(user.email)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return user


def products_on_page(page: Page) -> list[Product]:
    """The products of the list page the browser shows."""
    found = []
    for article in page.locator("article.product").all():
        link = article.get_by_role("heading", level=2).get_by_role("link")
        text = article.inner_text()
        match = IN_STOCK.search(text)
        if match:
            stock = int(match.group(1))
        else:
            assert "Out of stock" in text, f"no stock text in {text!r}"
            stock = 0
        found.append(Product(link.inner_text().strip(), link.get_attribute("href") or "", stock))
    return found


def catalog(page: Page) -> list[Product]:
    """Every product, walking the list's "Next page" links from the first
    page."""
    page.goto("/")
    expect(page.get_by_role("heading", level=1, name="Products")).to_be_visible()
    products = products_on_page(page)
    next_page = page.get_by_role("link", name="Next page")
    while next_page.count() > 0:
        page.goto(next_page.get_attribute("href") or "")
        expect(page.get_by_role("link", name="First page")).to_be_visible()
        products.extend(products_on_page(page))
    return products


def in_stock(page: Page) -> list[Product]:
    """The products that can be ordered, most stock first."""
    return sorted((p for p in catalog(page) if p.stock > 0), key=lambda p: -p.stock)


def open_product(page: Page, product: Product) -> None:
    page.goto(product.path)
    expect(page.get_by_role("heading", level=1, name=product.name)).to_be_visible()


def add_to_cart(page: Page, product: Product, quantity: int = 1) -> None:
    """Adds `quantity` of `product` from its product page; the page ends on
    the cart."""
    open_product(page, product)
    page.get_by_label("Quantity", exact=True).fill(str(quantity))
    page.get_by_role("button", name="Add to cart", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()


def cart_row(page: Page, name: str) -> Locator:
    """The cart table's row of one product."""
    return page.get_by_role("row").filter(has=page.get_by_label(f"Quantity of {name}", exact=True))


def line_total(page: Page, name: str) -> int:
    """A cart line's total (the row's last amount), in minor units."""
    return cents(cart_row(page, name).inner_text())


def cart_total(page: Page) -> int:
    """The cart's (or checkout's) total: the amount next to "Total", in
    minor units."""
    label = main(page).get_by_text("Total", exact=True)
    expect(label).to_have_count(1)
    # The amount sits in the same row (a table) or element as the label.
    holder = label.locator("xpath=ancestor-or-self::*[self::tr or self::dl or self::p or self::div][1]")
    return cents(holder.inner_text())


def set_quantity(page: Page, name: str, quantity: int) -> None:
    """Changes a cart line's quantity with its own form; the page ends on
    the cart."""
    page.get_by_label(f"Quantity of {name}", exact=True).fill(str(quantity))
    page.get_by_role("button", name=f"Update {name}", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Your cart")).to_be_visible()


def open_checkout(page: Page) -> None:
    page.goto("/checkout")
    expect(page.get_by_role("heading", level=1, name="Checkout")).to_be_visible()


def choose_payment(page: Page, label: str) -> None:
    payment = page.get_by_role("group", name="Payment")
    payment.get_by_label(label, exact=True).check()


def wait_for_order_page(page: Page) -> str:
    """Waits until the browser shows an order page; its order id."""
    expect(page).to_have_url(ORDER_URL)
    match = ORDER_URL.search(page.url)
    assert match, page.url
    order_id = match.group(1)
    expect(page.get_by_role("heading", level=1, name=f"Order {order_id[:8]}")).to_be_visible()
    return order_id


def place_order(page: Page, payment: str = VISA) -> str:
    """Checks the cart out with the chosen card; the id of the order."""
    open_checkout(page)
    choose_payment(page, payment)
    page.get_by_role("button", name="Place order").click()
    return wait_for_order_page(page)


def order_status(page: Page) -> Locator:
    return page.locator("#order-status")


def expect_status(page: Page, status: str | re.Pattern[str]) -> None:
    """Waits (across the page's own refreshes while the order is pending)
    until the order shows `status`."""
    expect(order_status(page)).to_have_attribute("data-status", status, timeout=ORDER_TIMEOUT_MS)


def order_ids(page: Page) -> list[str]:
    """The ids of the orders "Your orders" lists, across its pages, in the
    order shown."""
    page.goto("/orders")
    expect(page.get_by_role("heading", level=1, name="Your orders")).to_be_visible()
    ids: list[str] = []
    while True:
        for link in main(page).locator("a[href^='/orders/']").all():
            match = ORDER_PATH.match(link.get_attribute("href") or "")
            if match and match.group(1) not in ids:
                ids.append(match.group(1))
        next_page = page.get_by_role("link", name="Next page")
        if next_page.count() == 0:
            return ids
        page.goto(next_page.get_attribute("href") or "")
        expect(page.get_by_role("heading", level=1, name="Your orders")).to_be_visible()
