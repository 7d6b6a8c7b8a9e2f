//! A strict reader of one message: a JSON object, read as far as the validator needs it (its
//! members, with nested objects and arrays kept as their checked text).
//!
//! It accepts a subset of what `orjson.loads` accepts and reads the same values from it.
//! Where the two might differ it gives up (None) and the decoder runs orjson: invalid UTF-8, a
//! byte order mark, an escaped lone surrogate, a number with an exponent (orjson refuses
//! those past a double's range), an integer outside i64 (orjson makes it a float or refuses
//! it), a duplicate member name (orjson keeps the last), deep nesting.

use std::borrow::Cow;

/// Nesting past this gives up (orjson's own limit is 1024 levels).
const MAX_DEPTH: usize = 64;
/// A number token longer than this gives up.
const MAX_NUMBER_LEN: usize = 40;

/// A member's value.
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// An integer (no fraction, no exponent) within i64.
    Int(i64),
    /// A number with a fraction, as its text (orjson reads a float from it).
    Fraction(&'a str),
    Str(Cow<'a, str>),
    /// A nested object, as its exact text.
    Object(&'a str),
    /// A nested array (checked, never used).
    Array,
}

/// One member of an object: its name and value.
pub type Member<'a> = (Cow<'a, str>, Value<'a>);

/// The members of the object `doc` holds, in document order, or None (see the module
/// comment).
pub fn object_members(doc: &[u8]) -> Option<Vec<Member<'_>>> {
    let mut members = Vec::with_capacity(24);
    object_members_into(doc, &mut members).then_some(members)
}

/// `object_members`, appended to `members` (several messages' members in one vector); false,
/// and `members` as it was, where that gives None.
pub fn object_members_into<'a>(doc: &'a [u8], members: &mut Vec<Member<'a>>) -> bool {
    let start = members.len();
    let read = read_object(doc, members, start).is_some();
    if !read {
        members.truncate(start);
    }
    read
}

fn read_object<'a>(doc: &'a [u8], members: &mut Vec<Member<'a>>, start: usize) -> Option<()> {
    let text = std::str::from_utf8(doc).ok()?;
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    reader.skip_space();
    reader.object(0, |name, value| members.push((name, value)))?;
    reader.skip_space();
    if reader.at != reader.bytes.len() {
        return None;
    }
    let read = &members[start..];
    for (i, (name, _)) in read.iter().enumerate() {
        if read[..i].iter().any(|(earlier, _)| earlier == name) {
            return None;
        }
    }
    Some(())
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// An object at `at`; each member goes to `member`.
    fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(Cow<'a, str>, Value<'a>),
    ) -> Option<()> {
        self.items(b'{', b'}', |reader| {
            let name = reader.string()?;
            reader.skip_space();
            reader.expect(b':')?;
            reader.skip_space();
            member(name, reader.value(depth)?);
            Some(())
        })
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.items(b'[', b']', |reader| reader.value(depth).map(|_| ()))
    }

    /// `open`, then items read by `item` separated by commas, then `close`.
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.expect(open)?;
        self.skip_space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            item(self)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                found if found == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value at `at`, inside `depth` containers.
    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        Some(match self.peek()? {
            b'"' => Value::Str(self.string()?),
            b'{' | b'[' if depth + 1 > MAX_DEPTH => return None,
            b'{' => {
                let start = self.at;
                self.object(depth + 1, |_, _| {})?;
                Value::Object(&self.text[start..self.at])
            }
            b'[' => {
                self.array(depth + 1)?;
                Value::Array
            }
            b't' => {
                self.literal("true")?;
                Value::Bool(true)
            }
            b'f' => {
                self.literal("false")?;
                Value::Bool(false)
            }
            b'n' => {
                self.literal("null")?;
                Value::Null
            }
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        })
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`; an exponent gives up.
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut fraction = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
            fraction = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || self.at - start > MAX_NUMBER_LEN {
            return None;
        }
        let token = &self.text[start..self.at];
        if fraction {
            Some(Value::Fraction(token))
        } else {
            token.parse().ok().map(Value::Int)
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// The string at `at`, unescaped; borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.at;
        self.at = next_special(self.bytes, self.at)?;
        match self.bytes[self.at] {
            b'"' => {
                let text = &self.text[start..self.at];
                self.at += 1;
                return Some(Cow::Borrowed(text));
            }
            b'\\' => {}
            _ => return None, // a control character
        }
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            let b = *self.bytes.get(self.at)?;
            match b {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = *self.bytes.get(self.at)?;
                    self.at += 1;
                    out.push(match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.escaped_char()?,
                        _ => return None,
                    });
                }
                0x00..=0x1f => return None,
                _ => {
                    // Copy up to the next quote or backslash in one go (valid UTF-8: the
                    // document was checked, and both delimiters are ASCII).
                    let run = next_special(self.bytes, self.at).unwrap_or(self.bytes.len());
                    out.push_str(&self.text[self.at..run]);
                    self.at = run;
                }
            }
        }
    }

    /// The char of `\uXXXX` (after the `u`), a surrogate pair read whole; a lone surrogate
    /// gives up.
    fn escaped_char(&mut self) -> Option<char> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                self.literal("\\u")?;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return None;
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return None,
            _ => first,
        };
        char::from_u32(code)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

/// Where the next byte at or after `from` is that a JSON string cannot hold as it is: a quote,
/// a backslash or a control character (below 0x20); None if none is left.
///
/// Sixteen bytes at a time where SSE2 is (every x86_64): the strings are most of a message's
/// bytes, and the byte-at-a-time loop was a sixth of the decode's instructions (callgrind,
/// 2026-12-06).
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline, and each load reads the 16 bytes at
        // `at`, which the loop's condition keeps inside `bytes`.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control_max = _mm_set1_epi8(0x1f);
            while at + 16 <= bytes.len() {
                let chunk = _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>());
                // Unsigned: a byte is a control character when min(byte, 0x1f) is the byte
                // (a signed compare would take UTF-8's bytes >= 0x80 for control characters).
                let control = _mm_cmpeq_epi8(_mm_min_epu8(chunk, control_max), chunk);
                let delimiter = _mm_or_si128(
                    _mm_cmpeq_epi8(chunk, quote),
                    _mm_cmpeq_epi8(chunk, backslash),
                );
                let found = _mm_movemask_epi8(_mm_or_si128(control, delimiter));
                if found != 0 {
                    return Some(at + found.trailing_zeros() as usize);
                }
                at += 16;
            }
        }
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|n| at + n)
}

#[cfg(test)]
mod tests {
    use super::next_special;

    fn one_at_a_time(bytes: &[u8], from: usize) -> Option<usize> {
        (from..bytes.len()).find(|&at| matches!(bytes[at], b'"' | b'\\' | 0x00..=0x1f))
    }

    #[test]
    fn the_next_special_byte_is_found_wherever_it_is() {
        // Each special byte (and none) at every place of texts around the 16-byte steps,
        // among ASCII and UTF-8's high bytes, which are never special.
        let fillers: [&[u8]; 3] = [b"a", "\u{e9}".as_bytes(), "\u{1f4de}".as_bytes()];
        for filler in fillers {
            for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 47, 70] {
                let plain: Vec<u8> = filler.iter().copied().cycle().take(len).collect();
                for special in [None, Some(b'"'), Some(b'\\'), Some(0x00), Some(0x1f)] {
                    for place in 0..=len {
                        let mut bytes = plain.clone();
                        if let Some(byte) = special {
                            bytes.insert(place, byte);
                        }
                        for from in [0, 1, 16, place].into_iter().filter(|&f| f <= bytes.len()) {
                            assert_eq!(
                                next_special(&bytes, from),
                                one_at_a_time(&bytes, from),
                                "{bytes:?} from {from}"
                            );
                        }
                    }
                }
            }
        }
        // Bytes just past the control range and the high ones are plain.
        let plain: Vec<u8> = (0x20u8..=0xff)
            .filter(|b| !matches!(b, b'"' | b'\\'))
            .collect();
        assert_eq!(next_special(&plain, 0), None);
    }
}
