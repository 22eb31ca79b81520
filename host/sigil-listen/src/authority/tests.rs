use tokio::io::AsyncReadExt;

use super::*;

/// A HEADERS frame (and CONTINUATION frames when `split` is given) carrying `headers`,
/// HPACK-encoded by loona's encoder, which indexes: the rewriter must keep its decoder in step.
fn headers_frames(
    encoder: &mut loona_hpack::Encoder<'static>,
    stream_id: u32,
    headers: &[(&[u8], &[u8])],
    split: Option<usize>,
) -> Vec<u8> {
    let block = encoder.encode(headers.iter().copied());
    let mut out = Vec::new();
    match split {
        None => {
            write_frame_header(
                &mut out,
                block.len(),
                TYPE_HEADERS,
                FLAG_END_HEADERS,
                stream_id,
            );
            out.extend_from_slice(&block);
        }
        Some(at) => {
            write_frame_header(&mut out, at, TYPE_HEADERS, 0, stream_id);
            out.extend_from_slice(&block[..at]);
            let rest = block.len() - at;
            write_frame_header(
                &mut out,
                rest,
                TYPE_CONTINUATION,
                FLAG_END_HEADERS,
                stream_id,
            );
            out.extend_from_slice(&block[at..]);
        }
    }
    out
}

/// Runs `input` through the fix, feeding it in `chunk`-byte reads, and decodes the header
/// blocks that come out.
async fn through(
    input: Vec<u8>,
    chunk: usize,
) -> io::Result<(Vec<u8>, Vec<Vec<(Vec<u8>, Vec<u8>)>>)> {
    let (mut client, server) = tokio::io::duplex(chunk);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for part in input.chunks(chunk) {
            if client.write_all(part).await.is_err() {
                return;
            }
        }
    });
    let mut fix = AuthorityFix::new(server);
    let mut out = Vec::new();
    let read = fix.read_to_end(&mut out).await;
    // A writer blocked on a full pipe ends once the reading side is gone.
    drop(fix);
    let _ = writer.await;
    read?;
    let mut decoder = loona_hpack::Decoder::new();
    let mut blocks = Vec::new();
    let mut rest = out.get(PREFACE.len()..).unwrap_or_default();
    let mut block = Vec::new();
    while rest.len() >= FRAME_HEADER {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + length];
        if kind == TYPE_HEADERS || kind == TYPE_CONTINUATION {
            assert!(length <= MAX_FRAME);
            block.extend_from_slice(payload);
            if flags & FLAG_END_HEADERS != 0 {
                blocks.push(decoder.decode(&block).unwrap());
                block.clear();
            }
        }
        rest = &rest[FRAME_HEADER + length..];
    }
    Ok((out, blocks))
}

fn request(authority: &[u8]) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b":method", b"POST".to_vec()),
        (b":scheme", b"http".to_vec()),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID".to_vec()),
        (b":authority", authority.to_vec()),
        (b"workload.spiffe.io", b"true".to_vec()),
    ]
}

fn connection(blocks: &[Vec<(&'static [u8], Vec<u8>)>], split: Option<usize>) -> Vec<u8> {
    let mut encoder = loona_hpack::Encoder::new();
    let mut input = PREFACE.to_vec();
    // A SETTINGS frame and a DATA frame pass through untouched.
    write_frame_header(&mut input, 0, 0x4, 0, 0);
    for (n, headers) in blocks.iter().enumerate() {
        let headers: Vec<(&[u8], &[u8])> =
            headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let stream = u32::try_from(2 * n + 1).unwrap();
        input.extend(headers_frames(&mut encoder, stream, &headers, split));
        write_frame_header(&mut input, 5, 0x0, FLAG_END_STREAM, stream);
        input.extend_from_slice(&[0, 0, 0, 0, 0]);
    }
    input
}

fn authority_of(block: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    block
        .iter()
        .find(|(name, _)| name == b":authority")
        .map(|(_, value)| value.clone())
        .unwrap()
}

#[tokio::test]
async fn socket_path_authorities_become_localhost_and_valid_ones_stay() {
    let blocks = [
        request(b"%2Frun%2Fspire%2Fsockets%2Fagent.sock"),
        request(b"/run/spire/sockets/agent.sock"),
        request(b"localhost"),
        request(b"spire-agent:8081"),
        // The same path again: the client's encoder now refers to its dynamic table.
        request(b"%2Frun%2Fspire%2Fsockets%2Fagent.sock"),
    ];
    for (chunk, split) in [(1, None), (7, Some(3)), (4096, None)] {
        let (_, decoded) = through(connection(&blocks, split), chunk).await.unwrap();
        let authorities: Vec<Vec<u8>> = decoded.iter().map(|b| authority_of(b)).collect();
        assert_eq!(
            authorities,
            [
                b"localhost".to_vec(),
                b"localhost".to_vec(),
                b"localhost".to_vec(),
                b"spire-agent:8081".to_vec(),
                b"localhost".to_vec()
            ],
            "chunk {chunk}"
        );
        assert!(decoded.iter().all(|b| {
            b.iter()
                .any(|(n, v)| n == b"workload.spiffe.io" && v == b"true")
        }));
    }
}

#[tokio::test]
async fn a_long_header_block_is_split_into_continuation_frames() {
    let mut headers = request(b"%2Ftmp%2Fs");
    headers.push((b"x-large", vec![b'a'; 3 * MAX_FRAME]));
    let (_, decoded) = through(connection(&[headers], None), 4096).await.unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(authority_of(&decoded[0]), b"localhost");
}

#[tokio::test]
async fn an_oversized_header_block_ends_the_connection() {
    let mut headers = request(b"localhost");
    headers.push((b"x-large", vec![b'a'; MAX_HEADER_BLOCK]));
    let error = through(connection(&[headers], Some(10)), 4096)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("header block over"), "{error}");
}

/// The `http2_authority` fuzz target's size property: a 4 KiB header indexed once, then named
/// again by one byte per field, made a 4 KiB block be written out as 84 KiB (and a 64 KiB
/// block as about 260 MiB) before h2 saw any of it.
#[tokio::test]
async fn a_header_block_expanding_past_the_list_limit_ends_the_connection() {
    let mut block = vec![0x40, 0x01, b'x'];
    // Literal with incremental indexing, new name "x", a 4000-byte value: dynamic index 62.
    loona_hpack::encoder::encode_integer_into(4000, 7, 0, &mut block).unwrap();
    block.extend(std::iter::repeat_n(b'v', 4000));
    // 20 one-byte references to it: 20 × 4033 bytes of header list.
    block.extend(std::iter::repeat_n(0x80 | 62, 20));
    let mut input = PREFACE.to_vec();
    write_frame_header(&mut input, block.len(), TYPE_HEADERS, FLAG_END_HEADERS, 1);
    input.extend_from_slice(&block);
    let error = through(input, 4096).await.unwrap_err();
    assert!(error.to_string().contains("header list over"), "{error}");

    // Up to the limit, the same references go through.
    let mut decoder = loona_hpack::Decoder::new();
    let within = [&block[..block.len() - 20], &[0x80 | 62; 14][..]].concat();
    let rewritten = rewrite_block(&mut decoder, &within).unwrap();
    assert_eq!(
        loona_hpack::Decoder::new()
            .decode(&rewritten)
            .unwrap()
            .len(),
        15
    );
}

#[tokio::test]
async fn garbage_in_a_header_block_ends_the_connection() {
    let mut input = PREFACE.to_vec();
    write_frame_header(&mut input, 1, TYPE_HEADERS, FLAG_END_HEADERS, 1);
    // Index 0 is never valid in HPACK.
    input.push(0x80);
    let error = through(input, 64).await.unwrap_err();
    assert!(
        error.to_string().contains("undecodable header block"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_without_the_preface_passes_through_untouched() {
    let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let (out, _) = through(input.clone(), 3).await.unwrap();
    assert_eq!(out, input);
}

#[test]
fn padding_and_priority_are_read_from_headers_frames() {
    let payload = [2, 0, 0, 0, 3, 9, 0x82, 0, 0];
    let (priority, fragment) =
        split_headers_payload(FLAG_PADDED | FLAG_PRIORITY, &payload).unwrap();
    assert_eq!(priority, Some([0, 0, 0, 3, 9]));
    assert_eq!(fragment, [0x82]);
    assert!(split_headers_payload(FLAG_PADDED, &[5, 1]).is_err());
}
