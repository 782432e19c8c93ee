//! Per-stage cost in ns/packet at 64 B and 1420 B, beside the AEAD alone
//! over the same buffers (the crypto ceiling), measured in one run.
//!
//! Each scenario replays pre-built frames in batches of 32: a frame is
//! refilled from its template (a memcpy, measured separately and subtracted)
//! and run through the stages. Usage: `stage-bench [--packets N] [--rounds R]`.
//! Reading: the stage's ns/packet and its ratio to the AEAD alone; the
//! crypto stages cannot go below 1.0x.
//!
//! A second table times each AES-GCM implementation (`aes-gcm`, AWS-LC and
//! `Gcm`, which picks one per size) on the same buffers, seal and open, so
//! the size threshold in `sa::aead` can be re-measured on any host.

use meshplane::chain::default_chain;
use meshplane::config::AeadAlg;
use meshplane::frame::{Batch, HeapFrame};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::CapturedPacket;
use meshplane::replay::{replay_to_memory, ReplayOptions};
use meshplane::sa::aead::{self, Aead, AwsLcGcm, RustCryptoGcm, SizedGcm};
use meshplane::sa::{aad, Gcm};
use meshplane::stage;
use meshplane::tables::Tables;
use std::hint::black_box;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best-of-`rounds` ns/packet of `f` run over all templates.
fn time_ns(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn run_frames(templates: &[Vec<u8>], frames: &mut [HeapFrame], tables: Option<&Tables>) {
    let mut batch: Batch<HeapFrame> = Batch::new();
    // One batch worth of buffers is reused, as a NIC's RX ring would be.
    let chunk_f = &mut frames[..32];
    for chunk_t in templates.chunks(32) {
        for (t, f) in chunk_t.iter().zip(chunk_f.iter_mut()) {
            f.reset_from(t);
            let _ = batch.push(std::mem::replace(f, HeapFrame::with_room(0)));
        }
        if let Some(t) = tables {
            stage::process(&mut batch, t);
        }
        black_box(batch.verdicts());
        for (f, slot) in batch.frames_vec_mut().drain(..).zip(chunk_f.iter_mut()) {
            *slot = f;
        }
    }
}

fn main() {
    let n = arg("--packets", 2048);
    let rounds = arg("--rounds", 50);
    let hops = default_chain().expect("embedded configs");
    println!("stage cost, ns/packet (best of {rounds} rounds over {n} packets)");
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "size", "aead", "ingress", "transit", "egress", "memcpy", "ingress/aead", "egress/aead"
    );
    for size in [64usize, 1420] {
        let input: Vec<CapturedPacket> = generate(&GenSpec {
            count: n as u64,
            size: FrameSize::Fixed(size),
            ..GenSpec::default()
        })
        .expect("generate");
        let run_hop = |i: usize, inp: &[CapturedPacket]| {
            let opts = ReplayOptions {
                loops: 1,
                rx_port: hops[i].rx_port,
            };
            let (_, mut out) =
                replay_to_memory(&hops[i].node, inp.to_vec().into(), &opts).expect("replay");
            std::mem::take(&mut out[hops[i].tx_port])
        };
        let a = run_hop(0, &input);
        let s = run_hop(1, &a);
        let t_in: Vec<Vec<u8>> = input.iter().map(|p| p.data.clone()).collect();
        let t_sat: Vec<Vec<u8>> = a.iter().map(|p| p.data.clone()).collect();
        let t_out: Vec<Vec<u8>> = s.iter().map(|p| p.data.clone()).collect();
        let mut frames: Vec<HeapFrame> = (0..32).map(|_| HeapFrame::with_room(2048)).collect();

        let copy = time_ns(rounds, n, || run_frames(&t_in, &mut frames, None));
        let tables_a = Tables::from_config(&hops[0].node, 1).expect("tables");
        let ingress = time_ns(rounds, n, || {
            run_frames(&t_in, &mut frames, Some(&tables_a))
        }) - copy;
        let tables_s = Tables::from_config(&hops[1].node, 1).expect("tables");
        let transit = time_ns(rounds, n, || {
            run_frames(&t_sat, &mut frames, Some(&tables_s))
        }) - copy;
        // Egress needs fresh anti-replay state per round: rebuild tables.
        let mut egress = f64::MAX;
        for _ in 0..rounds {
            let tb = Tables::from_config(&hops[2].node, 1).expect("tables");
            egress = egress.min(time_ns(1, n, || run_frames(&t_out, &mut frames, Some(&tb))));
        }
        egress -= copy;
        // The AEAD alone over buffers the size of the inner packet + trailer.
        let gcm = Gcm::new(
            AeadAlg::Aes128Gcm,
            4097,
            &hex_key("4c80cdefbb5d10da906ac73c3613a6342e443b68"),
        )
        .expect("key");
        let body = size - 4 - 14 + 2;
        let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![0xabu8; body]).collect();
        // Nonces and AADs 32 ahead, as the ESP stage builds them.
        let aead = time_ns(rounds, n, || {
            let mut ahead = [([0u8; 12], [0u8; 12]); 32];
            for base in (0..n).step_by(32) {
                for (k, (nonce, a)) in ahead.iter_mut().enumerate() {
                    let i = (base + k) as u64;
                    *nonce = gcm.nonce(i.to_be_bytes());
                    *a = aad(4097, i, false).0;
                }
                for (k, (nonce, a)) in ahead.iter().enumerate().take(n - base) {
                    black_box(gcm.seal_with(nonce, &a[..8], &mut bufs[k]));
                }
            }
        });
        println!(
            "{:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.2}x {:>11.2}x",
            size,
            aead,
            ingress,
            transit,
            egress,
            copy,
            ingress / aead,
            egress / aead
        );
    }
    aead_table(rounds.min(20), n);
}

/// ns per seal and per open of `a` over 32 buffers of `len` bytes.
fn aead_ns(a: &dyn Aead, len: usize, rounds: usize, n: usize) -> (f64, f64) {
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![0xabu8; len]).collect();
    let nonce = |i: usize| {
        let mut x = [0u8; aead::NONCE_LEN];
        x[4..].copy_from_slice(&(i as u64).to_be_bytes());
        x
    };
    let seal = time_ns(rounds, n, || {
        for i in 0..n {
            let (ad, l) = aad(4097, i as u64, false);
            black_box(a.seal(&nonce(i), &ad[..l], &mut bufs[i % 32]));
        }
    });
    // Open needs a genuine packet: time seal + open, subtract the seal.
    let both = time_ns(rounds, n, || {
        for i in 0..n {
            let (ad, l) = aad(4097, i as u64, false);
            let b = &mut bufs[i % 32];
            let tag = a.seal(&nonce(i), &ad[..l], b).unwrap_or([0; 16]);
            black_box(a.open(&nonce(i), &ad[..l], b, &tag));
        }
    });
    (seal, both - seal)
}

fn aead_table(rounds: usize, n: usize) {
    let key = hex_key("4c80cdefbb5d10da906ac73c3613a634");
    let rc = RustCryptoGcm::new(AeadAlg::Aes128Gcm, &key).expect("key");
    let lc = AwsLcGcm::new(AeadAlg::Aes128Gcm, &key).expect("key");
    let sized = SizedGcm::new(AeadAlg::Aes128Gcm, &key).expect("key");
    #[cfg(feature = "ipsec-mb")]
    let imb: Option<Box<dyn Aead>> = meshplane::sa::ipsec_mb::library().ok().map(|l| {
        Box::new(
            meshplane::sa::ipsec_mb::IpsecMbGcm::new(l, AeadAlg::Aes128Gcm, &key).expect("key"),
        ) as Box<dyn Aead>
    });
    #[cfg(not(feature = "ipsec-mb"))]
    let imb: Option<Box<dyn Aead>> = None;
    println!(
        "\nAES-128-GCM, ns/call (best of {rounds} rounds over {n} calls); SAs use {}; \
         the fallback uses aws-lc from {} B (seal) / {} B (open)",
        aead::backend().describe(),
        aead::SEAL_LARGE_FROM,
        aead::OPEN_LARGE_FROM
    );
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9}",
        "bytes",
        "aes-gcm seal",
        "aws-lc seal",
        "aes-gcm open",
        "aws-lc open",
        "fb seal",
        "fb open",
        "imb seal",
        "imb open"
    );
    for len in [
        48usize, 64, 80, 96, 104, 112, 128, 256, 512, 1024, 1408, 8960,
    ] {
        let (rs, ro) = aead_ns(&rc, len, rounds, n);
        let (ls, lo) = aead_ns(&lc, len, rounds, n);
        let (ss, so) = aead_ns(&sized, len, rounds, n);
        let (is, io) = imb
            .as_deref()
            .map_or((f64::NAN, f64::NAN), |a| aead_ns(a, len, rounds, n));
        println!(
            "{len:>6} {rs:>12.1} {ls:>12.1} {ro:>12.1} {lo:>12.1} {ss:>10.1} {so:>10.1} {is:>9.1} {io:>9.1}"
        );
    }
}

fn hex_key(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}
