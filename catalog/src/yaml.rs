//! Every YAML file of the workspace (the exporter's `--config.file` and `--web.config.file`,
//! the remediator's policy) is read here, with serde-saphyr, so every error names its line
//! the same way.

use serde::de::DeserializeOwned;

/// A YAML error: where, and what (without the source snippet serde-saphyr renders after the
/// message: the caller names the file). Displayed as `line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct YamlError {
    /// 1-based line of the problem, when known.
    pub line: Option<u64>,
    /// 1-based column of the problem, when known.
    pub column: Option<u64>,
    /// What is wrong, in serde's words.
    pub message: String,
}

impl YamlError {
    fn render(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("line {line}, column {column}: {}", self.message),
            (Some(line), None) => format!("line {line}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// Deserializes `text`; errors name their line.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let location = error.location();
        YamlError {
            line: location.map(|at| at.line()),
            column: location.map(|at| at.column()),
            message: first_line(&error.to_string()),
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
        assert!(error.to_string().starts_with("line 2, column"), "{error}");
        assert_eq!(error.to_string().matches("line").count(), 1, "{error}");
    }
}
