//! `GET /api/products` and `GET /api/products/{id}` over real HTTP on SQLite
//! and PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::{SEEDED, apps, assert_problem};
use serde_json::Value;
use shop_testkit::send;

const FIRST: &str = "0196a1c0-5e00-7000-8000-000000000001";
const SECOND: &str = "0196a1c0-5e00-7000-8000-000000000002";
const THIRD: &str = "0196a1c0-5e00-7000-8000-000000000003";
const UNKNOWN: &str = "0196a1c0-5e00-7000-8000-0000000000ff";

#[tokio::test]
async fn paging_lists_every_product_exactly_once_in_id_order() {
    for app in apps().await {
        let expected = app.all_ids().await;
        assert_eq!(expected.len(), SEEDED, "{}", app.engine);
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(
            expected, sorted,
            "{}: the list is ordered by id",
            app.engine
        );
        assert_eq!(
            expected.iter().collect::<BTreeSet<_>>().len(),
            SEEDED,
            "{}: no id repeats",
            app.engine
        );
        for limit in [1, 2, 3, 5, 7, 15, 16, 17, 20, 100] {
            let ids: Vec<String> = app
                .all_products(limit)
                .await
                .iter()
                .map(|p| p["id"].as_str().expect("id").to_owned())
                .collect();
            assert_eq!(ids, expected, "{}: limit {limit}", app.engine);
        }
    }
}

#[tokio::test]
async fn pages_hold_limit_items_and_the_last_page_has_no_cursor() {
    for app in apps().await {
        let page = app.products_ok(&[]).await;
        assert_eq!(
            page["items"].as_array().expect("items").len(),
            SEEDED,
            "{}: default limit 20 covers the seed",
            app.engine
        );
        assert!(page["next_cursor"].is_null(), "{}: {page}", app.engine);

        let page = app.products_ok(&[("limit", "5")]).await;
        assert_eq!(page["items"].as_array().expect("items").len(), 5);
        assert!(page["next_cursor"].is_string(), "{page}");

        // Exactly as many products as asked: no dead cursor to an empty page.
        let page = app.products_ok(&[("limit", &SEEDED.to_string())]).await;
        assert_eq!(page["items"].as_array().expect("items").len(), SEEDED);
        assert!(page["next_cursor"].is_null(), "{}: {page}", app.engine);

        let first = app.products_ok(&[("limit", "15")]).await;
        let cursor = first["next_cursor"].as_str().expect("cursor");
        let last = app
            .products_ok(&[("limit", "15"), ("cursor", cursor)])
            .await;
        assert_eq!(last["items"].as_array().expect("items").len(), 1);
        assert!(last["next_cursor"].is_null(), "{}: {last}", app.engine);
    }
}

#[tokio::test]
async fn products_have_the_documented_shape_and_integer_prices() {
    for app in apps().await {
        let products = app.all_products(100).await;
        let keys: BTreeSet<&str> = products[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "id",
                "sku",
                "name",
                "description",
                "price_cents",
                "currency",
                "image",
                "stock"
            ])
        );
        let mut skus = BTreeSet::new();
        for product in &products {
            let price = &product["price_cents"];
            assert!(
                price.is_i64() && !price.is_f64(),
                "{}: price is an integer: {product}",
                app.engine
            );
            assert!(price.as_i64().expect("i64") >= 0);
            assert_eq!(product["currency"], "EUR", "one currency: {product}");
            assert!(product["image"].is_null() || product["image"].is_string());
            assert!(!product["name"].as_str().expect("name").is_empty());
            assert!(!product["description"].as_str().expect("text").is_empty());
            assert!(skus.insert(product["sku"].as_str().expect("sku").to_owned()));
        }
        assert!(
            products.iter().any(|p| p["image"].is_null()),
            "some products have no image"
        );
        let first: Vec<(&str, i64)> = products[..3]
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().expect("id"),
                    p["price_cents"].as_i64().expect("price"),
                )
            })
            .collect();
        assert_eq!(
            first,
            [(FIRST, 1490), (SECOND, 4990), (THIRD, 12900)],
            "seeded ids are stable"
        );
    }
}

#[tokio::test]
async fn limits_outside_1_to_100_are_422_naming_limit() {
    for app in apps().await {
        for bad in ["0", "101", "-1", "abc", "", "1.5", "20 OR 1=1", "1e2"] {
            app.assert_invalid(&[("limit", bad)], "limit").await;
        }
        for good in ["1", "100"] {
            app.products_ok(&[("limit", good)]).await;
        }
    }
}

#[tokio::test]
async fn malformed_cursors_are_422_naming_cursor() {
    for app in apps().await {
        for bad in [
            "",
            "abc",
            "!!!!",
            "' OR 1=1 --",
            "AQEBAQEBAQEBAQEBAQEB", // 15 bytes
            "AQEBAQEBAQEBAQEBAQEBAQE=",
        ] {
            app.assert_invalid(&[("cursor", bad)], "cursor").await;
        }
    }
}

#[tokio::test]
async fn a_cursor_past_the_end_gives_an_empty_last_page() {
    for app in apps().await {
        // base64url of ffffffff-ffff-ffff-ffff-ffffffffffff
        let page = app
            .products_ok(&[("cursor", "_____________________w")])
            .await;
        assert_eq!(page["items"], Value::Array(Vec::new()), "{}", app.engine);
        assert!(page["next_cursor"].is_null());
    }
}

#[tokio::test]
async fn unknown_parameters_are_rejected_not_ignored() {
    for app in apps().await {
        // A misspelt `ids` must not quietly return the first page.
        let misspelt = app.products(&[("id", FIRST)]).await;
        assert_problem(misspelt, 400, &format!("{}: id=", app.engine)).await;
    }
}

#[tokio::test]
async fn get_by_id_returns_the_product_as_listed() {
    for app in apps().await {
        let listed = app.all_products(100).await;
        for product in &listed {
            let id = product["id"].as_str().expect("id");
            let response = app.get(&format!("/api/products/{id}")).await;
            assert_eq!(response.status(), 200, "{}: {id}", app.engine);
            let got: Value = response.json().await.expect("json");
            assert_eq!(&got, product);
        }
        // Other UUID spellings name the same product.
        let upper = app
            .get(&format!("/api/products/{}", FIRST.to_uppercase()))
            .await;
        assert_eq!(upper.status(), 200, "{}", app.engine);
    }
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ids_400() {
    for app in apps().await {
        let body = app
            .assert_get_problem(&format!("/api/products/{UNKNOWN}"), 404, "unknown")
            .await;
        assert_eq!(body["type"], "/problems/product-not-found");
        for bad in [
            "not-a-uuid",
            "1",
            "0196a1c0-5e00-7000-8000-00000000000",
            "%27%20OR%20%271%27=%271",
            "0196a1c0-5e00-7000-8000-000000000001%27--",
        ] {
            app.assert_get_problem(&format!("/api/products/{bad}"), 400, bad)
                .await;
        }
    }
}

#[tokio::test]
async fn batch_lookup_returns_known_ids_once_in_id_order() {
    for app in apps().await {
        let ids = format!("{THIRD},{UNKNOWN},{FIRST},{THIRD}, {FIRST}");
        let page = app.products_ok(&[("ids", &ids)]).await;
        let got: Vec<&str> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["id"].as_str().expect("id"))
            .collect();
        assert_eq!(got, [FIRST, THIRD], "{}", app.engine);
        assert!(page["next_cursor"].is_null());
        assert_eq!(page["items"][0]["price_cents"], 1490);

        let none = app.products_ok(&[("ids", UNKNOWN)]).await;
        assert_eq!(none["items"], Value::Array(Vec::new()));

        // The whole catalog in one call matches the paged list.
        let all = app.all_products(100).await;
        let all_ids: Vec<&str> = all.iter().map(|p| p["id"].as_str().expect("id")).collect();
        let page = app.products_ok(&[("ids", &all_ids.join(","))]).await;
        assert_eq!(page["items"], Value::Array(all.clone()), "{}", app.engine);
    }
}

#[tokio::test]
async fn batch_lookup_takes_at_most_100_ids() {
    for app in apps().await {
        let mut hundred: Vec<String> = (0..99).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        hundred.push(SECOND.to_owned());
        let page = app.products_ok(&[("ids", &hundred.join(","))]).await;
        assert_eq!(page["items"].as_array().expect("items").len(), 1);

        hundred.push(FIRST.to_owned());
        app.assert_invalid(&[("ids", &hundred.join(","))], "ids")
            .await;
    }
}

#[tokio::test]
async fn malformed_batch_lookups_are_422() {
    for app in apps().await {
        let cases = [
            (vec![("ids", "nope".to_owned())], "ids"),
            (vec![("ids", String::new())], "ids"),
            (vec![("ids", format!("{FIRST},"))], "ids"),
            (vec![("ids", format!("{FIRST}' OR '1'='1"))], "ids"),
            (vec![("ids", format!("{FIRST}) OR (1=1"))], "ids"),
            (
                vec![("ids", FIRST.to_owned()), ("limit", "5".to_owned())],
                "limit",
            ),
            (
                vec![
                    ("ids", FIRST.to_owned()),
                    ("cursor", "AZahwF4AcACAAAAAAAAAAQ".to_owned()),
                ],
                "cursor",
            ),
        ];
        for (query, field) in cases {
            let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.assert_invalid(&pairs, field).await;
        }
    }
}

#[tokio::test]
async fn sql_metacharacters_in_parameters_are_only_data() {
    for app in apps().await {
        for (name, value) in [
            ("limit", "1; DELETE FROM products"),
            ("cursor", "'; DROP TABLE products; --"),
            ("ids", "' OR ''='"),
            (
                "ids",
                "0196a1c0-5e00-7000-8000-000000000001'); DROP TABLE products; --",
            ),
        ] {
            app.assert_invalid(&[(name, value)], name).await;
        }
        assert_eq!(
            app.all_ids().await.len(),
            SEEDED,
            "{}: nothing changed",
            app.engine
        );
    }
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only() {
    for app in apps().await {
        let before = app.requests_counted("/api/products/{id}", 404).await;
        app.assert_get_problem(&format!("/api/products/{UNKNOWN}"), 404, "unknown product")
            .await;
        let after = app.requests_counted("/api/products/{id}", 404).await;
        assert!(
            after >= before + 1.0,
            "{}: the API request is not counted ({before} -> {after})",
            app.engine
        );
        app.assert_get_problem("/metrics", 404, "/metrics on the API port")
            .await;
    }
}

#[tokio::test]
async fn health_and_fallbacks_are_served() {
    for app in apps().await {
        for path in ["/healthz", "/readyz"] {
            assert_eq!(app.get(path).await.status(), 200, "{}: {path}", app.engine);
        }
        app.assert_get_problem("/api/nothing-here", 404, "unknown path")
            .await;
        // Read-only API: writes are not routed.
        let post = app
            .post_json("/api/products", &serde_json::json!({"name": "x"}))
            .await;
        assert_problem(post, 405, "POST /api/products").await;
        let delete = send(
            app.client
                .delete(app.url(&format!("/api/products/{FIRST}"))),
        )
        .await;
        assert_problem(delete, 405, "DELETE /api/products/{id}").await;
    }
}
