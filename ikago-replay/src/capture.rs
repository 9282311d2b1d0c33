//! pcapng files in and out: Ethernet frames with their interface name and timestamp

use crate::recording::{Direction, Item, Marker, PEN, Recording, assemble, decode_marker};
use pcap_file::DataLink;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::{Block, PcapNgParseError, PcapNgParser, PcapNgWriter};
use std::borrow::Cow;
use std::time::Duration;

/// One link-layer frame of a capture
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The `if_name` of the interface it was captured on (or is to be written to)
    pub interface: String,
    /// Time since the Unix epoch
    pub time: Duration,
    /// The whole Ethernet frame
    pub data: Vec<u8>,
}

/// Why a capture cannot be replayed
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// Zero bytes
    #[error("empty file")]
    Empty,
    /// A classic pcap file, which has no interface names
    #[error(
        "classic pcap is not supported (it names no interfaces); convert it to pcapng and set if_name"
    )]
    ClassicPcap,
    /// The bytes end inside a block
    #[error("truncated at byte {offset}")]
    Truncated {
        /// Where the incomplete block starts
        offset: usize,
    },
    /// A block that does not parse
    #[error("garbled block at byte {offset}: {message}")]
    Garbled {
        /// Where the block starts
        offset: usize,
        /// The parser's reason
        message: String,
    },
    /// An interface whose link type is not Ethernet
    #[error("interface {interface}: link type {linktype} is not supported (only Ethernet)")]
    LinkType {
        /// Its name
        interface: String,
        /// The link type
        linktype: String,
    },
    /// An interface without `if_name`
    #[error("interface {0} has no name (if_name); interfaces are mapped to devices by name")]
    Unnamed(u32),
    /// A simple packet block, which has neither interface nor timestamp
    #[error("simple packet block at byte {0} is not supported (no timestamp)")]
    SimplePacket(usize),
    /// A recording of a format version this replay does not read
    #[error(
        "recording format version {version} at byte {offset} is not supported (this ikago-replay reads version {})",
        crate::recording::VERSION
    )]
    Version {
        /// The version of the file
        version: u32,
        /// Where its scenario block starts
        offset: usize,
    },
    /// A recording whose blocks make no sense
    #[error("bad recording at byte {offset}: {message}")]
    Recording {
        /// Where the block starts
        offset: usize,
        /// What is wrong
        message: String,
    },
}

/// pcap-file's messages start with a capital; ours are lower-case lines
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn parse_error(e: &PcapNgParseError, offset: usize) -> CaptureError {
    match e {
        PcapNgParseError::IncompleteBuffer(..) => CaptureError::Truncated { offset },
        other => CaptureError::Garbled {
            offset,
            message: lower_first(&other.to_string()),
        },
    }
}

/// The name of interface `id` of the current section, checking its link type
fn interface_name(parser: &PcapNgParser, id: u32, offset: usize) -> Result<String, CaptureError> {
    let idb = parser
        .interfaces()
        .get(id as usize)
        .ok_or_else(|| CaptureError::Garbled {
            offset,
            message: format!("unknown interface {id}"),
        })?;
    let name = idb
        .options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or(CaptureError::Unnamed(id))?;
    if idb.linktype != DataLink::ETHERNET {
        return Err(CaptureError::LinkType {
            interface: name,
            linktype: format!("{:?}", idb.linktype),
        });
    }
    Ok(name)
}

/// Reads every block that matters to a replay, in file order, up to the first that cannot be read:
/// the items before it and, if reading stopped early, where and why
pub fn read_items(bytes: &[u8]) -> (Vec<Item>, Option<(usize, CaptureError)>) {
    const PCAP_MAGICS: [[u8; 4]; 4] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
    ];
    let mut items = Vec::new();
    if bytes.is_empty() {
        return (items, Some((0, CaptureError::Empty)));
    }
    if bytes.len() >= 4 && PCAP_MAGICS.iter().any(|m| bytes[..4] == m[..]) {
        return (items, Some((0, CaptureError::ClassicPcap)));
    }
    let (mut rest, mut parser) = match PcapNgParser::new(bytes) {
        Ok(p) => p,
        Err(e) => return (items, Some((0, parse_error(&e, 0)))),
    };
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (r, block) = match parser.next_block(rest) {
            Ok(b) => b,
            Err(e) => return (items, Some((offset, parse_error(&e, offset)))),
        };
        rest = r;
        let (id, time, data, flags) = match block {
            Block::EnhancedPacket(e) => {
                let flags = e.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Flags(f) => Some(*f),
                    _ => None,
                });
                (e.interface_id, e.timestamp, e.data, flags)
            }
            Block::Packet(p) => (u32::from(p.interface_id), p.timestamp, p.data, None),
            Block::SimplePacket(_) => {
                return (items, Some((offset, CaptureError::SimplePacket(offset))));
            }
            Block::CustomCopiable(c) if c.pen == PEN => match decode_marker(&c.payload) {
                Some(Ok(marker)) => {
                    items.push(Item::Marker { marker, offset });
                    continue;
                }
                Some(Err(message)) => {
                    return (
                        items,
                        Some((offset, CaptureError::Recording { offset, message })),
                    );
                }
                None => continue,
            },
            _ => continue,
        };
        let interface = match interface_name(&parser, id, offset) {
            Ok(n) => n,
            Err(e) => return (items, Some((offset, e))),
        };
        items.push(Item::Packet {
            frame: Frame {
                interface,
                time,
                data: data.into_owned(),
            },
            direction: flags.and_then(Direction::from_flags),
            offset,
        });
    }
    (items, None)
}

/// Reads every packet of a pcapng file, in file order; every block must be whole
pub fn read_pcapng(bytes: &[u8]) -> Result<Vec<Frame>, CaptureError> {
    match read_items(bytes) {
        (_, Some((_, e))) => Err(e),
        (items, None) => Ok(items
            .into_iter()
            .filter_map(|i| match i {
                Item::Packet { frame, .. } => Some(frame),
                Item::Marker { .. } => None,
            })
            .collect()),
    }
}

/// What a capture file is: a recording (see [`crate::recording`]), or frames
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// A recording, as far as it is whole
    Recording(Recording),
    /// Any other capture
    Frames(Vec<Frame>),
}

/// Reads a capture file: a recording when it starts with a scenario block (read as far as it is
/// whole when it was cut short), else every packet, every block whole
pub fn read_capture_bytes(bytes: &[u8]) -> Result<Capture, CaptureError> {
    let (items, stopped) = read_items(bytes);
    let mut items = items.into_iter();
    let mut frames = Vec::new();
    while let Some(item) = items.next() {
        match item {
            Item::Packet { frame, .. } => frames.push(frame),
            Item::Marker {
                marker: Marker::Scenario { version, json },
                offset,
            } if frames.is_empty() => {
                return assemble((version, json, offset), items, stopped, bytes.len())
                    .map(Capture::Recording);
            }
            Item::Marker { offset, .. } => {
                return Err(CaptureError::Recording {
                    offset,
                    message: "IkaGo block outside a recording (a recording starts with its \
                              scenario block)"
                        .into(),
                });
            }
        }
    }
    match stopped {
        Some((_, e)) => Err(e),
        None => Ok(Capture::Frames(frames)),
    }
}

/// Merges captures by timestamp; frames with equal stamps keep their order (first capture first)
pub fn merge(captures: Vec<Vec<Frame>>) -> Vec<Frame> {
    let mut all: Vec<Frame> = captures.into_iter().flatten().collect();
    all.sort_by_key(|f| f.time);
    all
}

/// Writes `frames` as pcapng with one Ethernet interface per name of `interfaces` (in that
/// order; frames on other interfaces are skipped) and nanosecond timestamps
pub fn write_pcapng(interfaces: &[String], frames: &[Frame]) -> Vec<u8> {
    let bug = "writing pcapng to memory cannot fail for well-formed blocks";
    let mut w = PcapNgWriter::new(Vec::new()).expect(bug);
    let ns = InterfaceTsResolution::from_u8(9).expect("9 (nanoseconds) is a valid resolution");
    for name in interfaces {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                InterfaceDescriptionOption::IfTsResol(ns),
            ],
        };
        w.write_pcapng_block(idb).expect(bug);
    }
    for f in frames {
        let Some(id) = interfaces.iter().position(|n| *n == f.interface) else {
            continue;
        };
        let epb = EnhancedPacketBlock {
            interface_id: id as u32,
            timestamp: f.time,
            original_len: f.data.len() as u32,
            data: Cow::Borrowed(&f.data),
            options: vec![],
        };
        w.write_pcapng_block(epb).expect(bug);
    }
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(interface: &str, ns: u64, data: &[u8]) -> Frame {
        Frame {
            interface: interface.into(),
            time: Duration::from_nanos(ns),
            data: data.to_vec(),
        }
    }

    #[test]
    fn round_trip_keeps_names_stamps_and_bytes() {
        let frames = vec![
            frame("wan0", 1_764_094_060_123_456_789, &[1; 60]),
            frame("lan0", 1_764_094_060_123_456_790, &[2; 61]),
        ];
        let bytes = write_pcapng(&["lan0".into(), "wan0".into()], &frames);
        assert_eq!(read_pcapng(&bytes).unwrap(), frames);
    }

    #[test]
    fn merge_is_stable_by_time() {
        let a = vec![frame("a", 1, &[1]), frame("a", 3, &[3])];
        let b = vec![frame("b", 1, &[2]), frame("b", 2, &[4])];
        let m: Vec<u8> = merge(vec![a, b]).into_iter().map(|f| f.data[0]).collect();
        assert_eq!(m, [1, 2, 4, 3]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let good = write_pcapng(&["lan0".into()], &[frame("lan0", 5, &[0; 60])]);
        assert_eq!(read_pcapng(&[]), Err(CaptureError::Empty));
        assert_eq!(
            read_pcapng(&[0xd4, 0xc3, 0xb2, 0xa1, 0, 0]),
            Err(CaptureError::ClassicPcap)
        );
        assert!(matches!(
            read_pcapng(&good[..good.len() - 3]),
            Err(CaptureError::Truncated { .. })
        ));
        assert!(matches!(
            read_pcapng(b"not a capture at all"),
            Err(CaptureError::Garbled { offset: 0, .. })
        ));
        for e in [
            read_pcapng(&good[..good.len() - 3]).unwrap_err(),
            read_pcapng(b"garbage!garbage!").unwrap_err(),
        ] {
            let s = e.to_string();
            assert!(
                !s.contains('\n') && s.chars().next().is_some_and(|c| !c.is_uppercase()),
                "{s}"
            );
        }
    }
}
