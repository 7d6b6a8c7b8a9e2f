//! A message's `call_event` row in ClickHouse's RowBinary, written while the decoder still
//! holds the message's members (worker/core/call_event_rows.py is the reference encoder and
//! says why: no dict per event, no JSON of the payload, the cheapest format for ClickHouse to
//! read).
//!
//! Every column but `ingested_at`, in `CALL_EVENT_COLUMNS` order: the batch's one
//! `ingested_at` follows each row when the block is joined. Only called for a message the
//! validator accepted, so every member read here was checked; anything unexpected still
//! answers None (then the reference encoder writes the row from the event).

use crate::json::Value;
use crate::{parse_rfc3339, Members};

/// The row of the accepted message `payload` (its members `members`, its digest `version`)
/// consumed from `topic` at `partition`/`offset`.
pub fn encode(
    members: &Members<'_>,
    payload: &[u8],
    version: u64,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<Vec<u8>> {
    let member = |name: &str| {
        members
            .iter()
            .find(|(found, _)| found == name)
            .map(|m| &m.1)
    };
    let text = |name: &str| match member(name) {
        Some(Value::Str(text)) => Some(text.as_ref()),
        _ => None,
    };
    let mut out = Vec::with_capacity(payload.len() + 160);
    out.extend_from_slice(&uuid_bytes(text("project_id")?.as_bytes())?);
    put_string(&mut out, text("call_id")?.as_bytes());
    put_string(&mut out, text("event_id")?.as_bytes());
    put_string(&mut out, text("type")?.as_bytes());
    // DateTime64(3): milliseconds (the parser keeps no finer digits).
    let micros = parse_rfc3339(text("occurred_at")?.as_bytes())?;
    out.extend_from_slice(&micros.div_euclid(1000).to_le_bytes());
    match member("sequence") {
        None => out.push(1), // Nullable: 1 is NULL
        Some(Value::Int(number)) => {
            out.push(0);
            out.extend_from_slice(&number.to_le_bytes());
        }
        Some(_) => return None,
    }
    match member("source") {
        None => out.push(1),
        Some(Value::Str(source)) => {
            out.push(0);
            put_string(&mut out, source.as_bytes());
        }
        Some(_) => return None,
    }
    put_string(&mut out, payload);
    out.extend_from_slice(&version.to_le_bytes());
    put_string(&mut out, topic.as_bytes());
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    Some(out)
}

/// A String: its length as a LEB128 varint, then its bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut length = bytes.len() as u64;
    loop {
        let low = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// A UUID as ClickHouse stores it: its two 64-bit halves, each little-endian.
fn uuid_bytes(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        value = (value << 4) | u128::from((c as char).to_digit(16)?);
    }
    let high = (value >> 64) as u64;
    let low = value as u64;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&high.to_le_bytes());
    out[8..].copy_from_slice(&low.to_le_bytes());
    Some(out)
}
