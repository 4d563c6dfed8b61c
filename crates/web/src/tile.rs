//! A product's picture, drawn rather than fetched: a tile in a colour of
//! its own (chosen from the product's id, so the same product always looks
//! the same) with its initials. The templates draw it as inline SVG with
//! presentation attributes only, which the content security policy allows
//! (it forbids `style` attributes and elements, not `fill`). It is
//! decorative: the product's name is the heading next to it, so the SVG is
//! `aria-hidden`.

/// Colours of a tile: (background, shapes, initials). Light backgrounds
/// with dark initials, each pair well above WCAG's 4.5:1 contrast.
const PALETTE: [(&str, &str, &str); 10] = [
    ("#e3eefc", "#a9c8f2", "#143a68"),
    ("#e6f4ec", "#a8d8b9", "#1e5b35"),
    ("#fdeee0", "#f4c08f", "#7a3d0a"),
    ("#f4e8fb", "#d2b0ea", "#5a2a7a"),
    ("#fbe7ea", "#efaab5", "#7d1f31"),
    ("#e2f5f5", "#9fd9d9", "#185a5c"),
    ("#fdf6d8", "#ecd77e", "#5f4b05"),
    ("#ebedf7", "#b7bde3", "#2d346e"),
    ("#f1efe9", "#cfc6b2", "#4a4230"),
    ("#e9f6df", "#bde29c", "#36561a"),
];

/// Everything a template needs to draw a product's tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// The background colour.
    pub background: &'static str,
    /// The colour of the two circles behind the initials.
    pub shape: &'static str,
    /// The colour of the initials.
    pub ink: &'static str,
    /// Up to two letters or digits: the first of the name's first two words.
    pub initials: String,
    /// The centre of the large circle (x, y in the 320×240 view box).
    pub large: (u32, u32),
    /// The centre of the small circle.
    pub small: (u32, u32),
}

impl Tile {
    /// The tile of the product `id` named `name`.
    pub fn new(id: &str, name: &str) -> Self {
        let hash = fnv1a(id.as_bytes());
        // Different bits of the hash for the colour and each circle.
        let (background, shape, ink) = PALETTE[(hash % PALETTE.len() as u64) as usize];
        let at = |shift: u32, width: u64, height: u64| {
            let bits = hash >> shift;
            ((bits % width) as u32, ((bits >> 12) % height) as u32)
        };
        Self {
            background,
            shape,
            ink,
            initials: initials(name),
            large: at(8, 320, 240),
            small: at(32, 320, 240),
        }
    }
}

/// The first letter or digit of each of the first two words of `name`,
/// upper-cased (`"Gooseneck Pour-Over Kettle"` → `"GP"`); `"?"` for a name
/// without any.
fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".to_owned()
    } else {
        letters
    }
}

/// FNV-1a, 64 bits: a stable hash (std's `DefaultHasher` may change between
/// releases, and a product should keep its colour).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_the_first_letters_of_two_words() {
        assert_eq!(initials("Gooseneck Pour-Over Kettle"), "GP");
        assert_eq!(initials("espresso"), "E");
        assert_eq!(initials("  \"Moka\"   pot 3 cups"), "MP");
        assert_eq!(initials("ßig straße"), "SSS");
        assert_eq!(initials("<script>"), "S");
        assert_eq!(initials("— …"), "?");
        assert_eq!(initials(""), "?");
    }

    #[test]
    fn a_product_keeps_its_tile_and_products_differ() {
        let id = "0190f4a2-7c2e-7d4e-9a6b-3c1d2e3f4a5b";
        assert_eq!(Tile::new(id, "Kettle"), Tile::new(id, "Kettle"));
        let tiles: Vec<Tile> = (0..40)
            .map(|n| Tile::new(&format!("0190f4a2-7c2e-7d4e-9a6b-3c1d2e3f4a{n:02}"), "Cup"))
            .collect();
        let colours: std::collections::BTreeSet<&str> =
            tiles.iter().map(|tile| tile.background).collect();
        assert!(colours.len() >= 5, "{colours:?}");
        for tile in &tiles {
            assert!(tile.large.0 < 320 && tile.large.1 < 240);
            assert!(tile.small.0 < 320 && tile.small.1 < 240);
        }
        // The same algorithm everywhere, whatever the platform.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
