//! The keys a config file may hold: those of the options of either role (a server reads a file
//! that also has the client's keys, as the original's one config struct did), the flight
//! recorder's, and `destination`, which the original parses and never uses
//!
//! A key outside them is an error rather than passed over, so that a typo (`"pasword"`) does not
//! silently leave an option at its default. The lists come from the option structs themselves:
//! serde's derive names the fields of a struct when it asks a deserializer for one, and
//! [`struct_keys`] reads them there.

use crate::args::{ClientKeys, CommonArgs, KcpArgs, ServerKeys};
use crate::record::RecordArgs;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess};
use std::cell::Cell;
use std::fmt;

/// Keys of the original's files that set nothing, there or here
const IGNORED: &[&str] = &["destination"];
/// The key of the KCP tuning object, whose own keys are [`KcpArgs`]'s
const KCP_TUNING: &str = "kcp-tuning";
/// A misspelt key is at most this many single-character edits from the key it suggests
const SUGGEST_WITHIN: usize = 2;

/// Checks that every key of the JSON object `text`, and of its `kcp-tuning` object, is known;
/// the error names the first unknown key, with a known one it may be a typo of, and its position
pub(crate) fn check(text: &str) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Object::top().deserialize(&mut de)?;
    de.end()
}

/// A JSON object whose keys must be among `known`; `within` names it when it is nested
struct Object {
    known: Vec<&'static str>,
    within: Option<&'static str>,
}

impl Object {
    /// The file's top level
    fn top() -> Self {
        let mut known = struct_keys::<CommonArgs>().to_vec();
        known.extend(struct_keys::<ClientKeys>());
        known.extend(struct_keys::<ServerKeys>());
        known.extend(struct_keys::<RecordArgs>());
        known.extend(IGNORED);
        Self {
            known,
            within: None,
        }
    }

    /// The `kcp-tuning` object
    fn kcp_tuning() -> Self {
        Self {
            known: struct_keys::<KcpArgs>().to_vec(),
            within: Some(KCP_TUNING),
        }
    }

    /// The message about `key`, which is not known here
    fn unknown(&self, key: &str) -> String {
        let mut message = format!("unknown key {key:?}");
        if let Some(name) = self.within {
            message.push_str(&format!(" in {name}"));
        }
        let closest = self
            .known
            .iter()
            .map(|k| (edits(key, k), k))
            .min_by_key(|(n, _)| *n);
        if let Some((n, k)) = closest
            && n <= SUGGEST_WITHIN
        {
            message.push_str(&format!(" (did you mean {k:?}?)"));
        }
        message
    }
}

impl<'de> DeserializeSeed<'de> for Object {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for Object {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.within {
            Some(name) => write!(f, "a {name} object"),
            None => f.write_str("an object of options"),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if self.within.is_none() && key == KCP_TUNING {
                map.next_value_seed(Self::kcp_tuning())?;
            } else if self.known.contains(&key.as_str()) {
                map.next_value::<IgnoredAny>()?;
            } else {
                return Err(de::Error::custom(self.unknown(&key)));
            }
        }
        Ok(())
    }
}

/// The keys serde's derive reads for `T`: the field list (renamed, skipped ones left out) that
/// it hands [`Deserializer::deserialize_struct`]
fn struct_keys<T: DeserializeOwned>() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    // the probe notes the list and refuses to deserialize, so the result is always an error
    let _ = T::deserialize(FieldProbe(&fields));
    fields.get()
}

/// A deserializer that notes the field list of the struct asked of it and produces nothing
struct FieldProbe<'a>(&'a Cell<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct names its keys"))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(de::Error::custom("keys noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Levenshtein distance: the single-character insertions, deletions and substitutions that
/// turn `a` into `b`
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn keys_come_from_the_option_structs() {
        let top = Object::top().known;
        for key in [
            "listen-devices",
            "upstream-device",
            "password",
            "monitor-address",
            "kcp-tuning",
            "verbose",
            "port",
            "sources",
            "server",
            "publish",
            "threads",
            "record",
            "record-max-mb",
            "destination",
        ] {
            assert!(top.contains(&key), "{key} missing from {top:?}");
        }
        // `-c` is the command line's alone
        assert!(!top.contains(&"config"));
        assert_eq!(
            Object::kcp_tuning().known,
            [
                "mtu",
                "sndwnd",
                "rcvwnd",
                "datashard",
                "parityshard",
                "acknodelay",
                "nodelay",
                "interval",
                "resend",
                "nc"
            ]
        );
    }

    #[test]
    fn known_keys_pass_whatever_their_values() {
        let text = r#"{"port": "not checked here", "sources": [], "server": null,
            "kcp-tuning": {"mtu": 1, "nc": 1}, "destination": "x", "record": "r.pcapng"}"#;
        check(text).unwrap();
        check("{}").unwrap();
    }

    #[test]
    fn an_unknown_key_is_named_with_its_position() {
        assert_eq!(
            error("{\n  \"port\": 1,\n  \"pasword\": \"x\"\n}"),
            "unknown key \"pasword\" (did you mean \"password\"?) at line 3 column 11"
        );
        assert_eq!(
            error(r#"{"kcp-tuning": {"sndwindow": 64}}"#),
            "unknown key \"sndwindow\" in kcp-tuning at line 1 column 27"
        );
        assert_eq!(
            error(r#"{"some-future-key": 1}"#),
            "unknown key \"some-future-key\" at line 1 column 18"
        );
        // kcp-tuning's keys belong in their object only
        assert!(error(r#"{"sndwnd": 64}"#).starts_with("unknown key \"sndwnd\""));
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert_eq!(
            error("[1]"),
            "invalid type: sequence, expected an object of options at line 1 column 0"
        );
        assert_eq!(
            error(r#"{"kcp-tuning": 5}"#),
            "invalid type: integer `5`, expected a kcp-tuning object at line 1 column 16"
        );
        assert!(error("{\"port\": }").starts_with("expected value"));
        assert!(error("{} {}").starts_with("trailing characters"));
    }

    #[test]
    fn edit_distance() {
        assert_eq!(edits("password", "password"), 0);
        assert_eq!(edits("pasword", "password"), 1);
        assert_eq!(edits("sorces", "sources"), 1);
        assert_eq!(edits("mtu", "kcp"), 3);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("kcp-sndwnd", "sndwnd"), 4);
    }
}
