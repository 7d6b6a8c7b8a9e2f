//! A message's `call_event` row in ClickHouse's RowBinary, written while the decoder still
//! holds the message's members (worker/core/call_event_rows.py is the reference encoder and
//! says why: no dict per event, no JSON of the payload, the cheapest format for ClickHouse to
//! read).
//!
//! Every column but `ingested_at`, in `CALL_EVENT_COLUMNS` order: the batch's one
//! `ingested_at` follows each row when the block is joined. Only called for a message the
//! validator accepted, so every member read here was checked; anything unexpected still
//! answers None (then the reference encoder writes the row from the event).

use crate::json::{Member, Value};
use crate::{parse_rfc3339, uuid_text_bytes};

/// The row of one accepted message, ready to be written into a buffer of `len()` bytes (a
/// `bytes` object's, so the row is not copied again).
pub struct Row<'a> {
    columns: Columns<'a>,
    uuid: [u8; 16],
    millis: i64,
    payload: &'a [u8],
    version: u64,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

impl<'a> Row<'a> {
    /// The row of the message `payload` (its members `members`, its digest `version`)
    /// consumed from `topic` at `partition`/`offset`.
    pub fn of(
        members: &'a [Member<'_>],
        payload: &'a [u8],
        version: u64,
        topic: &'a str,
        partition: i32,
        offset: i64,
    ) -> Option<Self> {
        let columns = Columns::of(members)?;
        Some(Self {
            uuid: uuid_bytes(columns.project_id.as_bytes())?,
            // DateTime64(3): milliseconds (the parser keeps no finer digits).
            millis: parse_rfc3339(columns.occurred_at.as_bytes())?.div_euclid(1000),
            columns,
            payload,
            version,
            topic,
            partition,
            offset,
        })
    }

    pub fn len(&self) -> usize {
        let c = &self.columns;
        16 + string_length(c.call_id.len())
            + string_length(c.event_id.len())
            + string_length(c.event_type.len())
            + 8
            + 1
            + c.sequence.map_or(0, |_| 8)
            + 1
            + c.source.map_or(0, |s| string_length(s.len()))
            + string_length(self.payload.len())
            + 8
            + string_length(self.topic.len())
            + 4
            + 8
    }

    /// Writes the row into `buffer`, of exactly `len()` bytes.
    pub fn write(&self, buffer: &mut [u8]) {
        let c = &self.columns;
        let mut out = Writer { buffer, at: 0 };
        out.put(&self.uuid);
        out.string(c.call_id.as_bytes());
        out.string(c.event_id.as_bytes());
        out.string(c.event_type.as_bytes());
        out.put(&self.millis.to_le_bytes());
        match c.sequence {
            None => out.put(&[1]), // Nullable: 1 is NULL
            Some(number) => {
                out.put(&[0]);
                out.put(&number.to_le_bytes());
            }
        }
        match c.source {
            None => out.put(&[1]),
            Some(source) => {
                out.put(&[0]);
                out.string(source.as_bytes());
            }
        }
        out.string(self.payload);
        out.put(&self.version.to_le_bytes());
        out.string(self.topic.as_bytes());
        out.put(&self.partition.to_le_bytes());
        out.put(&self.offset.to_le_bytes());
        assert_eq!(out.at, out.buffer.len(), "len() and write() disagree");
    }
}

/// The envelope members a row needs, found in one pass.
struct Columns<'m> {
    project_id: &'m str,
    call_id: &'m str,
    event_id: &'m str,
    event_type: &'m str,
    occurred_at: &'m str,
    sequence: Option<i64>,
    source: Option<&'m str>,
}

impl<'m> Columns<'m> {
    /// None if a member is missing or of another kind than the validator accepts.
    fn of(members: &'m [Member<'_>]) -> Option<Self> {
        let (mut project_id, mut call_id, mut event_id, mut event_type, mut occurred_at) =
            (None, None, None, None, None);
        let (mut sequence, mut source) = (None, None);
        for (name, value) in members {
            let slot = match name.as_ref() {
                "project_id" => &mut project_id,
                "call_id" => &mut call_id,
                "event_id" => &mut event_id,
                "type" => &mut event_type,
                "occurred_at" => &mut occurred_at,
                "source" => &mut source,
                "sequence" => {
                    let Value::Int(number) = value else {
                        return None;
                    };
                    sequence = Some(*number);
                    continue;
                }
                _ => continue,
            };
            let Value::Str(text) = value else {
                return None;
            };
            *slot = Some(text.as_ref());
        }
        Some(Self {
            project_id: project_id?,
            call_id: call_id?,
            event_id: event_id?,
            event_type: event_type?,
            occurred_at: occurred_at?,
            sequence,
            source,
        })
    }
}

/// Writes into a buffer of the exact length.
struct Writer<'b> {
    buffer: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buffer[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// A String: its length as a LEB128 varint, then its bytes.
    fn string(&mut self, bytes: &[u8]) {
        let mut length = bytes.len() as u64;
        loop {
            let low = (length & 0x7f) as u8;
            length >>= 7;
            if length == 0 {
                self.put(&[low]);
                break;
            }
            self.put(&[low | 0x80]);
        }
        self.put(bytes);
    }
}

/// The bytes of a String of `length` bytes: its varint length, then the bytes.
fn string_length(length: usize) -> usize {
    let mut digits = 1;
    let mut rest = length >> 7;
    while rest != 0 {
        digits += 1;
        rest >>= 7;
    }
    digits + length
}

/// A UUID's text (either case) as ClickHouse stores the UUID (`clickhouse_uuid`).
pub(crate) fn uuid_bytes(text: &[u8]) -> Option<[u8; 16]> {
    uuid_text_bytes(text, true).map(clickhouse_uuid)
}

/// A UUID's 16 bytes (big-endian, as `uuid.UUID.bytes`) as ClickHouse stores them: its two
/// 64-bit halves, each little-endian.
pub(crate) fn clickhouse_uuid(bytes: [u8; 16]) -> [u8; 16] {
    let value = u128::from_be_bytes(bytes);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((value >> 64) as u64).to_le_bytes());
    out[8..].copy_from_slice(&(value as u64).to_le_bytes());
    out
}
