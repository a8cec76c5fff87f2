//! Prints the memory an index holds, by part, as loaded from a checkpoint file:
//! `cargo run --release -p headcount-engine --example memory -- DATA/checkpoints/FILE`.

use headcount_engine::Index;
use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: memory CHECKPOINT_FILE");
        return ExitCode::from(2);
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let started = std::time::Instant::now();
    let index = match Index::read_checkpoint(BufReader::new(file), len) {
        Ok((_, index)) => index,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    println!("loaded in {:.3} s", started.elapsed().as_secs_f64());
    let (users, events) = (index.user_count().max(1), index.event_count().max(1));
    let m = index.memory();
    let mb = |bytes: usize| bytes as f64 / 1e6;
    println!(
        "{} users, {} events",
        index.user_count(),
        index.event_count()
    );
    for (part, bytes, per, unit) in [
        ("users (registry)", m.users, users, "user"),
        ("attribute writes", m.attribute_writes, users, "user"),
        ("attribute values", m.attribute_values, users, "user"),
        ("datetimes", m.datetimes, users, "user"),
        ("events and purchases", m.events, events, "event"),
    ] {
        println!(
            "{part:<22} {:>9.1} MB  {:>7.1} B/{unit}",
            mb(bytes),
            bytes as f64 / per as f64
        );
    }
    let per_user = m.users + m.attribute_writes + m.attribute_values + m.datetimes;
    println!(
        "{:<22} {:>9.1} MB  {:>7.1} B/user, {:.1} B/event",
        "total",
        mb(m.total()),
        per_user as f64 / users as f64,
        m.events as f64 / events as f64
    );
    ExitCode::SUCCESS
}
