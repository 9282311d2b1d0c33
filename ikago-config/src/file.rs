//! Config files: `#` comment lines, `$VAR` expansion, then JSON (reference §9.1)

use crate::error::Error;
use crate::keys;
use std::path::Path;

/// Options that a config file can hold: parsed from the preprocessed JSON text
pub trait FileLayer: Sized {
    /// Parses JSON text (comments already blanked, variables expanded), taking the keys of these
    /// options and passing over the others
    fn from_json(text: &str) -> Result<Self, serde_json::Error>;
}

/// Reads and parses a config file, expanding variables from the process environment
pub fn load_file<T: FileLayer>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text, |name| std::env::var(name).ok()).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Parses config text after [`preprocess`], looking variables up with `env`; a key that no
/// option of either role has is an error (see [`keys`](crate::keys)), with its line and column
pub fn parse_str<T: FileLayer>(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<T, serde_json::Error> {
    let text = preprocess(text, env);
    keys::check(&text)?;
    T::from_json(&text)
}

/// Blanks the lines whose first non-blank character is `#` (keeping line numbers for error
/// messages) and expands `$NAME` and `${NAME}`, unset names becoming empty as in Go's
/// `os.ExpandEnv`; a `$` not followed by a name stays as it is
pub fn preprocess(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.trim_start().starts_with('#') {
            expand_into(&mut out, line, &env);
        }
    }
    out
}

/// Whether `c` may appear in a variable name
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Appends `line` to `out` with its variables expanded
fn expand_into(out: &mut String, line: &str, env: &impl Fn(&str) -> Option<String>) {
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() || !name.chars().all(is_name_char) {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&env(name).unwrap_or_default());
            rest = &after[used..];
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PW" => Some("secret".into()),
            "PORT" => Some("18081".into()),
            _ => None,
        }
    }

    #[test]
    fn comment_lines_are_blanked_and_lines_kept() {
        let text = "{\n  # a comment\n   #another\n  \"port\": 1 # not a comment line\n}";
        let out = preprocess(text, env);
        assert_eq!(out, "{\n\n\n  \"port\": 1 # not a comment line\n}");
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn variables_expand_in_both_forms() {
        assert_eq!(
            preprocess("\"$PW\" ${PORT}x $PORTx", env),
            "\"secret\" 18081x "
        );
        assert_eq!(preprocess("a$UNSET-b", env), "a-b");
    }

    #[test]
    fn lone_dollars_stay() {
        assert_eq!(
            preprocess("$ $$ ${} ${bad-name} $", env),
            "$ $$ ${} ${bad-name} $"
        );
        assert_eq!(preprocess("${PW", env), "${PW");
    }

    #[test]
    fn parse_reports_line_and_column() {
        let err = parse_str::<crate::CommonArgs>("{\n# c\n  \"mtu\": ,\n}", env).unwrap_err();
        assert_eq!((err.line(), err.column()), (3, 10));
    }
}
