//! The gateway in front of the storefront, against the real stack: the
//! real web's pages and forms work through it; the storefront's routes
//! reach `web` unchanged (a fake web records them; cookies, redirects and
//! security headers pass back untouched); a browser's unknown page is
//! web's while `/internal/*` stays the gateway's 404; and the storefront's
//! API calls are rate limited as the browser they name — believed only
//! with the service credential.

#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

mod common;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{
    Fake, SERVICE_TOKEN, Seen, Stack, assert_problem, spawn_fake_answering, spawn_stack,
    spawn_stack_with, spawn_stack_without_web,
};
use reqwest::Method;
use shop::testing::{PASSWORD, eventually};
use shop_api::web::{ROUTES, WebMethod};
use shop_testkit::{Engine, send};

/// What Accept a browser sends for a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The security headers the fake web sends, as web's contract has them.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Starts a fake `web` in the stack's registry answering with
/// [`fake_page`], once the gateway forwards to it.
async fn fake_web(stack: &Stack) -> Fake {
    let web = spawn_fake_answering(stack.registry(), "web", fake_page).await;
    // The gateway learns of the instance through discovery.
    eventually("the gateway forwards to the fake web", || async {
        let page = send(stack.client.get(stack.url("/assets/style.css"))).await;
        page.status() == StatusCode::OK
    })
    .await;
    web.take_hits();
    web
}

/// Web's answer as the fake gives it: every page HTML, every form a 303,
/// each setting two cookies and the security headers.
fn fake_page(seen: &Seen) -> Response {
    let target = match &seen.query {
        Some(query) => format!("{}?{query}", seen.path),
        None => seen.path.clone(),
    };
    let status = if seen.method == "POST" {
        StatusCode::SEE_OTHER
    } else if seen.path.starts_with("/no-such-page") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut response = (status, format!("<!doctype html><p>web: {target}</p>")).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::LOCATION, "/cart"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    for cookie in [
        "shop_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=900",
        "shop_csrf=c5rf; HttpOnly; SameSite=Lax; Path=/",
    ] {
        headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
    }
    response
}

/// The path of a storefront route with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190c9f0-0000-7000-8000-000000000001")
        .replace("{product_id}", "0190c9f0-0000-7000-8000-000000000002")
        .replace("{file}", "style.css")
}

/// A client that shows redirects instead of following them, as the
/// browser's first response.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn every_storefront_route_reaches_web_unchanged_and_its_answer_comes_back_whole() {
    let stack = spawn_stack_without_web(Engine::Sqlite, 1, |_| {}).await;
    let web = fake_web(&stack).await;
    let client = no_redirects();
    for &(method, path) in ROUTES {
        let target = format!("{}?next=%2Fcart", concrete(path));
        let mut request = client
            .request(method.as_str().parse().expect("method"), stack.url(&target))
            .header(header::ACCEPT, BROWSER_ACCEPT)
            .header(header::COOKIE, "shop_session=abc; shop_csrf=xyz")
            .header("x-shop-client-ip", "192.0.2.66")
            .header("x-shop-service-token", "guess");
        if method == WebMethod::Post {
            request = request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, stack.base("gateway"))
                .body("csrf_token=xyz&quantity=2");
        }
        let response = send(request).await;
        let case = format!("{} {target}", method.as_str());

        let expected = if method == WebMethod::Post { 303 } else { 200 };
        assert_eq!(response.status(), expected, "{case}");
        let headers = response.headers();
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{case}"
        );
        assert_eq!(headers[header::LOCATION], "/cart", "{case}");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP, "{case}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{case}");
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(
            cookies,
            [
                "shop_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=900",
                "shop_csrf=c5rf; HttpOnly; SameSite=Lax; Path=/",
            ],
            "{case}"
        );
        assert!(
            response.text().await.expect("body").contains(&target),
            "{case}"
        );

        let seen = web.take_hits();
        let [seen] = seen.as_slice() else {
            panic!("{case}: web saw {seen:?}");
        };
        assert_eq!(
            (
                seen.method.as_str(),
                seen.path.as_str(),
                seen.query.as_deref()
            ),
            (
                method.as_str(),
                concrete(path).as_str(),
                Some("next=%2Fcart")
            ),
            "{case}"
        );
        let headers = &seen.headers;
        assert_eq!(
            headers[header::COOKIE],
            "shop_session=abc; shop_csrf=xyz",
            "{case}"
        );
        assert_eq!(headers["x-forwarded-proto"], "http", "{case}");
        // The browser's address, whatever it claimed; no credential.
        assert_eq!(headers["x-shop-client-ip"], "127.0.0.1", "{case}");
        assert!(!headers.contains_key("x-shop-service-token"), "{case}");
        if method == WebMethod::Post {
            assert_eq!(seen.body, "csrf_token=xyz&quantity=2", "{case}");
            assert_eq!(
                headers[header::ORIGIN],
                stack.base("gateway").as_str(),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_browsers_unknown_page_is_webs_and_internal_routes_stay_the_gateways_404() {
    let stack = spawn_stack_without_web(Engine::Sqlite, 1, |_| {}).await;
    let web = fake_web(&stack).await;
    let client = no_redirects();
    let get = |path: &str, accept: &'static str| {
        send(client.get(stack.url(path)).header(header::ACCEPT, accept))
    };

    // A person's mistyped address: web's own (HTML) 404 page.
    let page = get("/no-such-page", BROWSER_ACCEPT).await;
    assert_eq!(page.status(), 404);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let seen = web.take_hits();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/no-such-page");

    // An API client's, the API's, and the services' internal routes: the
    // gateway's 404 problem, whatever the Accept; nothing reaches web (or
    // any service).
    for (method, path, accept) in [
        (Method::GET, "/no-such-page", "*/*"),
        (Method::GET, "/no-such-page", "application/json"),
        (Method::POST, "/no-such-page", BROWSER_ACCEPT),
        (Method::GET, "/api/nothing", BROWSER_ACCEPT),
        (Method::GET, "/internal/anything", BROWSER_ACCEPT),
        (Method::GET, "/internal/anything", "*/*"),
        (
            Method::POST,
            "/internal/carts/0190c9f0-0000-7000-8000-000000000001/order-removals",
            BROWSER_ACCEPT,
        ),
        (
            Method::POST,
            "/internal/stock/reservations/0190c9f0-0000-7000-8000-000000000001",
            "*/*",
        ),
    ] {
        let request = client
            .request(method.clone(), stack.url(path))
            .header(header::ACCEPT, accept)
            .header("x-shop-service-token", stack.service_token());
        assert_problem(
            send(request).await,
            404,
            &format!("{method} {path} ({accept})"),
        )
        .await;
    }
    assert!(web.take_hits().is_empty());

    // A page route with a method it does not have is refused at the gateway.
    let wrong = send(client.delete(stack.url("/cart"))).await;
    assert_problem(wrong, 405, "DELETE /cart").await;
    assert!(web.take_hits().is_empty());
}

/// The value of the cookie `name` a response sets, if it sets one.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| {
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
}

#[tokio::test]
async fn the_real_storefront_works_through_the_gateway() {
    let stack = spawn_stack(Engine::Sqlite, 1).await;
    stack.wait_ready().await;
    stack.shopper("alice").await;
    let client = no_redirects();
    let html = |response: &reqwest::Response, case: &str| {
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii");
        assert!(
            content_type.starts_with("text/html"),
            "{case}: {content_type}"
        );
        assert!(
            response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY),
            "{case}"
        );
    };

    // The product list: web asked the gateway's API for the products.
    let home = send(
        client
            .get(stack.url("/"))
            .header(header::ACCEPT, BROWSER_ACCEPT),
    )
    .await;
    assert_eq!(home.status(), 200);
    html(&home, "GET /");
    let body = home.text().await.expect("body");
    assert!(body.contains("<h1>Products</h1>"), "{body}");
    assert!(
        body.contains("class=\"product\""),
        "no product listed: {body}"
    );

    // A form posted without its CSRF token's cookie: web's 403 page.
    let forged = client
        .post(stack.url("/login"))
        .header(header::COOKIE, "shop_csrf=one")
        .form(&[
            ("csrf_token", "another"),
            ("login", "alice"),
            ("password", PASSWORD),
        ]);
    let forged = send(forged).await;
    assert_eq!(forged.status(), 403);
    html(&forged, "POST /login with a bad CSRF token");
    assert!(set_cookie(&forged, "shop_session").is_none());

    // The login form sets the CSRF cookie; posting it back logs in: web
    // called the API's sessions through the gateway, and its session cookie
    // comes back through the gateway to the browser.
    let form = send(client.get(stack.url("/login"))).await;
    assert_eq!(form.status(), 200);
    html(&form, "GET /login");
    let csrf = set_cookie(&form, "shop_csrf").expect("the login form sets shop_csrf");
    let page = form.text().await.expect("body");
    let token = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries its CSRF token");
    let login = client
        .post(stack.url("/login"))
        .header(header::COOKIE, format!("shop_csrf={csrf}"))
        .form(&[
            ("csrf_token", token),
            ("next", "/cart"),
            ("login", "alice"),
            ("password", PASSWORD),
        ]);
    let login = send(login).await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()[header::LOCATION], "/cart");
    let session = set_cookie(&login, "shop_session").expect("a session cookie");
    let cart = client.get(stack.url("/cart")).header(
        header::COOKIE,
        format!("shop_session={session}; shop_csrf={csrf}"),
    );
    let cart = send(cart).await;
    assert_eq!(cart.status(), 200);
    assert!(
        cart.text()
            .await
            .expect("body")
            .contains("<h1>Your cart</h1>")
    );
}

/// Six `GET /api/products` through the gateway, each with the headers
/// `headers(i)` adds, and their statuses.
async fn burst(stack: &Stack, headers: impl Fn(usize) -> Vec<(&'static str, String)>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..6 {
        let mut request = stack.client.get(stack.url("/api/products"));
        for (name, value) in headers(i) {
            request = request.header(name, value);
        }
        statuses.push(send(request).await.status().as_u16());
    }
    statuses
}

/// Asserts that a burst of three passed and a later request was limited.
fn assert_burst_of_three(statuses: &[u16], case: &str) {
    assert_eq!(&statuses[..3], &[200, 200, 200], "{case}: {statuses:?}");
    assert!(statuses[3..].contains(&429), "{case}: {statuses:?}");
}

#[tokio::test]
async fn the_storefronts_api_calls_are_limited_per_browser_named_and_no_one_else_names_one() {
    let stack = spawn_stack_with(Engine::Sqlite, 1, |settings| {
        settings.rate_limit.per_second = 1;
        settings.rate_limit.burst = 3;
        settings.internal.service_token = Some(SERVICE_TOKEN.into());
    })
    .await;
    let credential = |client_ip: String| {
        vec![
            ("x-shop-service-token", SERVICE_TOKEN.to_owned()),
            ("x-shop-client-ip", client_ip),
        ]
    };

    // Without the credential the header names no one: six requests naming
    // six addresses share the one bucket of their peer.
    let statuses = burst(&stack, |i| {
        vec![("x-shop-client-ip", format!("198.51.100.{}", 10 + i))]
    })
    .await;
    assert_burst_of_three(&statuses, "uncredentialed");
    // A wrong credential is no credential, and with the right one a name
    // that is not an address names no one: the peer's (empty) bucket.
    for (token, client_ip, case) in [
        ("guess", "198.51.100.20", "a wrong credential"),
        (SERVICE_TOKEN, "browser", "not an address"),
    ] {
        let statuses = burst(&stack, |_| {
            vec![
                ("x-shop-service-token", token.to_owned()),
                ("x-shop-client-ip", client_ip.to_owned()),
            ]
        })
        .await;
        assert!(statuses.contains(&429), "{case}: {statuses:?}");
    }

    // With it, each browser named has a bucket of its own — a full one,
    // though the peer's is empty — and one browser cannot use up another's.
    let first = burst(&stack, |_| credential("198.51.100.1".to_owned())).await;
    assert_burst_of_three(&first, "the first browser");
    let second = burst(&stack, |_| credential("2001:db8:1::1".to_owned())).await;
    assert_burst_of_three(&second, "the second browser");
}
