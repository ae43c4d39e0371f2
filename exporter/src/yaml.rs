//! The exporter's YAML files (`--config.file`, `--web.config.file`) are read with
//! serde-saphyr, like the remediator's policy, so every error names its line.

use serde::de::DeserializeOwned;

/// A YAML error as one line: `line L, column C: message` (the snippet serde-saphyr renders
/// after the message is left out: the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct YamlError {
    pub line: Option<u64>,
    pub text: String,
}

/// Deserializes `text`; errors name their line.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let message = first_line(&error.to_string());
        match error.location() {
            Some(at) => YamlError {
                line: Some(at.line()),
                text: format!("line {}, column {}: {message}", at.line(), at.column()),
            },
            None => YamlError {
                line: None,
                text: message,
            },
        }
    })
}

/// The message without serde-saphyr's own position prefix and source snippet.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(line, |(_, message)| message),
        None => line,
    };
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_line_once() {
        let error =
            from_str::<std::collections::BTreeMap<String, u32>>("a: 1\nb: x\n").unwrap_err();
        assert_eq!(error.line, Some(2), "{error}");
        assert!(error.text.starts_with("line 2, column"), "{error}");
        assert_eq!(error.text.matches("line").count(), 1, "{error}");
    }
}
