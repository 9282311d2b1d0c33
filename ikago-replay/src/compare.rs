//! Comparing the output with an expected capture, and a readable diff of the first differences

use crate::capture::Frame;
use crate::decode::describe;
use std::fmt::Write;
use std::time::Duration;

/// How far ahead to look for the next matching frame after a mismatch
const RESYNC_WINDOW: usize = 16;
/// Bytes shown from the first differing byte
const HEX_CONTEXT: usize = 12;

/// One difference between the expected and the actual output
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// An expected frame our machine did not transmit
    Missing {
        /// Its index in the expected capture
        expected: usize,
    },
    /// A frame our machine transmitted that was not expected
    Extra {
        /// Its index in our output
        actual: usize,
    },
    /// Frames in the same place that differ
    Changed {
        /// Index in the expected capture
        expected: usize,
        /// Index in our output
        actual: usize,
    },
}

fn same(a: &Frame, b: &Frame, check_time: bool) -> bool {
    a.interface == b.interface && a.data == b.data && (!check_time || a.time == b.time)
}

/// `frames` in the order they are compared: by time (with `check_time`), then by interface,
/// each interface keeping its own order (captures taken per interface do not order the frames
/// of one instant across interfaces)
pub fn canonical(frames: &[Frame], check_time: bool) -> Vec<Frame> {
    let mut v = frames.to_vec();
    if check_time {
        v.sort_by(|a, b| (a.time, &a.interface).cmp(&(b.time, &b.interface)));
    } else {
        v.sort_by(|a, b| a.interface.cmp(&b.interface));
    }
    v
}

/// Aligns two frame lists (put them in [`canonical`] order first) and lists their differences
///
/// Frames are equal when their interface and bytes are (and their timestamps, with
/// `check_time`). After a mismatch, a frame inserted or left out is recognised when the next
/// frames match again within a few frames; otherwise the pair is reported as changed.
pub fn compare(expected: &[Frame], actual: &[Frame], check_time: bool) -> Vec<Difference> {
    let (mut i, mut j) = (0, 0);
    let mut diffs = Vec::new();
    while i < expected.len() || j < actual.len() {
        match (expected.get(i), actual.get(j)) {
            (Some(e), Some(a)) if same(e, a, check_time) => {
                i += 1;
                j += 1;
            }
            (Some(e), Some(a)) => {
                let extra = (1..=RESYNC_WINDOW)
                    .find(|&k| actual.get(j + k).is_some_and(|x| same(e, x, check_time)));
                let missing = (1..=RESYNC_WINDOW)
                    .find(|&k| expected.get(i + k).is_some_and(|x| same(x, a, check_time)));
                match (extra, missing) {
                    (Some(k), m) if m.is_none_or(|m| k <= m) => {
                        diffs.extend((j..j + k).map(|actual| Difference::Extra { actual }));
                        j += k;
                    }
                    (_, Some(k)) => {
                        diffs.extend((i..i + k).map(|expected| Difference::Missing { expected }));
                        i += k;
                    }
                    _ => {
                        diffs.push(Difference::Changed {
                            expected: i,
                            actual: j,
                        });
                        i += 1;
                        j += 1;
                    }
                }
            }
            (Some(_), None) => {
                diffs.push(Difference::Missing { expected: i });
                i += 1;
            }
            (None, Some(_)) => {
                diffs.push(Difference::Extra { actual: j });
                j += 1;
            }
            (None, None) => break,
        }
    }
    diffs
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn at(t: Duration, start: Duration) -> String {
    let d = t.saturating_sub(start);
    format!("+{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

fn line(f: &Frame, start: Duration) -> String {
    format!(
        "{} {} {}",
        f.interface,
        at(f.time, start),
        describe(&f.data)
    )
}

/// A readable report of the first `max` differences; `start` is the time shown as +0
pub fn render(
    diffs: &[Difference],
    expected: &[Frame],
    actual: &[Frame],
    start: Duration,
    max: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "output differs from the expected capture: {} difference(s); {} frames expected, {} transmitted",
        diffs.len(),
        expected.len(),
        actual.len()
    );
    for d in diffs.iter().take(max) {
        let _ = match *d {
            Difference::Missing { expected: i } => writeln!(
                s,
                "- expected frame #{i} missing:\n    {}",
                line(&expected[i], start)
            ),
            Difference::Extra { actual: j } => writeln!(
                s,
                "+ unexpected frame #{j}:\n    {}",
                line(&actual[j], start)
            ),
            Difference::Changed {
                expected: i,
                actual: j,
            } => {
                let (e, a) = (&expected[i], &actual[j]);
                let _ = writeln!(s, "~ expected frame #{i} / transmitted frame #{j} differ:");
                let _ = writeln!(s, "    expected: {}", line(e, start));
                let _ = writeln!(s, "    actual:   {}", line(a, start));
                match e.data.iter().zip(&a.data).position(|(x, y)| x != y) {
                    Some(k) => writeln!(
                        s,
                        "    first differing byte {k} (lengths {} / {}): expected {} / actual {}",
                        e.data.len(),
                        a.data.len(),
                        hex(&e.data[k..(k + HEX_CONTEXT).min(e.data.len())]),
                        hex(&a.data[k..(k + HEX_CONTEXT).min(a.data.len())])
                    ),
                    None if e.data.len() != a.data.len() => {
                        writeln!(
                            s,
                            "    lengths differ: {} / {} (one is a prefix of the other)",
                            e.data.len(),
                            a.data.len()
                        )
                    }
                    None if e.interface != a.interface => {
                        writeln!(s, "    same bytes on another interface")
                    }
                    None => writeln!(s, "    same bytes at another time"),
                }
            }
        };
    }
    if diffs.len() > max {
        let _ = writeln!(s, "... {} more", diffs.len() - max);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(b: u8) -> Frame {
        Frame {
            interface: "wan0".into(),
            time: Duration::from_secs(u64::from(b)),
            data: vec![b; 20],
        }
    }

    #[test]
    fn equal_lists_have_no_differences() {
        let a: Vec<_> = (0..5).map(f).collect();
        assert!(compare(&a, &a, true).is_empty());
    }

    #[test]
    fn insertions_deletions_and_changes_are_told_apart() {
        let e: Vec<_> = [1, 2, 3, 4, 5].map(f).to_vec();
        let a: Vec<_> = [1, 9, 2, 3, 5, 7].map(f).to_vec();
        let d = compare(&e, &a, true);
        assert_eq!(
            d,
            [
                Difference::Extra { actual: 1 },
                Difference::Missing { expected: 3 },
                Difference::Extra { actual: 5 }
            ]
        );
        let mut changed = e.clone();
        changed[2].data[5] = 0xee;
        let d = compare(&e, &changed, true);
        assert_eq!(
            d,
            [Difference::Changed {
                expected: 2,
                actual: 2
            }]
        );
        let text = render(&d, &e, &changed, Duration::ZERO, 10);
        assert!(
            text.contains("first differing byte 5 (lengths 20 / 20): expected 03 03"),
            "{text}"
        );
        let mut later = e.clone();
        later[0].time += Duration::from_millis(1);
        assert_eq!(compare(&e, &later, true).len(), 1);
        assert!(compare(&e, &later, false).is_empty());
    }
}
