//! File names: decimal ids and `0x%08x` keys, each with one spelling only,
//! so that every object has exactly one name in each directory.

use crate::ipc::Key;

/// The name a creating call may use in `shm/`: a key in hex (`0x1234abcd`,
/// case and leading zeros free) or `private` for IPC_PRIVATE.
pub const PRIVATE_NAME: &str = "private";

/// A decimal id as `ipcs` prints it: no sign, no leading zeros, fits an int.
pub fn parse_id(name: &str) -> Option<i32> {
    let canonical =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && (name == "0" || !name.starts_with('0'));
    if canonical { name.parse().ok() } else { None }
}

/// The canonical key name used in `by-key/`: exactly `0x%08x`, lower case.
pub fn parse_canonical_key(name: &str) -> Option<Key> {
    let key = parse_creation_key(name)?;
    (key.to_string() == name && !key.is_private()).then_some(key)
}

/// A key as written when creating an object: `0x` and 1 to 8 hex digits, or
/// `private`.
pub fn parse_creation_key(name: &str) -> Option<Key> {
    if name == PRIVATE_NAME {
        return Some(Key::PRIVATE);
    }
    let hex = name.strip_prefix("0x").or_else(|| name.strip_prefix("0X"))?;
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(|k| Key(k as i32))
}

/// A decimal number as ipcfs writes it: no sign, no leading zeros.
pub fn parse_number(name: &str) -> Option<u64> {
    if name.is_empty() || (name.len() > 1 && name.starts_with('0')) || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_spelling() {
        assert_eq!(parse_id("0"), Some(0));
        assert_eq!(parse_id("32769"), Some(32769));
        assert_eq!(parse_id("2147483647"), Some(i32::MAX));
        for bad in ["", "01", "+1", "-1", "1 ", " 1", "2147483648", "99999999999999999999", "1e3", "0x10", ".."] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn canonical_keys_only_in_by_key() {
        assert_eq!(parse_canonical_key("0x0000abcd"), Some(Key(0xabcd)));
        assert_eq!(parse_canonical_key("0xffffffff"), Some(Key(-1)));
        for bad in ["0xabcd", "0x0000ABCD", "0x00000000", "0x123456789", "abcd", "private"] {
            assert_eq!(parse_canonical_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn creation_keys_are_forgiving_but_strict_about_hex() {
        assert_eq!(parse_creation_key("0xabcd"), Some(Key(0xabcd)));
        assert_eq!(parse_creation_key("0XABCD"), Some(Key(0xabcd)));
        assert_eq!(parse_creation_key("0xDEADBEEF"), Some(Key(0xdeadbeef_u32 as i32)));
        assert_eq!(parse_creation_key("private"), Some(Key::PRIVATE));
        assert_eq!(parse_creation_key("0x0"), Some(Key::PRIVATE));
        for bad in ["0x", "0x123456789", "0xg", "1234", "0x-1", "0x 1", "Private"] {
            assert_eq!(parse_creation_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_are_canonical_numbers() {
        let good = [("42", 42), ("0", 0), ("4026531839", 4026531839)];
        let bad = ["", "042", "+1", "-1", "1x", "by-pid", "99999999999999999999999"];
        let cases = good.map(|(name, n)| (name, Some(n))).into_iter().chain(bad.map(|name| (name, None)));
        for (name, number) in cases {
            assert_eq!(parse_number(name), number, "{name:?}");
        }
    }
}
