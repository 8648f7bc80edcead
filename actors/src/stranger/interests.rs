//! Interests as the match pool compares them: tags normalised so that `#Cats`, ` cats ` and
//! `CATS` are one interest.

use confab_schemas::stranger::MAX_INTERESTS;
use confab_schemas::{ErrorCode, Refusal};

/// Longest interest, in characters.
pub const MAX_INTEREST_CHARS: usize = 32;

/// The normalised form of what a client sent: each tag trimmed, without leading `#`, lowercase,
/// inner whitespace one space; empty tags dropped, repeats dropped (first kept). Refuses more
/// than `MAX_INTERESTS`, a tag longer than `MAX_INTEREST_CHARS`, and characters other than
/// letters, digits, spaces and `-_+.&'` (so a tag is safe as a metrics label value too).
pub fn normalise(raw: &[String]) -> Result<Vec<String>, Refusal> {
    if raw.len() > MAX_INTERESTS * 4 {
        return Err(too_many());
    }
    let mut out: Vec<String> = Vec::new();
    for tag in raw {
        let words: Vec<String> = tag.trim().trim_start_matches('#').split_whitespace().map(str::to_lowercase).collect();
        let tag = words.join(" ");
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > MAX_INTEREST_CHARS {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("an interest is at most {MAX_INTEREST_CHARS} characters"),
            ));
        }
        if let Some(bad) = tag.chars().find(|c| !(c.is_alphanumeric() || " -_+.&'".contains(*c))) {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("an interest is letters, digits, spaces and -_+.&' (not {bad:?})"),
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_INTERESTS {
        return Err(too_many());
    }
    Ok(out)
}

fn too_many() -> Refusal {
    Refusal::new(ErrorCode::TooManyInterests, format!("enter with at most {MAX_INTERESTS} interests"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(tags: &[&str]) -> Result<Vec<String>, ErrorCode> {
        normalise(&tags.iter().map(|t| t.to_string()).collect::<Vec<_>>()).map_err(|r| r.code)
    }

    #[test]
    fn normalises_and_deduplicates() {
        assert_eq!(n(&[" #Cats ", "CATS", "rock  N roll", "", "  "]).unwrap(), vec!["cats", "rock n roll"]);
        assert_eq!(n(&["Ünïcode"]).unwrap(), vec!["ünïcode"]);
    }

    #[test]
    fn refuses_bad_tags() {
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert_eq!(n(&eleven), Err(ErrorCode::TooManyInterests));
        assert_eq!(n(&["a\"b"]), Err(ErrorCode::Invalid));
        assert_eq!(n(&[&"x".repeat(33)]), Err(ErrorCode::Invalid));
        // Repeats do not count twice.
        assert_eq!(n(&["a"; 12]).unwrap(), vec!["a"]);
    }
}
