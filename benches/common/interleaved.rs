//! Reads measured interleaved, for the benches that compare credvault with a peer in one
//! run: criterion runs one function after the other, and on a shared machine the load changes
//! between them. Included by path (`#[path = "common/interleaved.rs"] mod interleaved;`).

/// Each `reads`' median time per call, measured interleaved: `blocks` rounds, each running
/// every read `per_block` times in turn.
pub(crate) fn interleaved(
    blocks: usize,
    per_block: usize,
    reads: &mut [&mut dyn FnMut()],
) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(blocks); reads.len()];
    for _ in 0..blocks {
        for (read, times) in reads.iter_mut().zip(&mut times) {
            let start = std::time::Instant::now();
            for _ in 0..per_block {
                read();
            }
            times.push(start.elapsed().as_secs_f64() / per_block as f64);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}
