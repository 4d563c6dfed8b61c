//! Integers in JSON bodies. JSON has one number type, and JSON Schema
//! (so OpenAPI 3.1) counts `71.0` as the integer 71; serde's `i64` refuses
//! it. A field that the schema calls an integer reads both forms here, so
//! whatever the schema accepts the service accepts too.

use serde::{Deserialize, Deserializer};

/// Reads an optional integer written as `71` or `71.0` (or `7.1e1`).
///
/// # Errors
/// A number with a fraction, or one outside `i64`, or anything not a
/// number: the message names the expectation.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    whole(&number).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid value: {number}, expected an integer (no fraction, at most 2^63-1 in size)"
        ))
    })
}

/// The integer `number` stands for, if it is one.
fn whole(number: &serde_json::Number) -> Option<i64> {
    if let Some(int) = number.as_i64() {
        return Some(int);
    }
    let float = number.as_f64()?;
    // Every f64 in this range with no fraction is exactly an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    (float.fract() == 0.0 && (-LIMIT..LIMIT).contains(&float)).then_some(float as i64)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        n: Option<i64>,
    }

    fn read(json: &str) -> Result<Option<i64>, serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|body| body.n)
    }

    #[test]
    fn whole_numbers_read_in_any_notation() {
        for (json, n) in [
            (r#"{"n": 71}"#, 71),
            (r#"{"n": 71.0}"#, 71),
            (r#"{"n": 7.1e1}"#, 71),
            (r#"{"n": -3.0}"#, -3),
            (r#"{"n": 0}"#, 0),
        ] {
            assert_eq!(read(json).expect(json), Some(n), "{json}");
        }
        assert_eq!(read("{}").expect("absent"), None);
        assert_eq!(read(r#"{"n": null}"#).expect("null"), None);
    }

    #[test]
    fn fractions_huge_numbers_and_other_types_are_refused() {
        for json in [
            r#"{"n": 1.5}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 18446744073709551615}"#,
            r#"{"n": "7"}"#,
            r#"{"n": true}"#,
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }
}
