//! What the HTTP/2 authority fix costs per request: one gRPC request's header block (as
//! grpc-core sends it to a Unix socket, the socket path percent-encoded as `:authority`)
//! decoded and written again, against the baseline of decoding it alone (which h2 does for
//! every request anyway).
//!
//! `cargo bench -p sigil-listen --bench authority`

use criterion::{Criterion, criterion_group, criterion_main};

fn request_block(encoder: &mut loona_hpack::Encoder<'static>) -> Vec<u8> {
    let headers: [(&[u8], &[u8]); 8] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
        (b":authority", b"%2Frun%2Fspire%2Fsockets%2Fagent.sock"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (
            b"user-agent",
            b"grpc-python/1.85.3 grpc-c/52.0.0 (linux; chttp2)",
        ),
        (b"workload.spiffe.io", b"true"),
    ];
    encoder.encode(headers)
}

fn bench(c: &mut Criterion) {
    // The second block of a connection: what every request after the first looks like (the
    // client's encoder refers to its dynamic table).
    let mut encoder = loona_hpack::Encoder::new();
    let first = request_block(&mut encoder);
    let second = request_block(&mut encoder);

    let mut group = c.benchmark_group("header_block");
    group.bench_function("baseline_decode_only", |b| {
        b.iter_batched(
            || {
                let mut decoder = loona_hpack::Decoder::new();
                let _ = decoder.decode(&first);
                decoder
            },
            |mut decoder| decoder.decode_with_cb(&second, |_, _| {}),
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("rewrite", |b| {
        b.iter_batched(
            || {
                let mut decoder = loona_hpack::Decoder::new();
                let _ = sigil_listen::authority::rewrite_block(&mut decoder, &first);
                decoder
            },
            |mut decoder| sigil_listen::authority::rewrite_block(&mut decoder, &second),
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
