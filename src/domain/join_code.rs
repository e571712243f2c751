//! Join codes of private games: 6 characters from an alphabet without look-alikes (no 0/O,
//! 1/I/L), drawn from a cryptographically secure generator, unique among live games (a partial
//! unique index; a collision draws again).
//!
//! 31^6 ≈ 887 million codes. With, say, 10,000 private games live at once, a guess hits one with
//! probability about 1 in 89,000: enumerating at the rate limits on joins (a few per second per
//! player and per address) finds nothing in any realistic time — see docs/lobby-features.md.

use rand::Rng;

/// The code alphabet: digits 2-9 and capital letters without I, L and O.
pub const ALPHABET: &str = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const LEN: usize = 6;

/// A fresh random code.
pub fn generate() -> String {
    // ThreadRng is a CSPRNG (ChaCha, seeded from the OS), so codes cannot be predicted.
    let mut rng = rand::thread_rng();
    let alphabet = ALPHABET.as_bytes();
    (0..LEN)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// A code as a person may type it: any case, with spaces or dashes. `None` when it cannot be a
/// code.
pub fn normalize(raw: &str) -> Option<String> {
    if raw.len() > 32 {
        return None;
    }
    let code: String = raw
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.chars().count() == LEN && code.chars().all(|c| ALPHABET.contains(c))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_normalize() {
        for _ in 0..200 {
            let code = generate();
            assert_eq!(code.len(), LEN);
            assert_eq!(normalize(&code), Some(code.clone()));
            assert_eq!(normalize(&code.to_lowercase()), Some(code.clone()));
        }
        assert_eq!(normalize("ab c-d e f"), Some("ABCDEF".into()));
        assert_eq!(normalize("ABCDE"), None);
        assert_eq!(normalize("ABCDEFG"), None);
        assert_eq!(normalize("ABCDE0"), None, "0 is a look-alike of O");
        assert_eq!(normalize("ABCDEI"), None, "I is a look-alike of 1");
        assert_eq!(normalize("ÄBCDEF"), None);
        assert_eq!(ALPHABET.len(), 31);
        for c in ['0', '1', 'I', 'L', 'O'] {
            assert!(!ALPHABET.contains(c));
        }
    }
}
