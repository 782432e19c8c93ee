//! The crypto ceiling: the AEAD alone (RFC 4106 AES-GCM, the data plane's
//! own `Gcm`) over the ESP bodies of the same frames, in place, as many
//! operations per frame as the scenario does. No parsing, no I/O: the
//! highest frame rate any ESP gateway built on this AEAD could reach.

use crate::cputime::CpuClock;
use crate::scenario::CryptoWork;
use anyhow::Result;
use meshplane::sa::{aad, Gcm};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// What the crypto ceiling measured.
#[derive(Clone, Copy, Debug)]
pub struct CryptoOutcome {
    /// Frames processed (each with `ops_per_frame` AEAD operations).
    pub frames: u64,
    /// Seconds.
    pub secs: f64,
    /// Of which on a CPU, if known.
    pub cpu_secs: Option<f64>,
}

/// Seals every frame's ESP body in turn for `dur`. Opening costs the same
/// (CTR + GHASH over the same bytes); sealing is measured because it needs
/// no valid tag, so the same buffers can be reused pass after pass.
pub fn crypto_ceiling(work: &CryptoWork, dur: Duration) -> Result<CryptoOutcome> {
    let gcm = Gcm::new(work.alg, work.spi, &work.key)?;
    let total: usize = work.body_lens.iter().sum();
    // The bodies back to back, each 16-byte aligned as in a packet buffer.
    let mut arena = vec![0xa5u8; total + 16 * work.body_lens.len()];
    let mut offs = Vec::with_capacity(work.body_lens.len());
    let mut o = 0;
    for &l in &work.body_lens {
        offs.push((o, l));
        o += l.next_multiple_of(16);
    }
    let mut frames = 0u64;
    let mut seq = 0u64;
    // Nonces and AADs a batch ahead, as the ESP stage builds them: written
    // just before the call they would stall the AEAD's loads.
    const AHEAD: usize = 32;
    let mut nonces = [[0u8; 12]; AHEAD];
    let mut aads = [[0u8; 12]; AHEAD];
    anyhow::ensure!(
        work.ops_per_frame <= AHEAD,
        "{} AEAD operations per frame: at most {AHEAD}",
        work.ops_per_frame
    );
    let per_chunk = (AHEAD / work.ops_per_frame.max(1)).max(1);
    let cpu = CpuClock::start();
    let t0 = Instant::now();
    'outer: loop {
        for chunk in offs.chunks(per_chunk) {
            let ops = chunk.len() * work.ops_per_frame;
            for (nonce, a) in nonces.iter_mut().zip(aads.iter_mut()).take(ops) {
                seq += 1;
                *nonce = gcm.nonce(seq.to_be_bytes());
                *a = aad(work.spi, seq, false).0;
            }
            let mut k = 0;
            for &(o, l) in chunk {
                for _ in 0..work.ops_per_frame {
                    black_box(gcm.seal_with(&nonces[k], &aads[k][..8], &mut arena[o..o + l]));
                    k += 1;
                }
                frames += 1;
            }
            if t0.elapsed() >= dur {
                break 'outer;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(CryptoOutcome {
        frames,
        secs,
        cpu_secs: cpu.secs().map(|c| c.min(secs)),
    })
}
