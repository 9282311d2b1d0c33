//! Recordings: pcapng files that carry their scenario, every input the machine was fed and every
//! frame it transmitted, in the order the machine saw them
//!
//! The live runners write them with `--record FILE` (ikago-host's recorder encodes its blocks
//! with the `encode_*` functions here); `ikago-replay FILE` replays them with nothing else, and
//! `ikago-replay FILE --expect FILE` reproduces the transmitted frames byte for byte.
//!
//! # Format, version 1
//!
//! One pcapng section, little-endian, timestamps in nanoseconds since the Unix epoch:
//! 1. the section header block;
//! 2. one interface description block per device of the machine, in device order (`if_name`,
//!    Ethernet, `if_tsresol` 9);
//! 3. a *scenario block*: the format version and the scenario, a JSON object in the scenario
//!    file's own format (see [`crate::scenario`]) with `role`, `interfaces`, `start` (when the
//!    machine was created), `seed` (its CSPRNG seed, 64 hex digits) and the config-file keys of
//!    its options, the password left out;
//! 4. the frames the machine transmitted when it was created, then for each input in the order
//!    it was fed: the input (a frame as an enhanced packet block with `epb_flags` inbound, a
//!    timer wake-up as a *timer block* with its `now`) followed by the frames the machine
//!    transmitted before its next input (enhanced packet blocks with `epb_flags` outbound,
//!    stamped with the input's time). An input and the frames after it form a *group*; the frames
//!    transmitted at creation are group 0;
//! 5. an *end block* when the recorder closed the file: how many groups are whole, why it
//!    stopped early if it did, and how many entries it could not record.
//!
//! The recorder's blocks are copiable custom blocks (type `0x00000BAD`) with the private
//! enterprise number [`PEN`] (32473, which RFC 5612 reserves for documentation: the project has
//! no number of its own, so the payload starts with the magic `IKGO` as well). Payload, all
//! integers little-endian: `IKGO`, the kind (one byte), three zero bytes, then by kind:
//!
//! | kind | block | fields |
//! |---|---|---|
//! | 1 | scenario | version u32, length u32, that many bytes of UTF-8 JSON |
//! | 2 | timer | `now`, u64 nanoseconds since the Unix epoch |
//! | 3 | end | whole groups u64, entries not recorded u64, reason u32 ([`StopReason`]) |
//!
//! A file whose scenario block has another version is refused. A file without an end block (the
//! recorder was killed), cut inside a block or garbled after its scenario is replayed up to its
//! last group that is surely whole: the group it stops in is left out, since frames of it may be
//! missing.

use crate::capture::{CaptureError, Frame};
use std::time::Duration;

/// The private enterprise number of the recorder's custom blocks (RFC 5612's documentation number)
pub const PEN: u32 = 32473;
/// The first bytes of every payload of the recorder's custom blocks
pub const MAGIC: [u8; 4] = *b"IKGO";
/// The version of the format this crate writes and reads
pub const VERSION: u32 = 1;

/// Block type of a section header block
const SHB: u32 = 0x0A0D_0D0A;
/// Block type of an interface description block
const IDB: u32 = 1;
/// Block type of an enhanced packet block
const EPB: u32 = 6;
/// Block type of a copiable custom block
const CUSTOM: u32 = 0x0000_0BAD;
/// The byte-order magic of a section header block
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Link type Ethernet
const LINKTYPE_ETHERNET: u16 = 1;

/// Option codes
const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Kinds of the recorder's custom blocks
const KIND_SCENARIO: u8 = 1;
const KIND_TIMER: u8 = 2;
const KIND_END: u8 = 3;

/// Which way a frame went, as `epb_flags` says (bits 0-1)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Fed to the machine
    Inbound,
    /// Transmitted by the machine
    Outbound,
}

impl Direction {
    /// The `epb_flags` word
    fn flags(self) -> u32 {
        match self {
            Self::Inbound => 1,
            Self::Outbound => 2,
        }
    }

    /// The direction an `epb_flags` word gives, if any
    pub fn from_flags(flags: u32) -> Option<Self> {
        match flags & 3 {
            1 => Some(Self::Inbound),
            2 => Some(Self::Outbound),
            _ => None,
        }
    }
}

/// Why the recorder stopped before the end of the run
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It did not: it recorded until the runner stopped
    Closed,
    /// The file reached `--record-max-mb`
    SizeLimit,
    /// The queue to the writer thread was full (the disk was slower than the traffic)
    QueueFull,
    /// Writing the file failed
    WriteError,
    /// The runner applied a reloaded config (SIGHUP), which a replay of the scenario cannot follow
    Reconfigured,
}

impl StopReason {
    fn code(self) -> u32 {
        match self {
            Self::Closed => 0,
            Self::SizeLimit => 1,
            Self::QueueFull => 2,
            Self::WriteError => 3,
            Self::Reconfigured => 4,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        [
            Self::Closed,
            Self::SizeLimit,
            Self::QueueFull,
            Self::WriteError,
            Self::Reconfigured,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// What happened, in words
    pub fn describe(self) -> &'static str {
        match self {
            Self::Closed => "closed by the recorder",
            Self::SizeLimit => "stopped by the recorder: the file reached --record-max-mb",
            Self::QueueFull => {
                "stopped by the recorder: its queue was full (the disk was slower than the traffic)"
            }
            Self::WriteError => "stopped by the recorder: writing the file failed",
            Self::Reconfigured => "stopped by the recorder: the runner reloaded its config",
        }
    }
}

/// What the end block says
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Groups written whole, counting group 0 (the frames transmitted at creation)
    pub whole_groups: u64,
    /// Inputs and transmitted frames the recorder could not record
    pub not_recorded: u64,
    /// Why it stopped
    pub reason: StopReason,
}

// ---- encoding, for the recorder: every function appends one block to `out` ----

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Zero bytes up to the next multiple of 4 from `start`
fn pad(out: &mut Vec<u8>, start: usize) {
    let n = (4 - (out.len() - start) % 4) % 4;
    out.extend_from_slice(&[0; 3][..n]);
}

/// Appends one option (code, length, value padded to 4 bytes)
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    put_u16(out, code);
    put_u16(out, u16::try_from(value.len()).unwrap_or(u16::MAX));
    let start = out.len();
    out.extend_from_slice(&value[..value.len().min(usize::from(u16::MAX))]);
    pad(out, start);
}

/// Appends a block of type `kind` whose body `body` writes, with its lengths and padding
fn block(out: &mut Vec<u8>, kind: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    put_u32(out, kind);
    put_u32(out, 0);
    body(out);
    pad(out, start);
    let len = u32::try_from(out.len() - start + 4).unwrap_or(u32::MAX);
    put_u32(out, len);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}

/// The section header block, naming the recording program
pub fn encode_section_header(out: &mut Vec<u8>, application: &str) {
    block(out, SHB, |out| {
        put_u32(out, BYTE_ORDER_MAGIC);
        put_u16(out, 1);
        put_u16(out, 0);
        put_u64(out, u64::MAX);
        option(out, SHB_USERAPPL, application.as_bytes());
        option(out, OPT_END, &[]);
    });
}

/// The interface description block of the device named `name` (Ethernet, nanoseconds)
pub fn encode_interface(out: &mut Vec<u8>, name: &str) {
    block(out, IDB, |out| {
        put_u16(out, LINKTYPE_ETHERNET);
        put_u16(out, 0);
        put_u32(out, 0);
        option(out, IF_NAME, name.as_bytes());
        option(out, IF_TSRESOL, &[9]);
        option(out, OPT_END, &[]);
    });
}

/// A frame fed to (`Inbound`) or transmitted by (`Outbound`) the machine on device `interface`
pub fn encode_frame(
    out: &mut Vec<u8>,
    interface: u32,
    time: Duration,
    data: &[u8],
    direction: Direction,
) {
    block(out, EPB, |out| {
        let ns = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        put_u32(out, interface);
        put_u32(out, (ns >> 32) as u32);
        put_u32(out, ns as u32);
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        put_u32(out, len);
        put_u32(out, len);
        let start = out.len();
        out.extend_from_slice(data);
        pad(out, start);
        option(out, EPB_FLAGS, &direction.flags().to_le_bytes());
        option(out, OPT_END, &[]);
    });
}

/// Appends one of the recorder's custom blocks of `kind` whose fields `fields` writes
fn custom(out: &mut Vec<u8>, kind: u8, fields: impl FnOnce(&mut Vec<u8>)) {
    block(out, CUSTOM, |out| {
        put_u32(out, PEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[kind, 0, 0, 0]);
        fields(out);
    });
}

/// The scenario block: the format version and the scenario's JSON
pub fn encode_scenario(out: &mut Vec<u8>, json: &str) {
    custom(out, KIND_SCENARIO, |out| {
        put_u32(out, VERSION);
        put_u32(out, u32::try_from(json.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(json.as_bytes());
    });
}

/// A timer wake-up: the machine was fed `Input::Timeout(now)`, `now` being `time`
pub fn encode_timer(out: &mut Vec<u8>, time: Duration) {
    custom(out, KIND_TIMER, |out| {
        put_u64(out, u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
    });
}

/// The end block
pub fn encode_end(out: &mut Vec<u8>, end: &End) {
    custom(out, KIND_END, |out| {
        put_u64(out, end.whole_groups);
        put_u64(out, end.not_recorded);
        put_u32(out, end.reason.code());
    });
}

// ---- decoding ----

/// One of the recorder's custom blocks
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// The scenario block
    Scenario {
        /// The format version
        version: u32,
        /// The scenario's JSON (empty for a version other than [`VERSION`], whose layout this
        /// crate does not know)
        json: String,
    },
    /// A timer wake-up at this time since the Unix epoch
    Timer(Duration),
    /// The end block
    End(End),
}

fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(p: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(p.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes the payload (after the PEN) of a custom block with our [`PEN`]; `None` when it is
/// not ours (no [`MAGIC`]); an error message when it is ours but malformed
pub fn decode_marker(payload: &[u8]) -> Option<Result<Marker, String>> {
    if payload.get(..4) != Some(&MAGIC[..]) {
        return None;
    }
    let short = |what: &str| format!("{what} block too short ({} bytes)", payload.len());
    let body = 8;
    Some(match payload.get(4) {
        Some(&KIND_SCENARIO) => (|| {
            let version = u32_at(payload, body).ok_or_else(|| short("scenario"))?;
            if version != VERSION {
                return Ok(Marker::Scenario {
                    version,
                    json: String::new(),
                });
            }
            let len = u32_at(payload, body + 4).ok_or_else(|| short("scenario"))? as usize;
            let json = payload
                .get(body + 8..body + 8 + len)
                .ok_or_else(|| short("scenario"))?;
            let json = String::from_utf8(json.to_vec())
                .map_err(|_| "scenario block is not UTF-8".to_owned())?;
            Ok(Marker::Scenario { version, json })
        })(),
        Some(&KIND_TIMER) => u64_at(payload, body)
            .map(|ns| Marker::Timer(Duration::from_nanos(ns)))
            .ok_or_else(|| short("timer")),
        Some(&KIND_END) => (|| {
            let field = |at| u64_at(payload, body + at).ok_or_else(|| short("end"));
            let code = u32_at(payload, body + 16).ok_or_else(|| short("end"))?;
            Ok(Marker::End(End {
                whole_groups: field(0)?,
                not_recorded: field(8)?,
                reason: StopReason::from_code(code)
                    .ok_or_else(|| format!("end block with unknown reason {code}"))?,
            }))
        })(),
        Some(k) => Err(format!("unknown IkaGo block kind {k}")),
        None => Err(short("IkaGo")),
    })
}

/// One input of a recording
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// A frame, fed on the device of its interface at its time
    Frame(Frame),
    /// A timer wake-up: `Input::Timeout` at this time since the Unix epoch
    Timer(Duration),
}

impl Fed {
    /// When it was fed, since the Unix epoch
    pub fn time(&self) -> Duration {
        match self {
            Self::Frame(f) => f.time,
            Self::Timer(t) => *t,
        }
    }
}

/// How a recording ends
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// With an end block
    Ended(End),
    /// Without one: the recorder did not close the file (it was killed), and the bytes end at
    /// `offset`, inside a block when `error` says so
    Cut {
        /// Where the readable part ends
        offset: usize,
        /// Why reading stopped there, if a block was cut or garbled
        error: Option<CaptureError>,
    },
}

/// A recording, as far as it is whole
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The scenario's JSON
    pub scenario: String,
    /// Every input of the whole groups, in the order it was fed
    pub inputs: Vec<Fed>,
    /// Every frame transmitted in the whole groups, in order
    pub outputs: Vec<Frame>,
    /// How the file ends
    pub ending: Ending,
    /// Inputs read but left out, because their group is not surely whole
    pub left_out: usize,
}

/// What a capture file holds, block by block, in file order (see [`crate::capture::read_items`])
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A packet
    Packet {
        /// The frame
        frame: Frame,
        /// Its direction, when `epb_flags` gives one
        direction: Option<Direction>,
        /// Where its block starts
        offset: usize,
    },
    /// One of the recorder's custom blocks
    Marker {
        /// What it says
        marker: Marker,
        /// Where it starts
        offset: usize,
    },
}

/// Builds a recording from its scenario block (`version`, JSON, offset) and the items after it,
/// read up to `stopped` (offset and error) when reading stopped before the end of the `len` bytes
pub fn assemble(
    (version, scenario, offset): (u32, String, usize),
    items: impl Iterator<Item = Item>,
    stopped: Option<(usize, CaptureError)>,
    len: usize,
) -> Result<Recording, CaptureError> {
    if version != VERSION {
        return Err(CaptureError::Version { version, offset });
    }
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    // outputs.len() when each group opened: group 0 at the start, group i + 1 at inputs[i]
    let mut group_starts = vec![0usize];
    let (mut end, mut stopped) = (None, stopped);
    for item in items {
        match item {
            Item::Packet {
                frame,
                direction: Some(Direction::Inbound),
                ..
            } => {
                inputs.push(Fed::Frame(frame));
                group_starts.push(outputs.len());
            }
            Item::Marker {
                marker: Marker::Timer(t),
                ..
            } => {
                inputs.push(Fed::Timer(t));
                group_starts.push(outputs.len());
            }
            Item::Packet {
                frame,
                direction: Some(Direction::Outbound),
                ..
            } => outputs.push(frame),
            Item::Packet {
                direction: None,
                offset,
                ..
            } => {
                let message = "a frame with neither inbound nor outbound in epb_flags".into();
                stopped = Some((offset, CaptureError::Recording { offset, message }));
                break;
            }
            Item::Marker {
                marker: Marker::End(e),
                ..
            } => {
                end = Some(e);
                break;
            }
            Item::Marker {
                marker: Marker::Scenario { .. },
                offset,
            } => {
                let message = "a second scenario block".into();
                stopped = Some((offset, CaptureError::Recording { offset, message }));
                break;
            }
        }
    }
    let groups = group_starts.len();
    let (whole, ending) = match end {
        Some(e) => (
            usize::try_from(e.whole_groups).map_or(groups, |w| w.min(groups)),
            Ending::Ended(e),
        ),
        None => {
            let (offset, error) = match stopped {
                Some((offset, e)) => (offset, Some(e)),
                None => (len, None),
            };
            (groups - 1, Ending::Cut { offset, error })
        }
    };
    if whole == 0 {
        let offset = match &ending {
            Ending::Cut { offset, .. } => *offset,
            Ending::Ended(_) => len,
        };
        return Err(CaptureError::Recording {
            offset,
            message: "not even the frames sent at start are whole: nothing to replay".into(),
        });
    }
    // inputs[i] opened group i + 1
    let left_out = inputs.len() - whole.saturating_sub(1).min(inputs.len());
    inputs.truncate(inputs.len() - left_out);
    outputs.truncate(group_starts.get(whole).copied().unwrap_or(outputs.len()));
    Ok(Recording {
        scenario,
        inputs,
        outputs,
        ending,
        left_out,
    })
}

impl Recording {
    /// One line on what was replayed and how the file ends
    pub fn describe(&self) -> String {
        let timers = self
            .inputs
            .iter()
            .filter(|i| matches!(i, Fed::Timer(_)))
            .count();
        let fed = format!(
            "recording: {} inputs ({} frames, {timers} timer wake-ups), {} frames transmitted",
            self.inputs.len(),
            self.inputs.len() - timers,
            self.outputs.len()
        );
        let left_out = match self.left_out {
            0 => String::new(),
            n => format!("; left out: the last {n} inputs, whose frames may be incomplete"),
        };
        match &self.ending {
            Ending::Ended(e) if e.not_recorded == 0 => {
                format!("{fed}; {}{left_out}", e.reason.describe())
            }
            Ending::Ended(e) => format!(
                "{fed}; {}, {} inputs and frames not recorded{left_out}",
                e.reason.describe(),
                e.not_recorded
            ),
            Ending::Cut { offset, error } => format!(
                "{fed}; the file has no end block (the recorder did not close it) and ends at \
                 byte {offset}{}{left_out}",
                error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Capture, read_capture_bytes};

    fn at(ms: u64) -> Duration {
        Duration::from_secs(1_764_094_060) + Duration::from_millis(ms)
    }

    fn frame(interface: &str, ms: u64, byte: u8) -> Frame {
        Frame {
            interface: interface.into(),
            time: at(ms),
            data: vec![byte; 60 + usize::from(byte)],
        }
    }

    /// A recording: an output at start, then (frame in, two out), (timer, one out), (frame in)
    fn file(end: Option<End>) -> Vec<u8> {
        let mut b = Vec::new();
        encode_section_header(&mut b, "test");
        encode_interface(&mut b, "lan0");
        encode_interface(&mut b, "wan0");
        encode_scenario(&mut b, r#"{"role":"client"}"#);
        let out = |b: &mut Vec<u8>, id, f: &Frame| {
            encode_frame(b, id, f.time, &f.data, Direction::Outbound)
        };
        out(&mut b, 1, &frame("wan0", 0, 1));
        encode_frame(
            &mut b,
            0,
            at(5),
            &frame("lan0", 5, 2).data,
            Direction::Inbound,
        );
        out(&mut b, 1, &frame("wan0", 5, 3));
        out(&mut b, 0, &frame("lan0", 5, 4));
        encode_timer(&mut b, at(9));
        out(&mut b, 1, &frame("wan0", 9, 5));
        encode_frame(
            &mut b,
            1,
            at(12),
            &frame("wan0", 12, 6).data,
            Direction::Inbound,
        );
        if let Some(e) = end {
            encode_end(&mut b, &e);
        }
        b
    }

    fn recording(bytes: &[u8]) -> Recording {
        match read_capture_bytes(bytes) {
            Ok(Capture::Recording(r)) => r,
            other => panic!("a recording expected: {other:?}"),
        }
    }

    fn bytes_of(frames: &[Frame]) -> Vec<u8> {
        frames.iter().map(|f| f.data[0]).collect()
    }

    #[test]
    fn groups_in_order_and_whole_by_the_end_block() {
        let closed = End {
            whole_groups: 4,
            not_recorded: 0,
            reason: StopReason::Closed,
        };
        let r = recording(&file(Some(closed)));
        assert_eq!(r.scenario, r#"{"role":"client"}"#);
        assert_eq!(
            r.inputs,
            [
                Fed::Frame(frame("lan0", 5, 2)),
                Fed::Timer(at(9)),
                Fed::Frame(frame("wan0", 12, 6))
            ]
        );
        assert_eq!(bytes_of(&r.outputs), [1, 3, 4, 5]);
        assert_eq!((r.left_out, &r.ending), (0, &Ending::Ended(closed)));
        assert!(
            r.describe().ends_with("closed by the recorder"),
            "{}",
            r.describe()
        );
        // the recorder stopped in group 2 (the timer's): groups 0 and 1 are whole
        let full = End {
            whole_groups: 2,
            not_recorded: 7,
            reason: StopReason::QueueFull,
        };
        let r = recording(&file(Some(full)));
        assert_eq!(r.inputs, [Fed::Frame(frame("lan0", 5, 2))]);
        assert_eq!(bytes_of(&r.outputs), [1, 3, 4]);
        assert_eq!(r.left_out, 2);
        assert!(r.describe().contains("queue was full"), "{}", r.describe());
        // no end block: the last group may lack frames and is left out
        let bytes = file(None);
        let r = recording(&bytes);
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(bytes_of(&r.outputs), [1, 3, 4, 5]);
        assert_eq!(
            r.ending,
            Ending::Cut {
                offset: bytes.len(),
                error: None
            }
        );
        // cut inside the last block
        let r = recording(&bytes[..bytes.len() - 5]);
        assert_eq!(r.inputs.len(), 1);
        assert!(
            r.describe().contains("truncated at byte"),
            "{}",
            r.describe()
        );
    }

    #[test]
    fn what_a_replay_cannot_use_is_refused() {
        let mut v2 = Vec::new();
        encode_section_header(&mut v2, "test");
        custom(&mut v2, KIND_SCENARIO, |out| {
            put_u32(out, 2);
            put_u32(out, 0);
        });
        let e = read_capture_bytes(&v2).unwrap_err().to_string();
        assert!(
            e.starts_with("recording format version 2 at byte") && e.ends_with("reads version 1)"),
            "{e}"
        );
        // garbled after the scenario: replayed up to there
        let mut odd = file(None);
        let cut = odd.len();
        custom(&mut odd, 9, |_| {});
        let r = recording(&odd);
        assert_eq!(r.inputs.len(), 2);
        assert!(
            matches!(&r.ending, Ending::Cut { offset, error: Some(_) } if *offset == cut),
            "{:?}",
            r.ending
        );
        assert!(
            r.describe().contains("unknown IkaGo block kind 9"),
            "{}",
            r.describe()
        );
        let mut stray = Vec::new();
        encode_section_header(&mut stray, "test");
        encode_timer(&mut stray, at(1));
        assert!(
            read_capture_bytes(&stray)
                .unwrap_err()
                .to_string()
                .contains("IkaGo block outside a recording")
        );
        let mut no_direction = file(None);
        let mut plain = Vec::new();
        encode_frame(&mut plain, 0, at(1), &[0; 60], Direction::Inbound);
        // epb_flags 0: neither direction
        let flags_at = plain.len() - 12;
        plain[flags_at..flags_at + 4].copy_from_slice(&0u32.to_le_bytes());
        no_direction.extend_from_slice(&plain);
        assert!(
            recording(&no_direction)
                .describe()
                .contains("neither inbound nor outbound")
        );
        // nothing whole at all
        let mut head = Vec::new();
        encode_section_header(&mut head, "test");
        encode_scenario(&mut head, "{}");
        assert!(
            read_capture_bytes(&head)
                .unwrap_err()
                .to_string()
                .contains("nothing to replay")
        );
        // a plain capture cut short stays an error
        let mut cap = Vec::new();
        encode_section_header(&mut cap, "test");
        encode_interface(&mut cap, "lan0");
        encode_frame(&mut cap, 0, at(1), &[0; 60], Direction::Inbound);
        assert!(matches!(
            read_capture_bytes(&cap[..cap.len() - 1]),
            Err(CaptureError::Truncated { .. })
        ));
        assert!(matches!(read_capture_bytes(&cap), Ok(Capture::Frames(f)) if f.len() == 1));
    }
}
