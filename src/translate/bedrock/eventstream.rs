//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the
//! binary framing of Bedrock's `ConverseStream` response body.
//!
//! Every message is, big-endian throughout:
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32   (the 12-byte prelude)
//! headers (headers length bytes) | payload | message CRC32 u32
//! ```
//!
//! The prelude CRC covers the first 8 bytes, the message CRC every byte
//! before it; both are CRC-32/IEEE (the gzip/zlib one). A header is
//! `name length u8 | name | value type u8 | value`, where the value is
//! 0 true / 1 false (no bytes), 2 byte, 3 i16, 4 i32, 5 i64, 6 bytes
//! (u16 length + bytes), 7 UTF-8 string (u16 length + bytes), 8 timestamp
//! (i64 ms), 9 UUID (16 bytes).
//!
//! [`Decoder`] takes chunks at arbitrary boundaries, checks both CRCs and
//! bounds the frame size, so garbage is an error, never a panic or an
//! unbounded buffer. [`encode_frame`] builds frames (tests and fakes use it
//! to script streams).

/// Largest frame accepted. Bedrock frames are a few hundred bytes; the cap
/// only stops a corrupted length from making us buffer without limit.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

const PRELUDE_BYTES: usize = 12;
/// Prelude plus the trailing message CRC: the size of an empty frame.
const MIN_FRAME_BYTES: usize = PRELUDE_BYTES + 4;

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32/IEEE (reflected polynomial 0xEDB88320), as zlib's `crc32`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// One typed header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The first header called `name`, if it is a string.
    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("event stream frame length {0} is out of bounds")]
    BadLength(u64),
    #[error("event stream prelude CRC mismatch")]
    PreludeCrc,
    #[error("event stream message CRC mismatch")]
    MessageCrc,
    #[error("malformed event stream headers: {0}")]
    BadHeaders(&'static str),
    #[error("event stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// Incremental frame decoder. After the first error it stays failed.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    max_frame: usize,
    error: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_BYTES)
    }
}

impl Decoder {
    pub(crate) fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_frame: max_frame.max(MIN_FRAME_BYTES),
            error: None,
        }
    }

    /// Appends `chunk` and pushes every frame it completes onto `frames`.
    /// Frames completed before a corrupted one are still pushed.
    pub(crate) fn feed(&mut self, chunk: &[u8], frames: &mut Vec<Frame>) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let res = loop {
            match self.next_frame(start) {
                Ok(Some((frame, len))) => {
                    frames.push(frame);
                    start += len;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..start);
        if let Err(e) = &res {
            self.error = Some(e.clone());
            self.buf = Vec::new();
        }
        res
    }

    /// The body ended: leftover bytes mean a truncated frame.
    pub(crate) fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            let e = FrameError::Truncated(self.buf.len());
            self.error = Some(e.clone());
            Err(e)
        }
    }

    /// Decodes the frame at `buf[start..]`: `Ok(None)` until it is complete.
    /// The prelude is checked as soon as its 12 bytes are in.
    fn next_frame(&self, start: usize) -> Result<Option<(Frame, usize)>, FrameError> {
        let rest = self.buf.get(start..).unwrap_or_default();
        let Some(prelude) = rest.get(..PRELUDE_BYTES) else {
            return Ok(None);
        };
        let total = be_u32(prelude, 0);
        let headers_len = be_u32(prelude, 4);
        if be_u32(prelude, 8) != crc32(&prelude[..8]) {
            return Err(FrameError::PreludeCrc);
        }
        let total_len = usize::try_from(total).unwrap_or(usize::MAX);
        let headers_len = usize::try_from(headers_len).unwrap_or(usize::MAX);
        if total_len < MIN_FRAME_BYTES || total_len > self.max_frame {
            return Err(FrameError::BadLength(u64::from(total)));
        }
        if headers_len > total_len - MIN_FRAME_BYTES {
            return Err(FrameError::BadHeaders("headers longer than the frame"));
        }
        let Some(frame) = rest.get(..total_len) else {
            return Ok(None);
        };
        let body_end = total_len - 4;
        if be_u32(frame, body_end) != crc32(&frame[..body_end]) {
            return Err(FrameError::MessageCrc);
        }
        let headers_end = PRELUDE_BYTES + headers_len;
        let headers = parse_headers(&frame[PRELUDE_BYTES..headers_end])?;
        let payload = frame[headers_end..body_end].to_vec();
        Ok(Some((Frame { headers, payload }, total_len)))
    }
}

/// Big-endian u32 at `at`; callers guarantee 4 bytes are there.
fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_be_bytes(x)
}

fn take<'a>(cur: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if cur.len() < n {
        return Err(FrameError::BadHeaders(
            "header runs past the headers section",
        ));
    }
    let (head, tail) = cur.split_at(n);
    *cur = tail;
    Ok(head)
}

fn take_array<const N: usize>(cur: &mut &[u8]) -> Result<[u8; N], FrameError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(cur, N)?);
    Ok(out)
}

fn parse_headers(mut cur: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut headers = Vec::new();
    while !cur.is_empty() {
        let [name_len] = take_array::<1>(&mut cur)?;
        if name_len == 0 {
            return Err(FrameError::BadHeaders("empty header name"));
        }
        let name = std::str::from_utf8(take(&mut cur, usize::from(name_len))?)
            .map_err(|_| FrameError::BadHeaders("header name is not UTF-8"))?
            .to_owned();
        let [kind] = take_array::<1>(&mut cur)?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(take_array(&mut cur)?)),
            3 => HeaderValue::Short(i16::from_be_bytes(take_array(&mut cur)?)),
            4 => HeaderValue::Int(i32::from_be_bytes(take_array(&mut cur)?)),
            5 => HeaderValue::Long(i64::from_be_bytes(take_array(&mut cur)?)),
            6 | 7 => {
                let len = u16::from_be_bytes(take_array(&mut cur)?);
                let bytes = take(&mut cur, usize::from(len))?;
                if kind == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| FrameError::BadHeaders("string header is not UTF-8"))?
                            .to_owned(),
                    )
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(take_array(&mut cur)?)),
            9 => HeaderValue::Uuid(take_array(&mut cur)?),
            _ => return Err(FrameError::BadHeaders("unknown header value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Encodes one frame. Fails only when a header name is empty or longer than
/// 255 bytes, a byte/string value is longer than 65535 bytes, or the frame
/// would not fit its u32 length.
// Used by tests and kept for fakes and future request-side streaming.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn encode_frame(
    headers: &[(&str, HeaderValue)],
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or(FrameError::BadHeaders("header name must be 1-255 bytes"))?;
        h.push(name_len);
        h.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => {
                h.push(2);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(b) => push_sized(&mut h, 6, b)?,
            HeaderValue::String(s) => push_sized(&mut h, 7, s.as_bytes())?,
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(u) => {
                h.push(9);
                h.extend_from_slice(u);
            }
        }
    }
    let too_big = FrameError::BadLength(u64::MAX);
    let total = h
        .len()
        .checked_add(payload.len())
        .and_then(|n| n.checked_add(MIN_FRAME_BYTES))
        .ok_or_else(|| too_big.clone())?;
    let total_u32 = u32::try_from(total).map_err(|_| too_big.clone())?;
    let headers_u32 = u32::try_from(h.len()).map_err(|_| too_big)?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&total_u32.to_be_bytes());
    out.extend_from_slice(&headers_u32.to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Ok(out)
}

#[cfg_attr(not(test), allow(dead_code))]
fn push_sized(h: &mut Vec<u8>, kind: u8, bytes: &[u8]) -> Result<(), FrameError> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| FrameError::BadHeaders("header value longer than 65535 bytes"))?;
    h.push(kind);
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(bytes);
    Ok(())
}

/// A Bedrock `ConverseStream` event frame, headers in the order Bedrock
/// sends them (`:event-type`, `:content-type`, `:message-type`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn encode_event(event_type: &str, json_payload: &str) -> Vec<u8> {
    encode_frame(
        &[
            (":event-type", HeaderValue::String(event_type.to_owned())),
            (
                ":content-type",
                HeaderValue::String("application/json".to_owned()),
            ),
            (":message-type", HeaderValue::String("event".to_owned())),
        ],
        json_payload.as_bytes(),
    )
    .unwrap_or_default()
}

/// A Bedrock exception frame, e.g. `throttlingException` with
/// `{"message":"..."}` as its payload.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn encode_exception(exception_type: &str, json_payload: &str) -> Vec<u8> {
    encode_frame(
        &[
            (
                ":exception-type",
                HeaderValue::String(exception_type.to_owned()),
            ),
            (
                ":content-type",
                HeaderValue::String("application/json".to_owned()),
            ),
            (":message-type", HeaderValue::String("exception".to_owned())),
        ],
        json_payload.as_bytes(),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_support::Rng;

    fn decode_all(input: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut d = Decoder::default();
        let mut frames = Vec::new();
        d.feed(input, &mut frames)?;
        d.finish()?;
        Ok(frames)
    }

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn crc32_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    // Vectors from the Elixir `event_stream` package docs (independent encoder).
    const PLAIN: &[u8] = &[
        0, 0, 0, 30, 0, 0, 0, 0, 186, 242, 246, 138, 123, 34, 102, 111, 111, 34, 58, 32, 34, 98,
        97, 114, 34, 125, 174, 114, 88, 228,
    ];
    const WITH_HEADER: &[u8] = &[
        0, 0, 0, 62, 0, 0, 0, 32, 64, 93, 249, 70, 12, 99, 111, 110, 116, 101, 110, 116, 45, 116,
        121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47, 106, 115,
        111, 110, 123, 34, 102, 111, 111, 34, 58, 32, 34, 98, 97, 114, 34, 125, 111, 162, 191, 59,
    ];

    #[test]
    fn known_vectors_decode_and_encode() {
        let frames = decode_all(PLAIN).unwrap();
        assert_eq!(
            frames,
            vec![Frame {
                headers: vec![],
                payload: br#"{"foo": "bar"}"#.to_vec()
            }]
        );
        assert_eq!(encode_frame(&[], br#"{"foo": "bar"}"#).unwrap(), PLAIN);

        let frames = decode_all(WITH_HEADER).unwrap();
        assert_eq!(
            frames[0].header_str("content-type"),
            Some("application/json")
        );
        assert_eq!(
            encode_frame(
                &[(
                    "content-type",
                    HeaderValue::String("application/json".into())
                )],
                br#"{"foo": "bar"}"#
            )
            .unwrap(),
            WITH_HEADER
        );
    }

    // A real Bedrock exception frame (vercel/ai test fixture
    // model-stream-error-exception.eventstream.base64.txt).
    const BEDROCK_EXCEPTION_HEX: &str = "000000dd00000067c791907a0d3a6d6573736167652d74797065070009657863657074696f6e0f3a657863657074696f6e2d747970650700196d6f64656c53747265616d4572726f72457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b226d657373616765223a224d6f64656c2053747265616d204572726f72222c226f726967696e616c537461747573436f6465223a3530302c226f726967696e616c4d657373616765223a22546865206d6f64656c2073747265616d206661696c65642e227d57334313";

    #[test]
    fn real_bedrock_exception_frame() {
        let bytes = hex(BEDROCK_EXCEPTION_HEX);
        let frames = decode_all(&bytes).unwrap();
        assert_eq!(frames.len(), 1);
        let f = &frames[0];
        assert_eq!(f.header_str(":message-type"), Some("exception"));
        assert_eq!(
            f.header_str(":exception-type"),
            Some("modelStreamErrorException")
        );
        assert_eq!(f.header_str(":content-type"), Some("application/json"));
        assert_eq!(
            f.payload,
            br#"{"message":"Model Stream Error","originalStatusCode":500,"originalMessage":"The model stream failed."}"#
        );
        // Our encoder, with the same headers in the same order, is byte-identical.
        let again = encode_frame(
            &[
                (":message-type", HeaderValue::String("exception".into())),
                (
                    ":exception-type",
                    HeaderValue::String("modelStreamErrorException".into()),
                ),
                (
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
            ],
            &f.payload,
        )
        .unwrap();
        assert_eq!(again, bytes);
    }

    #[test]
    fn all_header_types_round_trip_at_every_split() {
        let headers = vec![
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-7)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(123_456_789)),
            ("l", HeaderValue::Long(-9_000_000_000)),
            ("bytes", HeaderValue::Bytes(vec![0, 1, 2, 255])),
            ("str", HeaderValue::String("héllo".into())),
            ("ts", HeaderValue::Timestamp(1_700_000_000_123)),
            ("uuid", HeaderValue::Uuid([7; 16])),
        ];
        let mut input = encode_frame(&headers, b"payload one").unwrap();
        input.extend(encode_frame(&[], b"").unwrap());
        input.extend(encode_event("messageStart", r#"{"role":"assistant"}"#));
        let expected = decode_all(&input).unwrap();
        assert_eq!(expected.len(), 3);
        let want: Vec<(String, HeaderValue)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        assert_eq!(expected[0].headers, want);
        assert_eq!(expected[0].payload, b"payload one");
        assert_eq!(
            expected[1],
            Frame {
                headers: vec![],
                payload: vec![]
            }
        );
        assert_eq!(expected[2].header_str(":event-type"), Some("messageStart"));
        for i in 0..=input.len() {
            let mut d = Decoder::default();
            let mut frames = Vec::new();
            d.feed(&input[..i], &mut frames).unwrap();
            d.feed(&input[i..], &mut frames).unwrap();
            d.finish().unwrap();
            assert_eq!(frames, expected, "split at {i}");
        }
        let mut d = Decoder::default();
        let mut frames = Vec::new();
        for b in &input {
            d.feed(std::slice::from_ref(b), &mut frames).unwrap();
        }
        assert_eq!(frames, expected);
    }

    #[test]
    fn corruption_is_detected() {
        let good = encode_event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        // Flipping any single byte is caught (CRC or structure), never a panic.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(decode_all(&bad).is_err(), "flip at {i}");
        }
        let mut bad = good.clone();
        bad[8] ^= 0xFF;
        assert_eq!(decode_all(&bad), Err(FrameError::PreludeCrc));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xFF;
        assert_eq!(decode_all(&bad), Err(FrameError::MessageCrc));
        assert_eq!(
            decode_all(&good[..good.len() - 1]),
            Err(FrameError::Truncated(good.len() - 1))
        );
    }

    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = total.to_be_bytes().to_vec();
        p.extend(headers.to_be_bytes());
        let crc = crc32(&p);
        p.extend(crc.to_be_bytes());
        p
    }

    #[test]
    fn lengths_are_bounded_early() {
        // A valid prelude announcing a huge frame fails at once: no buffering.
        let mut d = Decoder::default();
        let mut frames = Vec::new();
        assert_eq!(
            d.feed(&prelude(u32::MAX, 0), &mut frames),
            Err(FrameError::BadLength(u64::from(u32::MAX)))
        );
        // ... and the decoder stays failed.
        assert!(d.feed(PLAIN, &mut frames).is_err());
        assert!(d.finish().is_err());
        assert_eq!(decode_all(&prelude(15, 0)), Err(FrameError::BadLength(15)));
        assert!(matches!(
            decode_all(&prelude(20, 5)),
            Err(FrameError::BadHeaders(_))
        ));
        let mut d = Decoder::new(64);
        assert_eq!(
            d.feed(&prelude(65, 0), &mut frames),
            Err(FrameError::BadLength(65))
        );
    }

    /// Wraps raw header bytes in a frame with valid CRCs.
    fn frame_with_raw_headers(h: &[u8]) -> Vec<u8> {
        let total = (h.len() + MIN_FRAME_BYTES) as u32;
        let mut out = prelude(total, h.len() as u32);
        out.extend(h);
        let crc = crc32(&out);
        out.extend(crc.to_be_bytes());
        out
    }

    #[test]
    fn malformed_headers_are_errors() {
        for h in [
            &[0u8][..],                // empty name
            &[1, b'a'],                // missing type
            &[1, b'a', 10],            // unknown type
            &[1, b'a', 7, 0],          // short string length
            &[1, b'a', 7, 0, 5, b'x'], // string past the end
            &[1, b'a', 4, 0, 0],       // short i32
            &[1, b'a', 9, 1, 2, 3],    // short uuid
            &[2, 0xff, 0xfe, 0],       // name not UTF-8
            &[1, b'a', 7, 0, 1, 0xff], // value not UTF-8
            &[5, b'a'],                // name past the end
        ] {
            assert!(
                matches!(
                    decode_all(&frame_with_raw_headers(h)),
                    Err(FrameError::BadHeaders(_))
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn encoder_rejects_what_it_cannot_frame() {
        let long = "x".repeat(256);
        assert!(encode_frame(&[(long.as_str(), HeaderValue::Bool(true))], b"").is_err());
        assert!(encode_frame(&[("", HeaderValue::Bool(true))], b"").is_err());
        let big = HeaderValue::Bytes(vec![0; 65_536]);
        assert!(encode_frame(&[("a", big)], b"").is_err());
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Rng(0xB3D0_0C4E);
        let good = encode_event("metadata", r#"{"usage":{"inputTokens":1}}"#);
        for round in 0..3000 {
            let mut data = if round % 3 == 0 {
                let len = rng.below(200) as usize;
                rng.bytes(len)
            } else {
                // Mostly-valid streams with a few flipped bytes.
                let mut d = good.repeat(1 + rng.below(3) as usize);
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(d.len() as u64) as usize;
                    d[i] = rng.next() as u8;
                }
                d
            };
            if round % 5 == 0 {
                // A valid prelude with random lengths gets past the first check.
                let mut p = prelude(rng.below(400) as u32, rng.below(400) as u32);
                p.append(&mut data);
                data = p;
            }
            let mut d = Decoder::new(1024);
            let mut frames = Vec::new();
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                let n = (rng.below(17) as usize + 1).min(rest.len());
                let _ = d.feed(&rest[..n], &mut frames);
                rest = &rest[n..];
            }
            let _ = d.finish();
        }
    }
}
