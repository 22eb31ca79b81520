//! HTTP/2 `:authority` normalisation for Unix-socket listeners.
//!
//! grpc-core (Python, C++, Ruby), grpc-java and grpc-swift send the socket path as a request's
//! `:authority` when they dial `unix:` targets, percent-encoded (`%2Frun%2Fsock`) or raw. h2,
//! under tonic, parses `:authority` as a URI authority and resets the stream (PROTOCOL_ERROR)
//! before any handler runs, so none of those clients could talk to a sigil socket. The
//! authority means nothing on a Unix socket: [`AuthorityFix`] sits between the socket and h2,
//! decodes every header block the client sends and, when its `:authority` is not a valid URI
//! authority, replaces it with `localhost` (what grpc-go and Envoy send).
//!
//! Only the client-to-server direction is touched, and only HEADERS and CONTINUATION frames:
//! every other frame is copied through unchanged. HPACK is stateful, so every header block is
//! decoded (keeping the client's dynamic table in step) and written again as literals without
//! indexing, which never touch h2's dynamic table; that keeps h2's decoder consistent whatever
//! the client indexed. A connection that does not start with the HTTP/2 preface is passed
//! through untouched (h2 refuses it).
//!
//! Bounds: a header block may reach [`MAX_HEADER_BLOCK`] bytes across its frames and decode to
//! a header list of at most [`MAX_HEADER_LIST`] bytes; more, or an undecodable block, ends the
//! connection with an error naming the reason.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header (RFC 9113 §4.1).
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value); the
/// rewritten header blocks are split into frames no larger.
const MAX_FRAME: usize = 16_384;
/// The dynamic table size h2 allows a client's encoder: SETTINGS_HEADER_TABLE_SIZE's initial
/// value, which tonic's server does not change.
const HEADER_TABLE_SIZE: usize = 4_096;
/// The largest header block (all its frames) accepted: far above any gRPC request's headers,
/// small enough that a flood of them cannot grow memory.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The largest header list a block may decode to, counted as HTTP/2 counts it (names, values
/// and 32 bytes per field, RFC 9113 §6.5.2) after the rewrite. HPACK lets one byte name a
/// table entry of up to 4 KiB, so without a bound a small block would be written out many
/// times larger; hyper refuses header lists over 16 KiB anyway, so nothing h2 would serve is
/// cut.
pub const MAX_HEADER_LIST: usize = 64 * 1024;
/// The authority put in place of one h2 would refuse.
const REPLACEMENT: &[u8] = b"localhost";

/// An I/O stream whose incoming HTTP/2 header blocks carry only valid `:authority` values.
pub struct AuthorityFix<S> {
    inner: S,
    /// Bytes read from `inner`, not yet looked at.
    raw: Vec<u8>,
    /// Bytes ready for the reader (h2).
    out: Vec<u8>,
    /// Where `out` has been read up to.
    out_pos: usize,
    phase: Phase,
    decoder: loona_hpack::Decoder<'static>,
    /// A header block waiting for its CONTINUATION frames.
    pending: Option<PendingBlock>,
    eof: bool,
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Checking the connection preface; `usize` bytes of it seen.
    Preface(usize),
    /// Expecting a frame header.
    Frame,
    /// Copying `usize` more payload bytes of a frame that is not a header frame.
    Copy(usize),
    /// Not HTTP/2 with prior knowledge, or given up on: everything is copied.
    Transparent,
}

#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM and, when present, the PRIORITY fields of the HEADERS frame.
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        AuthorityFix {
            inner,
            raw: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            phase: Phase::Preface(0),
            decoder,
            pending: None,
            eof: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves what can be moved from `raw` to `out`. Returns an error for a header block that
    /// cannot be decoded or is too large.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match self.phase {
                Phase::Transparent => {
                    self.out.append(&mut self.raw);
                    return Ok(());
                }
                Phase::Preface(seen) => {
                    let take = (PREFACE.len() - seen).min(self.raw.len());
                    if take == 0 {
                        return Ok(());
                    }
                    if self.raw[..take] != PREFACE[seen..seen + take] {
                        self.phase = Phase::Transparent;
                        continue;
                    }
                    self.out.extend(self.raw.drain(..take));
                    self.phase = if seen + take == PREFACE.len() {
                        Phase::Frame
                    } else {
                        Phase::Preface(seen + take)
                    };
                }
                Phase::Copy(remaining) => {
                    let take = remaining.min(self.raw.len());
                    if take == 0 {
                        return Ok(());
                    }
                    self.out.extend(self.raw.drain(..take));
                    self.phase = match remaining - take {
                        0 => Phase::Frame,
                        left => Phase::Copy(left),
                    };
                }
                Phase::Frame => {
                    let Some(header) = self.raw.get(..FRAME_HEADER) else {
                        return Ok(());
                    };
                    let length = usize::from(header[0]) << 16
                        | usize::from(header[1]) << 8
                        | usize::from(header[2]);
                    let (kind, flags) = (header[3], header[4]);
                    let stream_id =
                        u32::from_be_bytes([header[5], header[6], header[7], header[8]])
                            & 0x7fff_ffff;
                    if kind != TYPE_HEADERS && kind != TYPE_CONTINUATION {
                        if self.pending.is_some() {
                            return Err(invalid("a header block was interrupted by another frame"));
                        }
                        self.out.extend(self.raw.drain(..FRAME_HEADER));
                        if length > 0 {
                            self.phase = Phase::Copy(length);
                        }
                        continue;
                    }
                    if length > MAX_HEADER_BLOCK {
                        return Err(too_large());
                    }
                    if self.raw.len() < FRAME_HEADER + length {
                        return Ok(());
                    }
                    let payload: Vec<u8> = self
                        .raw
                        .drain(..FRAME_HEADER + length)
                        .skip(FRAME_HEADER)
                        .collect();
                    self.header_frame(kind, flags, stream_id, payload)?;
                }
            }
        }
    }

    /// One HEADERS or CONTINUATION frame's payload.
    fn header_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: Vec<u8>,
    ) -> io::Result<()> {
        let mut pending = if kind == TYPE_HEADERS {
            if self.pending.is_some() {
                return Err(invalid(
                    "a header block was interrupted by another HEADERS frame",
                ));
            }
            let (priority, fragment) = split_headers_payload(flags, &payload)?;
            PendingBlock {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                block: fragment.to_vec(),
            }
        } else {
            let mut pending = self
                .pending
                .take()
                .ok_or_else(|| invalid("a CONTINUATION frame without a header block"))?;
            if pending.stream_id != stream_id {
                return Err(invalid("a CONTINUATION frame of another stream"));
            }
            if pending.block.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err(too_large());
            }
            pending.block.extend_from_slice(&payload);
            pending
        };
        if flags & FLAG_END_HEADERS == 0 {
            self.pending = Some(pending);
            return Ok(());
        }
        let block = rewrite_block(&mut self.decoder, &pending.block)?;
        pending.block = block;
        write_header_frames(&pending, &mut self.out);
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let take = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + take]);
                this.out_pos += take;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
            let read = chunk_buf.filled();
            if read.is_empty() {
                this.eof = true;
                // Whatever is left is an incomplete frame: hand it over as it is.
                this.out.append(&mut this.raw);
                continue;
            }
            this.raw.extend_from_slice(read);
            this.process()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A HEADERS payload without its padding: the PRIORITY fields, if flagged, and the header
/// block fragment.
fn split_headers_payload(flags: u8, payload: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut padding = 0;
    if flags & FLAG_PADDED != 0 {
        let (&pad, after) = rest
            .split_first()
            .ok_or_else(|| invalid("a padded HEADERS frame without its pad length"))?;
        padding = usize::from(pad);
        rest = after;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (fields, after) = rest
            .split_first_chunk::<5>()
            .ok_or_else(|| invalid("a HEADERS frame too short for its PRIORITY fields"))?;
        priority = Some(*fields);
        rest = after;
    }
    let end = rest
        .len()
        .checked_sub(padding)
        .ok_or_else(|| invalid("HEADERS padding longer than the frame"))?;
    Ok((priority, &rest[..end]))
}

/// Decodes one header block and encodes it again as literals without indexing, with an
/// invalid `:authority` replaced.
pub fn rewrite_block(
    decoder: &mut loona_hpack::Decoder<'static>,
    block: &[u8],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + 16);
    let mut failed = None;
    let mut list_size = 0usize;
    decoder
        .decode_with_cb(block, |name, value| {
            if failed.is_some() {
                // The decoder still runs to the end, keeping its table in step; nothing more
                // is written.
                return;
            }
            let value: &[u8] = if &*name == b":authority" && !is_valid_authority(&value) {
                REPLACEMENT
            } else {
                &value
            };
            list_size += name.len() + value.len() + 32;
            if list_size > MAX_HEADER_LIST {
                failed = Some(invalid(&format!(
                    "a header block decoding to a header list over {MAX_HEADER_LIST} bytes"
                )));
                return;
            }
            if let Err(error) = write_literal(&mut out, &name, value) {
                failed = Some(error);
            }
        })
        .map_err(|error| invalid(&format!("undecodable header block: {error}")))?;
    match failed {
        Some(error) => Err(error),
        None => Ok(out),
    }
}

/// Whether h2 accepts `value` as an `:authority`.
fn is_valid_authority(value: &[u8]) -> bool {
    !value.is_empty() && http::uri::Authority::try_from(value).is_ok()
}

/// A "literal header field without indexing — new name" (RFC 7541 §6.2.2), strings without
/// Huffman coding.
fn write_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> io::Result<()> {
    out.push(0x00);
    for string in [name, value] {
        loona_hpack::encoder::encode_integer_into(string.len(), 7, 0, out)?;
        out.extend_from_slice(string);
    }
    Ok(())
}

/// Writes `block` as a HEADERS frame and as many CONTINUATION frames as it needs.
fn write_header_frames(pending: &PendingBlock, out: &mut Vec<u8>) {
    let prefix = pending.priority.as_ref().map_or(&[][..], |p| &p[..]);
    let first_room = MAX_FRAME - prefix.len();
    let (first, mut rest) = pending.block.split_at(first_room.min(pending.block.len()));
    let mut flags = 0;
    if pending.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if pending.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    write_frame_header(
        out,
        prefix.len() + first.len(),
        TYPE_HEADERS,
        flags,
        pending.stream_id,
    );
    out.extend_from_slice(prefix);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (part, after) = rest.split_at(MAX_FRAME.min(rest.len()));
        rest = after;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame_header(out, part.len(), TYPE_CONTINUATION, flags, pending.stream_id);
        out.extend_from_slice(part);
    }
}

fn write_frame_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream_id: u32) {
    // `length` is at most MAX_FRAME, so three bytes hold it.
    let length = length.to_be_bytes();
    out.extend_from_slice(&length[length.len() - 3..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2: {reason}"))
}

fn too_large() -> io::Error {
    invalid(&format!("a header block over {MAX_HEADER_BLOCK} bytes"))
}

#[cfg(test)]
mod tests;
