//! How the cart reads the catalog under concurrency. Alone in its binary:
//! the test counts the process's metrics exactly, which other tests running
//! beside it would move.

mod common;

use std::time::Duration;

use common::{CartStack as _, spawn_with_catalog_cache};

/// The catalog cache's time to live here: long enough that the burst below
/// ends within it on a slow machine, short enough to wait out.
const TTL: Duration = Duration::from_millis(1_500);

#[tokio::test]
async fn concurrent_requests_missing_the_same_product_read_the_catalog_once() {
    let stack = spawn_with_catalog_cache(TTL.as_millis() as u64).await;
    let (token, _) = stack.shopper_with_one_item("grace").await;
    // The entry the PUT left expires.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let reads = || {
        stack.counter(
            "upstream_requests_total",
            &[
                ("service", "cart"),
                ("upstream", "catalog"),
                ("outcome", "success"),
            ],
        )
    };
    let (reads_before, hits_before, misses_before) = (
        reads().await,
        stack.cache_lookups("hit").await,
        stack.cache_lookups("miss").await,
    );

    // 32 readers of the cart at once, each pricing the same expired product.
    const READERS: usize = 32;
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..READERS {
        let (client, url, token) = (
            stack.client.clone(),
            format!("{}/api/cart", &stack.cart()),
            token.clone(),
        );
        readers.spawn(async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), 200);
            let cart: serde_json::Value = response.json().await.expect("json");
            assert_eq!(cart["items"][0]["quantity"], 1, "{cart}");
        });
    }
    while let Some(reader) = readers.join_next().await {
        reader.expect("reader");
    }

    // Every reader looked the product up; only one read went to the catalog.
    let hits = stack.cache_lookups("hit").await - hits_before;
    let misses = stack.cache_lookups("miss").await - misses_before;
    assert_eq!(
        hits + misses,
        READERS as f64,
        "hits {hits}, misses {misses}"
    );
    assert!(misses >= 1.0, "the expired entry was missed at least once");
    assert_eq!(
        reads().await - reads_before,
        1.0,
        "one catalog read for {misses} misses"
    );
}
