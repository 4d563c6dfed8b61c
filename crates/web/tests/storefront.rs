//! The storefront over real HTTP on loopback, in front of the real stack:
//! a whole purchase through the gateway, and what protects and explains
//! it (CSRF and origin checks, cookie attributes, idempotent checkout,
//! rejected orders, security headers, error pages, a part of the API down).

#![allow(clippy::expect_used, clippy::panic)] // tests: a failed step should fail loudly

mod common;

use common::{Browser, api_json, product_links, stack};
use serde_json::Value;
use shop::testing::wait_until;

/// The products of the demo catalog: (id, name, stock).
async fn catalog(stack: &common::TestStack) -> Vec<(String, String, i64)> {
    stack
        .products()
        .await
        .iter()
        .map(|product| {
            (
                product["id"].as_str().expect("id").to_owned(),
                product["name"].as_str().expect("name").to_owned(),
                product["stock"].as_i64().expect("stock"),
            )
        })
        .collect()
}

/// The quantity of each line of the cart `token` has, by product id.
async fn cart_lines(base: &str, token: &str) -> Vec<(String, i64)> {
    let cart = api_json(base, "/api/cart", token).await;
    shop::testing::lines(&cart)
}

/// Reads the order page until the order is settled; returns that page.
async fn settled_order(browser: &mut Browser, path: &str) -> common::Page {
    let browser = std::sync::Arc::new(tokio::sync::Mutex::new(browser));
    wait_until(
        "the order to settle",
        || {
            let browser = browser.clone();
            async move { browser.lock().await.get(path).await }
        },
        |page| {
            !page.body.contains("data-status=\"pending\"")
                && !page.body.contains("data-status=\"cancelling\"")
        },
    )
    .await
}

/// Checks the cart out from a fresh checkout page with `payment_token`;
/// returns the page of the order once it is settled.
async fn check_out(browser: &mut Browser, payment_token: &str) -> common::Page {
    let checkout = browser.get("/checkout").await;
    let key = checkout.field("idempotency_key");
    let placed = browser
        .post(
            "/checkout",
            &[("payment_token", payment_token), ("idempotency_key", &key)],
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.body);
    settled_order(browser, placed.location()).await
}

#[tokio::test]
async fn a_shopper_signs_up_buys_two_products_and_cancels_through_the_gateway() {
    let stack = stack().await;
    let gateway = stack.base("gateway");
    let mut browser = Browser::new(&gateway);

    let home = browser.sign_up("carol").await;
    assert_eq!(home.status, 200);
    home.assert_contains("<h1>Products</h1>");
    home.assert_contains("Log out");
    home.assert_contains("role=\"status\"");
    let ids = product_links(&home.body);
    assert_eq!(ids.len(), 12, "a page of 12 products");
    home.assert_contains("rel=\"next\"");
    let products = catalog(&stack).await;
    let name_of = |id: &str| {
        products
            .iter()
            .find(|(candidate, _, _)| candidate == id)
            .map(|(_, name, _)| name.clone())
            .expect("a catalog product")
    };
    let (first, second) = (&ids[0], &ids[1]);
    home.assert_contains(&format!(
        "Add <span class=\"visually-hidden\">{} </span>to cart",
        name_of(first)
    ));

    // Add two products (the first twice: quantities add up), then set one.
    for id in [first, second, first] {
        let added = browser
            .post("/cart/items", &[("product_id", id), ("quantity", "1")])
            .await;
        assert_eq!(added.status, 303, "{}", added.body);
        assert_eq!(added.location(), "/cart");
    }
    let token = browser.token();
    let mut lines = cart_lines(&gateway, &token).await;
    lines.sort();
    let mut expected = vec![(first.clone(), 2), (second.clone(), 1)];
    expected.sort();
    assert_eq!(lines, expected);
    let updated = browser
        .post(&format!("/cart/items/{second}"), &[("quantity", "3")])
        .await;
    let cart = browser.follow(&updated).await;
    assert_eq!(cart.status, 200);
    cart.assert_contains("<h1>Your cart</h1>");
    cart.assert_contains(&format!("Quantity of {}", name_of(second)));
    cart.assert_contains("Total");
    cart.assert_contains("href=\"/checkout\"");
    assert!(
        cart_lines(&gateway, &token)
            .await
            .contains(&(second.clone(), 3))
    );

    // Check out with the card that pays; the same key again is the same order.
    let checkout = browser.get("/checkout").await;
    assert_eq!(checkout.status, 200);
    checkout.assert_contains("<legend>Payment</legend>");
    checkout.assert_contains("Card that pays (tok_visa)");
    let key = checkout.field("idempotency_key");
    assert!(uuid::Uuid::parse_str(&key).is_ok(), "{key}");
    let fields = [
        ("payment_token", "tok_visa"),
        ("idempotency_key", key.as_str()),
    ];
    let placed = browser.post("/checkout", &fields).await;
    assert_eq!(placed.status, 303, "{}", placed.body);
    let order_path = placed.location().to_owned();
    assert!(order_path.starts_with("/orders/"), "{order_path}");
    let again = browser.post("/checkout", &fields).await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.location(), order_path, "the same key, the same order");
    let orders = api_json(&gateway, "/api/orders", &token).await;
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(1),
        "{orders}"
    );

    let order = settled_order(&mut browser, &order_path).await;
    assert_eq!(order.status, 200);
    order.assert_contains("data-status=\"confirmed\"");
    order.assert_contains(&format!("<h1>Order {}</h1>", &order_path[8..16]));
    order.assert_contains(&name_of(first));
    order.assert_contains("Cancel order");
    let history = browser.get("/orders").await;
    history.assert_contains("<h1>Your orders</h1>");
    history.assert_contains(&format!("href=\"{order_path}\""));
    history.assert_contains("Confirmed");

    let cancelled = browser.post(&format!("{order_path}/cancel"), &[]).await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    assert_eq!(cancelled.location(), order_path);
    let order = settled_order(&mut browser, &order_path).await;
    order.assert_contains("data-status=\"cancelled\"");
    assert!(!order.body.contains("Cancel order"));

    let out = browser.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    let cleared = out.set_cookie("shop_session").expect("the session cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let home = browser.follow(&out).await;
    home.assert_contains("Log in");
}

#[tokio::test]
async fn a_post_without_the_pages_token_or_from_another_origin_is_refused() {
    let stack = stack().await;
    let gateway = stack.base("gateway");
    let mut browser = Browser::new(&gateway);
    browser.sign_up("dave").await;
    let product = stack.product_ids().await.remove(0);
    let token = browser.token();

    let without = browser
        .post_raw(
            "/cart/items",
            &[("product_id", &product), ("quantity", "1")],
        )
        .await;
    assert_eq!(without.status, 403);
    without.assert_contains("This form has expired");
    assert!(without.header("content-type").starts_with("text/html"));
    let wrong = browser
        .post_raw(
            "/cart/items",
            &[
                ("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ("product_id", &product),
                ("quantity", "1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403);
    browser.extra = vec![("origin", "http://evil.example".to_owned())];
    let cross = browser
        .post(
            "/cart/items",
            &[("product_id", &product), ("quantity", "1")],
        )
        .await;
    assert_eq!(cross.status, 403, "another origin");
    assert!(
        cart_lines(&gateway, &token).await.is_empty(),
        "the cart unchanged"
    );

    // The page's own origin, with its token, goes through.
    browser.extra = vec![("origin", gateway.clone())];
    let same = browser
        .post(
            "/cart/items",
            &[("product_id", &product), ("quantity", "1")],
        )
        .await;
    assert_eq!(same.status, 303, "{}", same.body);
    assert_eq!(cart_lines(&gateway, &token).await, vec![(product, 1)]);
}

#[tokio::test]
async fn cookies_are_http_only_lax_and_secure_only_over_tls() {
    let stack = stack().await;
    let web = stack.base("web");

    let mut plain = Browser::new(&web);
    let form = plain.get("/login").await;
    let csrf = form.set_cookie("shop_csrf").expect("a CSRF cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(csrf.contains(attribute), "{csrf}");
    }
    assert!(!csrf.contains("Secure"), "plain HTTP: {csrf}");
    let created = plain.sign_up("erin").await;
    assert_eq!(created.status, 200);

    let mut tls = Browser::new(&web);
    tls.extra = vec![("x-forwarded-proto", "https".to_owned())];
    let form = tls.get("/login").await;
    let csrf = form.set_cookie("shop_csrf").expect("a CSRF cookie");
    assert!(csrf.contains("; Secure"), "{csrf}");
    let logged_in = tls
        .post(
            "/login",
            &[
                ("login", "erin"),
                ("password", common::PASSWORD),
                ("next", "/cart"),
            ],
        )
        .await;
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    assert_eq!(logged_in.location(), "/cart");
    let session = logged_in.set_cookie("shop_session").expect("a session");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=", "; Secure"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }

    // `next` is a local path or nothing.
    let mut away = Browser::new(&web);
    away.get("/login").await;
    let sent = away
        .post(
            "/login",
            &[
                ("login", "erin"),
                ("password", common::PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(sent.location(), "/");
    let wrong = away
        .post(
            "/login",
            &[("login", "erin"), ("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    wrong.assert_contains("Wrong username/email or password");
}

#[tokio::test]
async fn rejected_orders_say_why_and_sold_out_products_cannot_be_added() {
    let stack = stack().await;
    let gateway = stack.base("gateway");
    let mut browser = Browser::new(&gateway);
    browser.sign_up("frank").await;
    let token = browser.token();
    let products = catalog(&stack).await;
    let (sold_out, sold_out_name, _) = products
        .iter()
        .find(|(_, _, stock)| *stock == 0)
        .cloned()
        .expect("the demo catalog has a sold-out product");
    let (in_stock, _, _) = products
        .iter()
        .find(|(_, _, stock)| *stock > 0)
        .cloned()
        .expect("an in-stock product");

    let page = browser.get(&format!("/products/{sold_out}")).await;
    assert_eq!(page.status, 200);
    page.assert_contains(&format!("<h1>{sold_out_name}</h1>"));
    page.assert_contains("Out of stock");
    assert!(!page.body.contains(">Add to cart<"), "{}", page.body);
    let in_stock_page = browser.get(&format!("/products/{in_stock}")).await;
    in_stock_page.assert_contains(">Add to cart<");
    in_stock_page.assert_contains("<label for=\"quantity\">Quantity</label>");

    // Declined.
    browser
        .post(
            "/cart/items",
            &[("product_id", &in_stock), ("quantity", "1")],
        )
        .await;
    let order = check_out(&mut browser, "tok_declined").await;
    order.assert_contains("data-status=\"rejected\"");
    order.assert_contains("Your payment was declined (card_declined)");
    assert!(!order.body.contains("Cancel order"));

    // Out of stock: the API lets the product into the cart, checkout refuses it.
    stack
        .put_item(
            &gateway,
            &token,
            &sold_out,
            serde_json::json!({"quantity": 1}),
        )
        .await;
    let order = check_out(&mut browser, "tok_visa").await;
    order.assert_contains("data-status=\"rejected\"");
    order.assert_contains("out of stock");
    order.assert_contains(&sold_out_name);

    // A tampered key is refused before the API sees it.
    let tampered = browser
        .post(
            "/checkout",
            &[
                ("payment_token", "tok_visa"),
                ("idempotency_key", "not-a-uuid"),
            ],
        )
        .await;
    assert_eq!(tampered.location(), "/checkout");
    let orders: Value = api_json(&gateway, "/api/orders", &token).await;
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(2),
        "{orders}"
    );
}

#[tokio::test]
async fn failures_are_html_pages_and_a_part_down_fails_only_its_pages() {
    let mut stack = stack().await;
    let web = stack.base("web");
    let mut browser = Browser::new(&web);

    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    let policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let asset = browser.get("/assets/style.css").await;
    assert_eq!(asset.status, 200);
    assert!(asset.header("content-type").starts_with("text/css"));
    for answer in [&page, &asset] {
        assert_eq!(answer.header("content-security-policy"), policy);
        assert_eq!(answer.header("x-content-type-options"), "nosniff");
        assert_eq!(answer.header("referrer-policy"), "same-origin");
        assert_eq!(answer.header("x-frame-options"), "DENY");
        assert_eq!(
            answer.header("permissions-policy"),
            "camera=(), microphone=(), geolocation=()"
        );
    }
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(asset.header("cache-control"), "public, max-age=86400");
    assert!(!page.body.contains("style=\""), "no inline style");
    assert!(!page.body.contains("<script>"), "no inline script");
    // Products' pictures are drawn inline (decorative, hidden from
    // assistive technology), one colour per product; no image is fetched.
    page.assert_contains("<svg class=\"product-image\" viewBox=\"0 0 320 240\" width=\"320\" height=\"240\" aria-hidden=\"true\"");
    assert!(!page.body.contains("<img"), "no image to fetch");
    let colours: std::collections::BTreeSet<&str> = page
        .body
        .split("<rect width=\"320\" height=\"240\" fill=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(colours.len() >= 3, "products differ: {colours:?}");

    let missing = browser.get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").starts_with("text/html"));
    missing.assert_contains("Page not found");
    assert_eq!(browser.get("/products/not-an-id").await.status, 404);
    assert_eq!(browser.get("/assets/secret.txt").await.status, 404);

    let visitor = browser.get("/cart?x=1").await;
    assert_eq!(visitor.status, 303);
    assert_eq!(visitor.location(), "/login?next=%2Fcart%3Fx%3D1");
    let visitor = browser.get("/orders").await;
    assert_eq!(visitor.location(), "/login?next=%2Forders");
    // The login page's way to sign up keeps where the visitor was going,
    // and so does the sign-up page's way back.
    let login = browser.get("/login?next=%2Forders").await;
    login.assert_contains(r#"href="/signup?next=%2Forders""#);
    let signup = browser.get("/signup?next=%2Forders").await;
    signup.assert_contains(r#"href="/login?next=%2Forders""#);

    // A bad email is shown next to its field, in HTML, the values kept.
    browser.get("/signup").await;
    let refused = browser
        .post(
            "/signup",
            &[
                ("username", "grace"),
                ("email", "not-an-address"),
                ("password", common::PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.header("content-type").starts_with("text/html"));
    refused.assert_contains("class=\"error-summary\" role=\"alert\"");
    refused.assert_contains("<p class=\"field-error\" id=\"email-error\">");
    refused.assert_contains("aria-invalid=\"true\" aria-describedby=\"email-error\"");
    refused.assert_contains("value=\"grace\"");
    assert!(
        !refused.body.contains(common::PASSWORD),
        "the password is not echoed"
    );
    assert!(!refused.body.contains("\"errors\""), "no raw JSON");

    // With the catalog gone, the list is a 503 page; the login page still works.
    stack.stop_service("catalog").await;
    let down = browser.get("/").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.header("content-type").starts_with("text/html"));
    down.assert_contains("unavailable");
    let login = browser.get("/login").await;
    assert_eq!(login.status, 200);
    login.assert_contains("Username or email");
}

#[tokio::test]
async fn hostile_or_broken_requests_get_html_pages_and_change_nothing() {
    let stack = stack().await;
    let web = stack.base("web");
    let gateway = stack.base("gateway");
    let product = stack.product_ids().await.remove(0);
    let mut browser = Browser::new(&web);
    browser.sign_up("hank").await;
    let token = browser.token();

    // A path used with another method: 405 with `Allow`, an HTML page
    // with the security headers, and nothing done.
    let logout = browser.request("GET", "/logout").await;
    assert_eq!(logout.status, 405);
    assert_eq!(logout.header("allow"), "POST");
    logout.assert_contains("Not allowed here");
    assert!(logout.header("content-type").starts_with("text/html"));
    assert!(
        logout
            .header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert_eq!(logout.header("cache-control"), "no-store");
    assert!(browser.jar.contains_key("shop_session"), "still logged in");
    let cart = browser.request("DELETE", "/cart").await;
    assert_eq!(cart.status, 405);
    assert_eq!(cart.header("allow"), "GET, HEAD");

    // HEAD is GET without the body; for a visitor it leads to the login.
    let head = browser.request("HEAD", "/").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.header("content-type").starts_with("text/html"));
    let mut visitor = Browser::new(&web);
    let head = visitor.request("HEAD", "/orders?cursor=x").await;
    assert_eq!(head.status, 303);
    assert_eq!(head.location(), "/login?next=%2Forders%3Fcursor%3Dx");

    // Ids and queries that do not parse are missing pages, never axum's
    // plain-text rejections.
    for path in [
        "/products/%FF",
        "/products/not-an-id",
        "/orders/%FF%FE",
        "/?cursor=a&cursor=b",
        "/?cursor=%3Cscript%3E",
        "/login?next=a&next=b",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{path}"
        );
        page.assert_contains("Page not found");
    }

    // A session cookie holding garbage is no session, and is cleared where
    // a page needs one; a token the API refuses likewise.
    for garbage in ["not%20a%20token", "a.b.c"] {
        let mut stale = Browser::new(&web);
        stale.jar.insert("shop_session".into(), garbage.into());
        let missing = stale.get("/no/such/page").await;
        assert_eq!(missing.status, 404);
        if garbage != "a.b.c" {
            missing.assert_contains("Log in");
            assert!(!missing.body.contains("Log out"), "{}", missing.body);
        }
        let cart = stale.get("/cart").await;
        assert_eq!(cart.status, 303, "{garbage}: {}", cart.body);
        assert_eq!(cart.location(), "/login?next=%2Fcart");
        let cleared = cart.set_cookie("shop_session").expect("cleared");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }

    // `next` leads to this site only, however it is spelt.
    for (next, location) in [
        ("/\\evil.example", "/"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        ("/%5C%5Cevil.example", "/%5C%5Cevil.example"),
        ("https:evil.example", "/"),
    ] {
        let mut away = Browser::new(&web);
        away.get("/login").await;
        let sent = away
            .post(
                "/login",
                &[
                    ("login", "hank"),
                    ("password", common::PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(sent.status, 303, "{next}: {}", sent.body);
        assert_eq!(sent.location(), location, "{next}");
    }
    let form = browser.get("/login?next=%2F%5Cevil.example").await;
    assert_eq!(form.field("next"), "/");

    // Quantities that are no whole number from 1 to 99 change nothing.
    for quantity in [
        "-1",
        "0",
        "100",
        "99999999999999999999999",
        "1e3",
        "",
        "\u{0661}",
    ] {
        let added = browser
            .post(
                "/cart/items",
                &[("product_id", &product), ("quantity", quantity)],
            )
            .await;
        assert_eq!(added.status, 303, "{quantity:?}: {}", added.body);
        assert_eq!(added.location(), "/cart");
        let cart = browser.follow(&added).await;
        cart.assert_contains("whole number from 1 to 99");
    }
    assert!(
        cart_lines(&gateway, &token).await.is_empty(),
        "the cart unchanged"
    );
    // 99 fit; one more is refused by the cart and said so.
    browser
        .post(
            "/cart/items",
            &[("product_id", &product), ("quantity", "99")],
        )
        .await;
    let over = browser
        .post(
            "/cart/items",
            &[("product_id", &product), ("quantity", "1")],
        )
        .await;
    let cart = browser.follow(&over).await;
    cart.assert_contains("at most 99 of one product");
    assert_eq!(
        cart_lines(&gateway, &token).await,
        vec![(product.clone(), 99)]
    );

    // A form that is no UTF-8, or lacks its fields, is refused readably.
    let csrf = browser
        .jar
        .get("shop_csrf")
        .cloned()
        .expect("a CSRF cookie");
    let mut body = format!("csrf_token={csrf}&product_id=").into_bytes();
    body.extend_from_slice(b"\xff\xfe&quantity=1\xff");
    let binary = browser.post_bytes("/cart/items", body).await;
    assert_eq!(binary.status, 404, "{}", binary.body);
    assert!(binary.header("content-type").starts_with("text/html"));
    let bare = browser.post("/checkout", &[]).await;
    assert_eq!(bare.location(), "/checkout");
    let orders = api_json(&gateway, "/api/orders", &token).await;
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(0),
        "{orders}"
    );
    assert_eq!(cart_lines(&gateway, &token).await, vec![(product, 99)]);

    // Sign-up without fields says which are missing; a form over the limit
    // is a 413 page; a long one within it is the API's to refuse.
    let mut newcomer = Browser::new(&web);
    newcomer.get("/signup").await;
    let empty = newcomer.post("/signup", &[]).await;
    assert_eq!(empty.status, 422, "{}", empty.body);
    empty.assert_contains("id=\"username-error\"");
    let huge = "x".repeat(20 * 1024);
    let too_large = newcomer.post("/signup", &[("username", &huge)]).await;
    assert_eq!(too_large.status, 413);
    too_large.assert_contains("Form too large");
    let long = "x".repeat(8 * 1024);
    let refused = newcomer
        .post(
            "/signup",
            &[
                ("username", &long),
                ("email", "long@example.com"),
                ("password", common::PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains("id=\"username-error\"");
    let nobody = newcomer.post("/login", &[]).await;
    assert_eq!(nobody.status, 401);
    nobody.assert_contains("Wrong username/email or password");
}
