// The body of both Fernet peer benches (benches/peers/fernet-*/benches/*.rs): credvault's
// Fernet beside the `fernet` crate, whose backend the including crate's features pick.
// Included with `include!`, after `const PEER: &str = "<the peer's name>";`.

use std::hint::black_box;
use std::time::Duration;

use credvault::crypto::fernet::Fernet;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [usize; 4] = [32, 256, 4096, 65536];

fn fernet(c: &mut Criterion) {
    let key = Fernet::generate_key();
    let ours = Fernet::new(key.expose_secret()).unwrap();
    let peer = fernet::Fernet::new(key.expose_secret()).unwrap();
    let mut g = c.benchmark_group("fernet_encrypt");
    for size in SIZES {
        let data = vec![0x5a; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("credvault", size), &data, |b, d| {
            b.iter(|| ours.encrypt(black_box(d)));
        });
        g.bench_with_input(BenchmarkId::new(PEER, size), &data, |b, d| {
            b.iter(|| peer.encrypt(black_box(d)));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("fernet_decrypt");
    for size in SIZES {
        let token = ours.encrypt(&vec![0x5a; size]);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("credvault", size), &token, |b, t| {
            b.iter(|| ours.decrypt(black_box(t)).unwrap());
        });
        g.bench_with_input(BenchmarkId::new(PEER, size), &token, |b, t| {
            b.iter(|| peer.decrypt(black_box(t)).unwrap());
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = fernet
}
criterion_main!(benches);
