//! Lists in config files: a JSON array of strings, or one string with commas as on the command line

use serde::{Deserialize, Deserializer};

/// The two shapes a list may take in a file
#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    /// `["a", "b"]`
    Many(Vec<String>),
    /// `"a,b"`
    One(String),
}

/// Deserializes an optional list, trimming items and dropping empty ones
pub(crate) fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let items = match Option::<Shape>::deserialize(d)? {
        None => return Ok(None),
        Some(Shape::Many(v)) => v,
        Some(Shape::One(s)) => s.split(',').map(str::to_owned).collect(),
    };
    Ok(Some(
        items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}
