//! How a line is written: the original's timestamp for the `--log` file, and the JSON object of
//! `--log-format json`

use log::Level;
use log::kv::{self, Key, Source, Value, VisitSource};
use std::fmt::{Arguments, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY/MM/DD HH:MM:SS` in UTC, the original's layout
pub fn timestamp(t: SystemTime) -> String {
    let (secs, _) = since_epoch(t);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// RFC 3339 in UTC with milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ`
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, millis) = since_epoch(t);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whole seconds and milliseconds since 1970 (0 for a clock set before it)
fn since_epoch(t: SystemTime) -> (u64, u32) {
    t.duration_since(UNIX_EPOCH)
        .map_or((0, 0), |d| (d.as_secs(), d.subsec_millis()))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm)
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The name of a level in a JSON line
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

/// One JSON object on one line: `time`, `level`, `message`, then `fields` (numbers and booleans
/// as such, anything else as its text); a field named like one of the first three is left out
pub fn json(t: SystemTime, level: Level, message: &Arguments<'_>, fields: &dyn Source) -> String {
    let mut line = format!(
        "{{\"time\":\"{}\",\"level\":\"{}\",\"message\":",
        rfc3339(t),
        level_name(level)
    );
    push_string(&mut line, &message.to_string());
    let _ = fields.visit(&mut Members(&mut line));
    line.push('}');
    line
}

/// Appends each field as a member of the object being written
struct Members<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Members<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        if matches!(key.as_str(), "time" | "level" | "message") {
            return Ok(());
        }
        self.0.push(',');
        push_string(self.0, key.as_str());
        self.0.push(':');
        if let Some(b) = value.to_bool() {
            let _ = write!(self.0, "{b}");
        } else if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else {
            push_string(self.0, &value.to_string());
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_the_originals_layout() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap day 2024
        assert_eq!(timestamp(t), "2024/02/29 12:34:56");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(timestamp(t), "2099/12/31 23:59:59");
    }

    #[test]
    fn rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn json_lines_carry_time_level_message_and_fields() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_007);
        let server = std::net::SocketAddrV4::new([198, 18, 0, 1].into(), 18081);
        let fields: &[(&str, Value<'_>)] = &[
            ("event", "connected".into()),
            ("server", Value::from_display(&server)),
            ("rtt_ms", 12u64.into()),
            ("delta", (-3i64).into()),
            ("kcp", true.into()),
            ("level", "shadowed".into()),
        ];
        let line = json(
            t,
            Level::Info,
            &format_args!("Connected to server {server} in 12 ms"),
            &fields,
        );
        assert_eq!(
            line,
            "{\"time\":\"2024-02-29T12:34:56.007Z\",\"level\":\"info\",\
             \"message\":\"Connected to server 198.18.0.1:18081 in 12 ms\",\
             \"event\":\"connected\",\"server\":\"198.18.0.1:18081\",\"rtt_ms\":12,\
             \"delta\":-3,\"kcp\":true}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["rtt_ms"], 12);
    }

    #[test]
    fn json_strings_are_escaped() {
        let line = json(
            UNIX_EPOCH,
            Level::Warn,
            &format_args!("a \"quoted\" \\ path\nand\ttab \u{1}"),
            &None::<(&str, Value<'_>)>,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "a \"quoted\" \\ path\nand\ttab \u{1}");
        assert_eq!(v["level"], "warning");
        assert!(!line.contains('\n'));
    }
}
