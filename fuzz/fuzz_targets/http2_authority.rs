//! The HTTP/2 `:authority` shim of Unix-socket listeners (`sigil_listen::authority`), fed a
//! client byte stream in arbitrary read sizes. Properties: the output is a valid HTTP/2 frame
//! stream (header frames within the 16 KiB default frame size, header blocks decodable) whose
//! frames are the input's, in order, with every header block decoding to the input block's
//! headers except `:authority`, which is the input's when h2 accepts it and `localhost`
//! otherwise; every output header list stays within `MAX_HEADER_LIST` (so the output is
//! bounded by the input's frame count, however far HPACK expands); a stream that is not
//! HTTP/2 with prior knowledge passes through byte for byte; the shim refuses input only where
//! the reference reading below finds an error, and what it delivered before is the input's
//! frames up to it.
//!
//! The reference reading (`read_stream`) is written here from RFC 9113 §4, §6.2, §6.10 and
//! RFC 7541, and reads both the input and the output.

#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sigil_listen::authority::{AuthorityFix, MAX_HEADER_BLOCK, MAX_HEADER_LIST};
use tokio::io::{AsyncRead, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const MAX_FRAME: usize = 16_384;

#[derive(Debug, Arbitrary)]
struct Input {
    preface: Preface,
    frames: Vec<Frame>,
    tail: Vec<u8>,
    /// Sizes of the reads the shim sees, and of the reads made from it, cycled.
    reads: Vec<u16>,
}

#[derive(Debug, Arbitrary)]
enum Preface {
    Full,
    Truncated(u8),
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Frame {
    Headers {
        stream: u32,
        /// Extra flag bits (END_STREAM, PADDED, PRIORITY, unknown ones).
        flags: u8,
        priority: [u8; 5],
        pad: u8,
        fields: Vec<Field>,
        /// Where the block is cut into HEADERS + CONTINUATION frames.
        cuts: Vec<u16>,
        /// Leave END_HEADERS off the last frame.
        unfinished: bool,
        /// A CONTINUATION stream id other than the HEADERS frame's.
        continuation_stream: Option<u32>,
    },
    Other {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    },
    Raw(Vec<u8>),
}

/// One HPACK representation (RFC 7541 §6).
#[derive(Debug, Arbitrary)]
enum Field {
    Indexed(u16),
    Literal {
        indexing: Indexing,
        name: Name,
        value: Vec<u8>,
    },
    LiteralIndexedName {
        indexing: Indexing,
        index: u16,
        value: Vec<u8>,
    },
    SizeUpdate(u16),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Indexing {
    Incremental,
    Without,
    Never,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Authority,
    Path,
    ContentType,
    Any(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let stream = encode(&input);
    let reads: Vec<usize> = input.reads.iter().map(|&r| usize::from(r).max(1)).collect();
    let (output, result) = run_shim(&stream, &reads);

    let preface_len = PREFACE.len().min(stream.len());
    if stream[..preface_len] != PREFACE[..preface_len] || stream.len() < PREFACE.len() {
        assert!(
            result.is_ok(),
            "a stream that is not HTTP/2 was refused: {result:?}"
        );
        assert_eq!(output, stream, "a stream that is not HTTP/2 was changed");
        return;
    }
    let shown = PREFACE.len().min(output.len());
    assert_eq!(output[..shown], PREFACE[..shown], "the preface was changed");
    let output_frames = output.get(PREFACE.len()..).unwrap_or_default();

    let expected = read_stream(&stream[PREFACE.len()..], true);
    let mut delivered = read_stream(output_frames, false);
    assert!(
        !delivered.contains(&Item::Error),
        "the shim wrote an invalid stream: {delivered:?}"
    );
    for item in &delivered {
        if let Item::Block { headers, .. } = item {
            assert!(
                list_size(headers) <= MAX_HEADER_LIST,
                "an oversized header list was written"
            );
        }
    }
    match result {
        Ok(()) => assert_eq!(delivered, expected, "the shim's output is not its input"),
        Err(error) => {
            let error_at = expected
                .iter()
                .position(|i| *i == Item::Error)
                .unwrap_or_else(|| {
                    panic!("refused ({error}) a stream with no error: {expected:?}")
                });
            if matches!(delivered.last(), Some(Item::Tail(_))) {
                delivered.pop();
            }
            assert!(
                delivered.len() <= error_at && delivered[..] == expected[..delivered.len()],
                "before its error ({error}) the shim wrote {delivered:?}, expected a prefix of {expected:?}"
            );
        }
    }
});

// === The reference reading ===

#[derive(Debug, PartialEq)]
enum Item {
    /// A frame other than HEADERS/CONTINUATION, its 9-byte header and payload as they are.
    Frame(Vec<u8>),
    /// A complete header block.
    Block {
        stream: u32,
        end_stream: bool,
        priority: Option<[u8; 5]>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Bytes at the end that are not a whole frame.
    Tail(Vec<u8>),
    Error,
}

struct Pending {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

/// The items of a frame stream after the preface. `fix` applies the `:authority` rule to
/// decoded headers (reading the input); otherwise every `:authority` must already be valid
/// and header frames must fit the default frame size (reading the output).
fn read_stream(mut bytes: &[u8], fix: bool) -> Vec<Item> {
    let mut items = Vec::new();
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(4096);
    let mut pending: Option<Pending> = None;
    loop {
        if bytes.len() < 9 {
            if !bytes.is_empty() {
                items.push(Item::Tail(bytes.to_vec()));
            }
            return items;
        }
        let length =
            usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let (kind, flags) = (bytes[3], bytes[4]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        if kind != HEADERS && kind != CONTINUATION {
            if pending.is_some() {
                items.push(Item::Error);
                return items;
            }
            if bytes.len() < 9 + length {
                items.push(Item::Tail(bytes.to_vec()));
                return items;
            }
            items.push(Item::Frame(bytes[..9 + length].to_vec()));
            bytes = &bytes[9 + length..];
            continue;
        }
        if length > MAX_HEADER_BLOCK {
            items.push(Item::Error);
            return items;
        }
        if bytes.len() < 9 + length {
            items.push(Item::Tail(bytes.to_vec()));
            return items;
        }
        // The shim writes whole header frames within the default frame size; an incomplete
        // frame at the end is the input's, passed through.
        if !fix && length > MAX_FRAME {
            items.push(Item::Error);
            return items;
        }
        let payload = &bytes[9..9 + length];
        bytes = &bytes[9 + length..];
        let block = if kind == HEADERS {
            if pending.is_some() {
                items.push(Item::Error);
                return items;
            }
            let Some((priority, fragment)) = headers_fragment(flags, payload) else {
                items.push(Item::Error);
                return items;
            };
            Pending {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                block: fragment.to_vec(),
            }
        } else {
            match pending.take() {
                Some(mut p)
                    if p.stream == stream && p.block.len() + payload.len() <= MAX_HEADER_BLOCK =>
                {
                    p.block.extend_from_slice(payload);
                    p
                }
                _ => {
                    items.push(Item::Error);
                    return items;
                }
            }
        };
        if flags & END_HEADERS == 0 {
            pending = Some(block);
            continue;
        }
        let mut headers = Vec::new();
        if decoder
            .decode_with_cb(&block.block, |name, value| {
                headers.push((name.into_owned(), value.into_owned()));
            })
            .is_err()
        {
            items.push(Item::Error);
            return items;
        }
        for (name, value) in &mut headers {
            if name == b":authority" && !valid_authority(value) {
                if fix {
                    *value = b"localhost".to_vec();
                } else {
                    items.push(Item::Error);
                    return items;
                }
            }
        }
        // Measured as written, `localhost` in place of a refused authority.
        if list_size(&headers) > MAX_HEADER_LIST {
            items.push(Item::Error);
            return items;
        }
        items.push(Item::Block {
            stream: block.stream,
            end_stream: block.end_stream,
            priority: block.priority,
            headers,
        });
    }
}

/// A HEADERS payload's PRIORITY fields and fragment, padding removed (RFC 9113 §6.2).
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let (padding, rest) = if flags & PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let (priority, rest) = if flags & PRIORITY != 0 {
        let (fields, rest) = rest.split_first_chunk::<5>()?;
        (Some(*fields), rest)
    } else {
        (None, rest)
    };
    let end = rest.len().checked_sub(padding)?;
    Some((priority, &rest[..end]))
}

/// The header list size as HTTP/2 counts it (RFC 9113 §6.5.2).
fn list_size(headers: &[(Vec<u8>, Vec<u8>)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

fn valid_authority(value: &[u8]) -> bool {
    !value.is_empty() && http::uri::Authority::try_from(value).is_ok()
}

// === Driving the shim ===

/// A reader handing out `data` in the given read sizes.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    next: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = match self.sizes {
            [] => usize::MAX,
            sizes => sizes[self.next % sizes.len()],
        };
        self.next += 1;
        let take = size.min(buf.remaining()).min(self.data.len());
        let (now, later) = self.data.split_at(take);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

fn run_shim(stream: &[u8], reads: &[usize]) -> (Vec<u8>, std::io::Result<()>) {
    let mut shim = AuthorityFix::new(Chunked {
        data: stream,
        sizes: reads,
        next: 0,
    });
    let mut cx = Context::from_waker(Waker::noop());
    let mut output = Vec::new();
    let mut buf = vec![0u8; 20_000];
    for i in 0.. {
        let want = reads
            .get(i % reads.len().max(1))
            .copied()
            .unwrap_or(8192)
            .min(buf.len());
        let mut read_buf = ReadBuf::new(&mut buf[..want]);
        match Pin::new(&mut shim).poll_read(&mut cx, &mut read_buf) {
            Poll::Ready(Ok(())) if read_buf.filled().is_empty() => return (output, Ok(())),
            Poll::Ready(Ok(())) => output.extend_from_slice(read_buf.filled()),
            Poll::Ready(Err(e)) => return (output, Err(e)),
            Poll::Pending => panic!("the shim is pending over a reader that never is"),
        }
    }
    unreachable!()
}

// === Building the input ===

fn encode(input: &Input) -> Vec<u8> {
    let mut out = match &input.preface {
        Preface::Full => PREFACE.to_vec(),
        Preface::Truncated(n) => PREFACE[..usize::from(*n) % PREFACE.len()].to_vec(),
        Preface::Other(bytes) => bytes.clone(),
    };
    for frame in &input.frames {
        match frame {
            Frame::Headers {
                stream,
                flags,
                priority,
                pad,
                fields,
                cuts,
                unfinished,
                continuation_stream,
            } => {
                let mut block = Vec::new();
                for field in fields {
                    encode_field(field, &mut block);
                }
                let flags = flags & (END_STREAM | PADDED | PRIORITY | 0xc2);
                let mut first = Vec::new();
                if flags & PADDED != 0 {
                    first.push(*pad);
                }
                if flags & PRIORITY != 0 {
                    first.extend_from_slice(priority);
                }
                let mut pieces: Vec<&[u8]> = Vec::new();
                let mut rest = &block[..];
                for &cut in cuts {
                    let at = usize::from(cut).min(rest.len());
                    let (piece, after) = rest.split_at(at);
                    pieces.push(piece);
                    rest = after;
                }
                pieces.push(rest);
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let end = if i == last && !unfinished {
                        END_HEADERS
                    } else {
                        0
                    };
                    if i == 0 {
                        let mut payload = first.clone();
                        payload.extend_from_slice(piece);
                        if flags & PADDED != 0 {
                            payload.extend(std::iter::repeat_n(0, usize::from(*pad)));
                        }
                        frame_into(&mut out, HEADERS, flags | end, *stream, &payload);
                    } else {
                        let id = continuation_stream.unwrap_or(*stream);
                        frame_into(&mut out, CONTINUATION, end, id, piece);
                    }
                }
            }
            Frame::Other {
                kind,
                flags,
                stream,
                payload,
            } => frame_into(&mut out, *kind, *flags, *stream, payload),
            Frame::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
    out.extend_from_slice(&input.tail);
    out
}

fn frame_into(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len().min(0xff_ffff);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&payload[..len]);
}

fn encode_field(field: &Field, out: &mut Vec<u8>) {
    let int = |out: &mut Vec<u8>, value: usize, prefix: u8, mask: u8| {
        loona_hpack::encoder::encode_integer_into(value, prefix, mask, out).expect("in memory");
    };
    let string = |out: &mut Vec<u8>, bytes: &[u8]| {
        int(out, bytes.len(), 7, 0);
        out.extend_from_slice(bytes);
    };
    match field {
        Field::Indexed(index) => int(out, usize::from(*index), 7, 0x80),
        Field::Literal {
            indexing,
            name,
            value,
        } => {
            let (mask, _) = mask_prefix(*indexing);
            out.push(mask);
            let name: &[u8] = match name {
                Name::Authority => b":authority",
                Name::Path => b":path",
                Name::ContentType => b"content-type",
                Name::Any(bytes) => bytes,
            };
            string(out, name);
            string(out, value);
        }
        Field::LiteralIndexedName {
            indexing,
            index,
            value,
        } => {
            let (mask, prefix) = mask_prefix(*indexing);
            int(out, usize::from(*index).max(1), prefix, mask);
            string(out, value);
        }
        Field::SizeUpdate(size) => int(out, usize::from(*size), 5, 0x20),
        Field::Raw(bytes) => out.extend_from_slice(bytes),
    }
}

fn mask_prefix(indexing: Indexing) -> (u8, u8) {
    match indexing {
        Indexing::Incremental => (0x40, 6),
        Indexing::Without => (0x00, 4),
        Indexing::Never => (0x10, 4),
    }
}
