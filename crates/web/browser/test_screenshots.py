"""Screenshots of the main pages at a desktop and a phone viewport, for the
README and docs/screenshots/ (scripts/browser.sh writes them there).

Each is a full-page PNG named `<page>-<desktop|phone>.png`. Taking them is a
test too: every page renders at both sizes, without sideways scrolling on
the phone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

import storefront as shop

if TYPE_CHECKING:
    from conftest import Contexts

# Big enough for a long page at full width, small enough for a repository.
MAX_BYTES = 300 * 1024


def shoot(page: Page, directory: Path, name: str, viewport: str) -> None:
    # Nothing hovered or focused: the picture shows the page at rest.
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name} scrolls sideways at {viewport}: {width}px"
    path = directory / f"{name}-{viewport}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path.name} is {size} bytes"


VIEWPORTS = {"desktop": shop.DESKTOP, "phone": shop.PHONE}


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_screenshots_of_the_main_pages(contexts: Contexts, screenshots_dir: Path, viewport: str) -> None:
    page = contexts.new(viewport=VIEWPORTS[viewport]).new_page()

    page.goto("/login")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    shoot(page, screenshots_dir, "login", viewport)

    shop.sign_up(page)
    page.goto("/")
    expect(page.locator("article.product").first).to_be_visible()
    stocked = [p for p in shop.products_on_page(page) if p.stock > 0]
    shoot(page, screenshots_dir, "products", viewport)

    shop.open_product(page, stocked[0])
    shoot(page, screenshots_dir, "product", viewport)

    shop.add_to_cart(page, stocked[0])
    shop.add_to_cart(page, stocked[1], quantity=2)
    shoot(page, screenshots_dir, "cart", viewport)

    shop.open_checkout(page)
    shoot(page, screenshots_dir, "checkout", viewport)

    page.get_by_role("button", name="Place order").click()
    shop.wait_for_order_page(page)
    shop.expect_status(page, "confirmed")
    shoot(page, screenshots_dir, "order", viewport)
