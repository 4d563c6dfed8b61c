//! Test support for the storefront: the real stack (every service, the
//! gateway and web, from the shared stack builder) and a [`Browser`] that
//! keeps cookies, follows no redirect by itself and posts forms with the
//! page's CSRF token, as a browser does.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used, clippy::panic)] // test helpers: a failed setup should fail the test

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::Value;
use shop::StackBuilder;
use shop::stack::{Gateway, Orders};
pub use shop::testing::TestStack;
use shop::testing::quick_orders;
use shop_testkit::Engine;

/// The password of every test user (long enough for the users service).
pub const PASSWORD: &str = shop::testing::PASSWORD;

/// The whole stack with one cart; orders settle quickly, and the gateway's
/// rate limits stay out of the way of a test's sign-ups.
pub async fn stack() -> TestStack {
    let stack = StackBuilder::for_tests()
        .everything(1)
        .configure::<Orders>(quick_orders)
        .configure::<Gateway>(|settings| {
            settings.rate_limit.login.per_minute = 10_000;
            settings.rate_limit.login.burst = 1_000;
        })
        .start_test(Engine::Sqlite)
        .await;
    stack.wait_ready().await;
    stack
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Page {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as text.
    pub body: String,
}

impl Page {
    /// The `Location` of a redirect.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no Location in a {} answer: {}", self.status, self.body))
    }

    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// The `Set-Cookie` line for `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|line| line.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the first `<input … name="{name}" value="…">`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("a closing quote") + start;
        self.body[start..end].to_owned()
    }

    /// Asserts the body contains `text`.
    pub fn assert_contains(&self, text: &str) {
        assert!(
            self.body.contains(text),
            "{text:?} not in the {} page:\n{}",
            self.status,
            self.body
        );
    }
}

/// A browser: cookies kept per name, redirects not followed.
pub struct Browser {
    client: reqwest::Client,
    /// Where it points (`http://addr`).
    pub base: String,
    /// Its cookies.
    pub jar: BTreeMap<String, String>,
    /// Extra headers sent with every request.
    pub extra: Vec<(&'static str, String)>,
}

impl Browser {
    /// A browser at `base` with no cookies.
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            jar: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("accept", "text/html");
        if !self.jar.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        for (name, value) in &self.extra {
            request = request.header(*name, value);
        }
        let response = shop_testkit::send(request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        for line in headers.get_all(SET_COOKIE) {
            let line = line.to_str().expect("ascii");
            let pair = line.split(';').next().expect("a pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if line.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status,
            headers,
            body,
        }
    }

    /// `GET {path}`.
    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts `fields` to `path` with the CSRF token of the cookie, as the
    /// page's form would.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.jar.get("shop_csrf").cloned().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", &csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields` to `path`.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields);
        self.send(request).await
    }

    /// `{method} {path}` without a body.
    pub async fn request(&mut self, method: &str, path: &str) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let request = self.client.request(method, format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts `body` to `path` as a form, byte for byte (which need not be
    /// UTF-8, nor a form).
    pub async fn post_bytes(&mut self, path: &str, body: Vec<u8>) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Follows the redirect `page` answered.
    pub async fn follow(&mut self, page: &Page) -> Page {
        assert_eq!(page.status, 303, "a redirect: {}", page.body);
        let location = page.location().to_owned();
        self.get(&location).await
    }

    /// Signs up `username` through the pages (which logs in); returns the
    /// page the redirect leads to.
    pub async fn sign_up(&mut self, username: &str) -> Page {
        let form = self.get("/signup").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let email = format!("{username}@example.com");
        let created = self
            .post(
                "/signup",
                &[
                    ("username", username),
                    ("email", &email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(created.status, 303, "sign up: {}", created.body);
        assert!(self.jar.contains_key("shop_session"), "a session cookie");
        self.follow(&created).await
    }

    /// The session's access token (for checking through the API).
    pub fn token(&self) -> String {
        self.jar.get("shop_session").cloned().expect("signed in")
    }
}

/// `GET {base}{path}` of the API with `token`, as JSON.
pub async fn api_json(base: &str, path: &str, token: &str) -> Value {
    let request = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token);
    shop_testkit::send(request)
        .await
        .json()
        .await
        .expect("json")
}

/// The ids in `href="/products/{id}"` links of a page, in order, once each.
pub fn product_links(body: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for piece in body.split("href=\"/products/").skip(1) {
        let id = piece.split('"').next().expect("a closing quote").to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}
