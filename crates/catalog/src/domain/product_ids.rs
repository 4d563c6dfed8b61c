//! The id list of a batch lookup (`GET /api/products?ids=a,b,c`).

use std::collections::BTreeSet;

use super::ProductId;

/// Most ids in one batch lookup. It bounds the query's parameters and the
/// response; a cart holds far fewer distinct products.
pub const MAX_IDS: usize = shop_api::catalog::MAX_IDS;

/// 1 to [`MAX_IDS`] distinct product ids, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductIds(Vec<ProductId>);

impl ProductIds {
    /// Parses a comma-separated list of UUIDs. Whitespace around an id is
    /// ignored; a repeated id is looked up once.
    ///
    /// # Errors
    /// A message for the client when the list is empty, names more than
    /// [`MAX_IDS`] ids (repeats included) or holds something that is not a UUID.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if raw.trim().is_empty() {
            return Err(format!("must list 1 to {MAX_IDS} product ids"));
        }
        if parts.len() > MAX_IDS {
            return Err(format!(
                "must list at most {MAX_IDS} product ids (got {})",
                parts.len()
            ));
        }
        let mut ids = BTreeSet::new();
        for (position, part) in parts.iter().enumerate() {
            let id = part.parse::<ProductId>().map_err(|_| {
                format!(
                    "entry {} is not a product id (expected a UUID)",
                    position + 1
                )
            })?;
            ids.insert(id);
        }
        Ok(Self(ids.into_iter().collect()))
    }

    /// The distinct ids, ascending.
    pub fn as_slice(&self) -> &[ProductId] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "01960000-0000-7000-8000-000000000001";
    const B: &str = "01960000-0000-7000-8000-000000000002";

    #[test]
    fn lists_are_deduplicated_and_sorted() {
        let ids = ProductIds::parse(&format!("{B}, {A},{B}")).expect("valid");
        let texts: Vec<String> = ids.as_slice().iter().map(ToString::to_string).collect();
        assert_eq!(texts, [A, B]);
    }

    #[test]
    fn one_hundred_ids_is_the_limit() {
        let hundred = vec![A; MAX_IDS].join(",");
        assert_eq!(
            ProductIds::parse(&hundred).expect("valid").as_slice().len(),
            1
        );
        let too_many = vec![A; MAX_IDS + 1].join(",");
        assert!(ProductIds::parse(&too_many).is_err());
    }

    #[test]
    fn empty_and_malformed_lists_are_rejected() {
        for bad in [
            "",
            " ",
            ",",
            &format!("{A},"),
            &format!("{A},nope"),
            "1 OR 1=1",
            &format!("{A}');DROP TABLE products;--"),
        ] {
            assert!(ProductIds::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
