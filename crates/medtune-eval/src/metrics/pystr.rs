//! Python `str` semantics that the reference implementations rely on.
//!
//! The metrics we match are defined by Python code, so whitespace splitting and
//! lowercasing must follow Python's rules rather than Rust's where they differ.

/// True for the characters Python's `str.split()` treats as whitespace.
///
/// Python splits on Unicode `White_Space` plus the ASCII information separators
/// U+001C..U+001F, which Rust's `char::is_whitespace` does not include.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` with no argument: split on runs of whitespace, drop empties.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(is_py_space).filter(|t| !t.is_empty()).collect()
}

/// Python's `str.lower()`.
pub fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_python_rules() {
        assert_eq!(
            py_split("  a\tb\u{1f}c\u{a0}d \n"),
            vec!["a", "b", "c", "d"]
        );
        assert!(py_split(" \t ").is_empty());
    }

    #[test]
    fn lower_handles_final_sigma_and_dotted_i() {
        assert_eq!(py_lower("ΟΔΟΣ"), "οδος");
        assert_eq!(py_lower("İ"), "i\u{307}");
    }
}
