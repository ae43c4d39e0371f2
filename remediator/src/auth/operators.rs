//! The operators file (`--auth.operators-file`): one operator per line, `name token`.
//!
//! Each operator has their own token, so the name recorded for a decision is proven by the
//! credential instead of claimed by the client. Errors name the line and never echo a token.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Secret;

/// Shorter tokens could be guessed; `openssl rand -hex 32` gives 64 characters.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum OperatorsFileError {
    #[error("cannot read operators file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "operators file {path} is readable or writable by every user (mode {mode:04o}): \
         it holds the tokens that approve actions; chmod 0640 (or 0600) it"
    )]
    WorldAccessible { path: String, mode: u32 },
    #[error("operators file {path} is not UTF-8 text")]
    NotText { path: String },
    #[error("operators file {path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("operators file {path} names no operator (expected lines of `name token`)")]
    NoOperators { path: String },
}

#[derive(Clone)]
struct Operator {
    name: String,
    secret: Secret,
    line: usize,
}

/// The named operators, each with the digest of their token.
#[derive(Clone)]
pub struct Operators {
    entries: Vec<Operator>,
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

impl Operators {
    /// Reads and checks the file: not accessible to every user, one `name token` per line
    /// (`#` comments and blank lines allowed), no duplicate names or tokens.
    pub fn load(path: &Path) -> Result<Operators, OperatorsFileError> {
        let shown = path.display().to_string();
        let read_error = |source| OperatorsFileError::Read {
            path: shown.clone(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            return Err(OperatorsFileError::WorldAccessible {
                path: shown,
                mode: mode & 0o7777,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| OperatorsFileError::NotText {
            path: shown.clone(),
        })?;
        Operators::parse(&text, &shown)
    }

    /// Parses the file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Operators, OperatorsFileError> {
        let mut entries: Vec<Operator> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let error = |reason: String| OperatorsFileError::Line {
                path: path.to_string(),
                line,
                reason,
            };
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            let (name, token) = match fields.as_slice() {
                [name, token] => (*name, *token),
                [_] => return Err(error("no token: expected `name token`".into())),
                more => {
                    return Err(error(format!(
                        "expected `name token`, found {} fields (names and tokens hold no spaces)",
                        more.len()
                    )))
                }
            };
            // The name is not echoed while unchecked: the fields may be swapped.
            if !valid_name(name) {
                return Err(error(
                    "the name (first field) may hold only letters, digits, '.', '_', '@' \
                     and '-', at most 64 characters"
                        .into(),
                ));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(error(format!(
                    "the token of {name} is shorter than {MIN_TOKEN_LEN} characters \
                     (generate one with `openssl rand -hex 32`)"
                )));
            }
            if let Some(other) = entries.iter().find(|o| o.name == name) {
                return Err(error(format!(
                    "operator {name} is already defined on line {}",
                    other.line
                )));
            }
            if let Some(other) = entries.iter().find(|o| o.secret.matches(token.as_bytes())) {
                return Err(error(format!(
                    "the token of {name} is also the token of {} (line {}): \
                     every operator needs their own",
                    other.name, other.line
                )));
            }
            entries.push(Operator {
                name: name.to_string(),
                secret: Secret::new(token.as_bytes()),
                line,
            });
        }
        if entries.is_empty() {
            return Err(OperatorsFileError::NoOperators {
                path: path.to_string(),
            });
        }
        Ok(Operators { entries })
    }

    /// The operator holding `token`. Every entry is compared, so the time taken does not
    /// depend on which one (if any) matched.
    pub fn find(&self, token: &[u8]) -> Option<&str> {
        let mut found = None;
        for operator in &self.entries {
            if operator.secret.matches(token) {
                found = Some(operator.name.as_str());
            }
        }
        found
    }

    /// The operator called `name` (names are not secret: no constant time needed).
    pub fn named(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.name.as_str())
    }

    /// Whether any operator holds `token`.
    pub fn holds(&self, token: &[u8]) -> bool {
        self.find(token).is_some()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|o| o.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice-token-0123456789";
    const BOB: &str = "bob-token-0123456789ab";

    fn line_error(text: &str) -> (usize, String) {
        match Operators::parse(text, "ops") {
            Err(OperatorsFileError::Line { line, reason, .. }) => (line, reason),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("accepted {text:?}"),
        }
    }

    #[test]
    fn names_come_from_the_token() {
        let text = format!("# operators\n\nalice {ALICE}\n  bob\t{BOB}  # not a comment here\n");
        // A trailing comment would be a third field: refused, with its line.
        assert_eq!(line_error(&text).0, 4);
        let text = format!("# operators\n\nalice {ALICE}\n  bob\t{BOB}\n");
        let operators = Operators::parse(&text, "ops").expect("parse");
        assert_eq!(operators.find(ALICE.as_bytes()), Some("alice"));
        assert_eq!(operators.find(BOB.as_bytes()), Some("bob"));
        assert_eq!(operators.find(b"alice-token-012345678"), None);
        assert_eq!(operators.find(b""), None);
        assert_eq!(operators.names().collect::<Vec<_>>(), ["alice", "bob"]);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number_and_no_token() {
        let (line, reason) = line_error(&format!("alice {ALICE}\nbob\n"));
        assert_eq!(line, 2);
        assert!(reason.contains("no token"), "{reason}");
        let (line, reason) = line_error(&format!("alice {ALICE}\n\nalice {BOB}\n"));
        assert_eq!(line, 3);
        assert!(reason.contains("already defined on line 1"), "{reason}");
        assert!(!reason.contains(BOB), "{reason}");
        let (line, reason) = line_error(&format!("alice {ALICE}\nbob {ALICE}\n"));
        assert_eq!(line, 2);
        assert!(reason.contains("also the token of alice"), "{reason}");
        assert!(!reason.contains(ALICE), "{reason}");
        let (line, reason) = line_error("# c\ncarol short\n");
        assert_eq!(line, 2);
        assert!(reason.contains("shorter than 16"), "{reason}");
        let (line, reason) = line_error(&format!("{ALICE}$ alice\n"));
        assert_eq!(line, 1);
        assert!(!reason.contains(ALICE), "{reason}");
        assert!(matches!(
            Operators::parse("# nobody\n\n", "ops"),
            Err(OperatorsFileError::NoOperators { .. })
        ));
    }

    #[test]
    fn files_every_user_can_read_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("operators");
        std::fs::write(&path, format!("alice {ALICE}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = Operators::load(&path).err().expect("refused");
        assert!(matches!(
            error,
            OperatorsFileError::WorldAccessible { mode: 0o644, .. }
        ));
        assert!(error.to_string().contains("chmod 0640"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let operators = Operators::load(&path).expect("load");
        assert!(operators.holds(ALICE.as_bytes()));
        std::fs::write(&path, b"alice \xff\xfe-0123456789abcdef\n").expect("write");
        assert!(matches!(
            Operators::load(&path),
            Err(OperatorsFileError::NotText { .. })
        ));
    }
}
