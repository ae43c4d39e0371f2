//! Label matchers with Alertmanager semantics: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`. Regexes are fully anchored, and a missing label matches
//! like an empty value.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Unquotes a Go/PromQL style double-quoted string, or takes an unquoted value as is.
fn unquote(text: &str) -> Result<String, String> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('"') else {
        if text.contains('"') {
            return Err(format!("stray quote in value {text:?}"));
        }
        return Ok(text.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("unterminated quoted value {text:?}"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some(other) => return Err(format!("unknown escape \\{other} in {text:?}")),
                None => return Err(format!("dangling backslash in {text:?}")),
            },
            '"' => return Err(format!("unescaped quote inside {text:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        // The operator is the first of these to appear; `=~`/`!~`/`!=` before `=`.
        let position = text
            .find(['=', '!'])
            .ok_or_else(|| format!("matcher {text:?} has no operator (=, !=, =~, !~)"))?;
        let (name, rest) = text.split_at(position);
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Equal, v)
        } else {
            return Err(format!("matcher {text:?} has no operator (=, !=, =~, !~)"));
        };
        let name = name.trim();
        if !valid_label_name(name) {
            return Err(format!("matcher {text:?}: {name:?} is not a label name"));
        }
        let value = unquote(value).map_err(|e| format!("matcher {text:?}: {e}"))?;
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("matcher {text:?}: bad regex: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    pub fn equal(name: &str, value: &str) -> Self {
        Matcher {
            name: name.to_string(),
            op: Op::Equal,
            value: value.to_string(),
            regex: None,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (Op::Equal, _) => actual == self.value,
            (Op::NotEqual, _) => actual != self.value,
            (Op::Regex, Some(re)) => re.is_match(actual),
            (Op::NotRegex, Some(re)) => !re.is_match(actual),
            // Unreachable by construction: regex ops always carry a compiled regex.
            (Op::Regex | Op::NotRegex, None) => false,
        }
    }
}

impl TryFrom<String> for Matcher {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Matcher::parse(&text)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators_follow_alertmanager() {
        let l = labels(&[("severity", "critical"), ("cluster", "gp-prod")]);
        assert!(Matcher::parse("severity=\"critical\"")
            .expect("m")
            .matches(&l));
        assert!(Matcher::parse("severity=critical").expect("m").matches(&l));
        assert!(!Matcher::parse("severity!=critical").expect("m").matches(&l));
        assert!(Matcher::parse("cluster=~\"gp-.*\"").expect("m").matches(&l));
        assert!(!Matcher::parse("cluster!~\"gp-.*\"").expect("m").matches(&l));
        assert!(Matcher::parse("cluster!=\"other\"").expect("m").matches(&l));
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let l = labels(&[("cluster", "gp-prod-2")]);
        assert!(!Matcher::parse("cluster=~\"gp-prod\"")
            .expect("m")
            .matches(&l));
        assert!(!Matcher::parse("cluster=~\"prod\"").expect("m").matches(&l));
        assert!(Matcher::parse("cluster=~\"gp-prod|gp-prod-2\"")
            .expect("m")
            .matches(&l));
        assert!(Matcher::parse("cluster!~\"prod\"").expect("m").matches(&l));
    }

    #[test]
    fn missing_labels_match_as_empty() {
        let l = labels(&[]);
        assert!(Matcher::parse("team=\"\"").expect("m").matches(&l));
        assert!(!Matcher::parse("team!=\"\"").expect("m").matches(&l));
        assert!(Matcher::parse("team=~\".*\"").expect("m").matches(&l));
        assert!(!Matcher::parse("team=~\".+\"").expect("m").matches(&l));
    }

    #[test]
    fn quoted_values_unescape() {
        let m = Matcher::parse(r#"summary="say \"hi\"""#).expect("m");
        assert_eq!(m.value, "say \"hi\"");
    }

    #[test]
    fn bad_matchers_are_rejected_with_a_reason() {
        for bad in [
            "severity",
            "=critical",
            "1abc=x",
            "a=~\"(\"",
            "a=\"open",
            "a=\"x\\q\"",
            "a=b\"c",
        ] {
            let err = Matcher::parse(bad).expect_err(bad);
            assert!(err.contains("matcher"), "{bad}: {err}");
        }
    }
}
